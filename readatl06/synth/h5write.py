"""Schema-driven HDF5 writing for synthetic ATL06 granules (used by readatl06.synth).

Every dataset is created from the layout tables in readatl06.synth.tables: dtype, shape rule,
chunks, gzip level, shuffle, maxshape, HDF5 creation fill value, `_FillValue` attribute (scalar,
or a 1-element array in release 003), fixed-length NULLTERM ASCII string attributes, dimension
scales (H5DS, as h5py's dims API writes them) and the link creation order of the real granules.
"""
import h5py
import numpy as np

from . import tables as S

BEAMS = ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")


def layout_release(release):
    """Which reference layout ('001', '003' or '006') a release number follows."""
    r = int(release)
    return "001" if r <= 2 else "003" if r == 3 else "006"


def dataset_spec(npath, layout):
    """Schema entry of a normalised dataset path for a layout release (None: not in release)."""
    e = S.DATASETS.get(npath)
    if e is None or layout not in e["rel"]:
        return None
    e = dict(e)
    e["attrs"] = dict(e["attrs"])
    for key, val in e["diff"].get(layout, {}).items():
        if key.startswith("attr:"):
            e["attrs"][key[5:]] = val
        else:
            e[{"fillvalue": "fill", "hdf5_fillvalue": "hfill"}.get(key, key)] = val
    return e


def _np_attr(value, typ):
    if typ.endswith("]") or isinstance(value, list):
        return np.asarray(value, dtype=np.dtype(typ.split("[")[0]))
    return np.asarray(value, dtype=np.dtype(typ))[()]


def set_str_attr(obj, name, value):
    """Fixed-length, NULL-terminated ASCII string attribute of size len+1 (as in ATL06)."""
    data = str(value).encode("ascii", "replace")
    tid = h5py.h5t.C_S1.copy()
    tid.set_size(len(data) + 1)
    tid.set_strpad(h5py.h5t.STR_NULLTERM)
    tid.set_cset(h5py.h5t.CSET_ASCII)
    if name in obj.attrs:
        del obj.attrs[name]
    aid = h5py.h5a.create(obj.id, name.encode(), tid, h5py.h5s.create(h5py.h5s.SCALAR))
    aid.write(np.array(data, dtype="S%d" % (len(data) + 1)), mtype=tid)


def set_attr(obj, name, value, typ="str"):
    if typ == "str" or (isinstance(value, str) and typ[0] not in "<|>"):
        set_str_attr(obj, name, value)
    else:
        obj.attrs[name] = _np_attr(value, typ)


def _fill_of(e, dtype):
    fill = e["fill"] if e["fill"] is not None else e["hfill"]
    if isinstance(fill, list):
        fill = fill[0]
    if dtype.kind == "S" or fill is None:
        return None
    return np.asarray(fill).astype(dtype)[()]


def create_dataset(group, name, e, data):
    """Create one dataset as the schema entry `e` describes; NaN in float data -> fill value."""
    dtype = np.dtype(e["dtype"])
    fill = _fill_of(e, dtype)
    arr = np.asarray(data)
    if arr.dtype.kind == "f" and fill is not None and dtype.kind != "S":
        bad = np.isnan(arr)
        if bad.any():
            arr = np.where(bad, fill.astype(arr.dtype) if dtype.kind == "f" else np.float64(fill), arr)
    arr = arr.astype(dtype, copy=False)
    maxshape = tuple(None if m == "unlimited" else arr.shape[i] for i, m in enumerate(e["maxshape"]))
    kw = {"dtype": dtype, "data": arr}
    if None in maxshape:
        kw["maxshape"] = maxshape
    if e["chunks"]:
        kw["chunks"] = tuple(e["chunks"])
    if e["comp"]:
        kw["compression"], kw["compression_opts"] = e["comp"], e["opts"]
    if e["shuffle"]:
        kw["shuffle"] = True
    if dtype.kind != "S" and e["hfill"] is not None:
        kw["fillvalue"] = np.asarray(e["hfill"]).astype(dtype)[()]
    ds = group.create_dataset(name, **kw)
    attrs = dict(e["attrs"])
    if e["fill"] is not None:
        attrs["_FillValue"] = e["fill"]
    for key in sorted(attrs):
        val = attrs[key]
        if key == "_FillValue":
            ds.attrs[key] = np.asarray(val, dtype=dtype) if isinstance(val, list) else dtype.type(val)
        elif isinstance(val, str):
            set_str_attr(ds, key, val)
        else:
            typ = e["atypes"].get(key, dtype.str)
            ds.attrs[key] = np.asarray(val, dtype=np.dtype(typ))
    return ds


def write_tree(root, layout, beams, provider, group_attrs, skip=()):
    """Create the whole granule tree below `root` in the real link order.

    provider(npath, beam) -> array for every dataset; group_attrs(npath, beam) -> list of
    [name, value, type] for every group; `skip` holds (npath, beam) pairs left out on purpose.
    """
    created = []          # (npath, beam, dataset, spec)

    def walk(group, npath, beam):
        for name, value, typ in group_attrs(npath, beam):
            set_attr(group, name, value, typ)
        for child in S.ORDER[layout].get(npath, []):
            names = beams if child in BEAMS else (child,)
            for cname in names:
                cpath = (npath.rstrip("/") + "/" + ("gtx" if cname in BEAMS else cname))
                cbeam = cname if cname in BEAMS else beam
                spec = dataset_spec(cpath, layout)
                if spec is not None:
                    if (cpath, cbeam) in skip:
                        continue
                    ds = create_dataset(group, cname, spec, provider(cpath, cbeam))
                    created.append((cpath, cbeam, ds, spec))
                elif cpath in S.GROUPS[layout]:
                    walk(group.create_group(cname, track_order=True), cpath, cbeam)
    walk(root, "/", None)
    _attach_scales(created)


def _attach_scales(created):
    scales = {}
    for npath, beam, ds, spec in created:
        if spec["scale"]:
            ds.make_scale(spec["scale_name"] or npath.rsplit("/", 1)[1])
            scales[(npath, beam)] = ds
    for npath, beam, ds, spec in created:
        if spec["scale"]:
            continue
        for i, sp in enumerate(spec["dims"][:ds.ndim]):
            scale = scales.get((sp, beam)) if sp else None
            if scale is None and sp and sp.endswith("/bin_top_h"):      # release 001: dh
                scale = scales.get((sp[:-len("bin_top_h")] + "dh", beam))
            if scale is not None:
                ds.dims[i].attach_scale(scale)
