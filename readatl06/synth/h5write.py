"""Schema-driven HDF5 writing for synthetic ATL06 granules (used by readatl06.synth).

Every dataset is created from the layout tables in readatl06.synth.tables: dtype, shape rule,
chunks, gzip level, shuffle, maxshape, HDF5 creation fill value, `_FillValue` attribute (scalar,
or a 1-element array in release 003), fixed-length NULLTERM ASCII string attributes, dimension
scales (H5DS, as h5py's dims API writes them) and the link creation order of the real granules.

Compressed datasets are declared exactly as the schema says (gzip level 6, shuffle where the real
files have it) and their chunks are encoded by :func:`readatl06.hdf5.codecs.encode` (numpy shuffle +
ISA-L deflate, a zlib stream any inflater reads) and stored with ``write_direct_chunk``: the
same data and filters as HDF5's own zlib path, several times faster (that path is dominated by
zlib). Without ``readatl06.hdf5.codecs`` (or ISA-L) h5py compresses as before.
"""
import itertools

import h5py
import numpy as np

from . import tables as S

try:
    from readatl06.hdf5.codecs import DEFLATE_LEVEL, encode as _encode
    from isal import isal_zlib
except ImportError:                      # no ISA-L / no encoder: HDF5's own zlib
    _encode = None
STREAM_PAD = 1 << 18                     # bytes of padding above which a chunk is deflated as a stream

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


_STR_TYPES = {}        # size -> fixed-length NULLTERM ASCII string type (attributes are many: ~4000 a granule)
_NUM_TYPES = {}


def _str_type(size):
    tid = _STR_TYPES.get(size)
    if tid is None:
        tid = h5py.h5t.C_S1.copy()
        tid.set_size(size)
        tid.set_strpad(h5py.h5t.STR_NULLTERM)
        tid.set_cset(h5py.h5t.CSET_ASCII)
        _STR_TYPES[size] = tid
    return tid


def _new_attr(obj, name, tid, shape):
    bname = name.encode()
    if h5py.h5a.exists(obj.id, bname):
        h5py.h5a.delete(obj.id, bname)
    space = h5py.h5s.create(h5py.h5s.SCALAR) if shape == () else h5py.h5s.create_simple(shape)
    return h5py.h5a.create(obj.id, bname, tid, space)


def set_str_attr(obj, name, value):
    """Fixed-length, NULL-terminated ASCII string attribute of size len+1 (as in ATL06)."""
    data = str(value).encode("ascii", "replace")
    tid = _str_type(len(data) + 1)
    _new_attr(obj, name, tid, ()).write(np.array(data, dtype="S%d" % (len(data) + 1)), mtype=tid)


def set_num_attr(obj, name, value):
    """A numeric attribute of the value's dtype and shape (scalar for a 0-d value), as h5py writes it."""
    arr = np.asarray(value)
    if not arr.flags.c_contiguous:
        arr = arr.copy()
    tid = _NUM_TYPES.get(arr.dtype.str)
    if tid is None:
        tid = _NUM_TYPES[arr.dtype.str] = h5py.h5t.py_create(arr.dtype)
    _new_attr(obj, name, tid, arr.shape).write(arr)


def set_attr(obj, name, value, typ="str"):
    if typ == "str" or (isinstance(value, str) and typ[0] not in "<|>"):
        set_str_attr(obj, name, value)
    else:
        set_num_attr(obj, name, _np_attr(value, typ))


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
    direct = _encode is not None and e["comp"] == "gzip" and e["chunks"] and arr.size > 0
    kw = {"dtype": dtype, "shape": arr.shape} if direct else {"dtype": dtype, "data": arr}
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
    if direct:
        write_chunks(ds, arr, tuple(e["chunks"]), bool(e["shuffle"]), kw.get("fillvalue"))
    attrs = dict(e["attrs"])
    if e["fill"] is not None:
        attrs["_FillValue"] = e["fill"]
    for key in sorted(attrs):
        val = attrs[key]
        if key == "_FillValue":
            set_num_attr(ds, key, np.asarray(val, dtype=dtype) if isinstance(val, list) else np.asarray(val, dtype))
        elif isinstance(val, str):
            set_str_attr(ds, key, val)
        else:
            set_num_attr(ds, key, np.asarray(val, dtype=np.dtype(e["atypes"].get(key, dtype.str))))
    return ds


def write_chunks(ds, arr, chunks, shuffle, fillvalue=None):
    """Store ``arr`` into the chunked, deflated dataset ``ds`` chunk by chunk (write_direct_chunk).

    Each chunk is the full chunk shape, the part beyond the data padded with the creation fill
    value as HDF5 pads it, shuffled when the dataset declares shuffle, then deflated."""
    pad = np.zeros((), arr.dtype) if fillvalue is None else np.asarray(fillvalue, arr.dtype)
    nelem = int(np.prod(chunks))
    grid = [range(0, n, c) for n, c in zip(arr.shape, chunks)]
    for start in itertools.product(*grid):
        part = arr[tuple(slice(s, s + c) for s, c in zip(start, chunks))]
        if part.shape == chunks:
            data = _encode(part.reshape(-1), nelem, shuffle=shuffle)
        elif part.shape[1:] == chunks[1:] and (nelem - part.size) * arr.itemsize >= STREAM_PAD:
            data = _deflate_padded(part.reshape(-1), nelem, pad, shuffle)
        else:
            full = np.full(chunks, pad, arr.dtype)
            full[tuple(slice(0, n) for n in part.shape)] = part
            data = _encode(full.reshape(-1), nelem, shuffle=shuffle)
        ds.id.write_direct_chunk(start, data, filter_mask=0)


def _deflate_padded(values, nelem, pad, shuffle):
    """The chunk bytes of 1-D ``values`` followed by ``pad`` up to ``nelem`` elements (shuffled
    when asked), deflated as one zlib stream without building the padded chunk in memory (the
    residual_histogram chunk holds 10000 x 748 elements, mostly padding in a short granule)."""
    values = np.ascontiguousarray(values)
    size, rest = values.dtype.itemsize, nelem - values.size
    z = isal_zlib.compressobj(DEFLATE_LEVEL)
    out = []
    if shuffle and size > 1:
        planes = values.view(np.uint8).reshape(values.size, size).T
        pad_bytes = np.asarray(pad, values.dtype).reshape(1).view(np.uint8)
        for k in range(size):
            out.append(z.compress(np.ascontiguousarray(planes[k])))
            out.extend(_repeat(z, np.full(min(rest, 1 << 20), pad_bytes[k], np.uint8), rest))
    else:
        out.append(z.compress(values))
        block = np.full(min(rest, 1 << 18), pad, values.dtype)
        out.extend(_repeat(z, block, rest))
    out.append(z.flush())
    return b"".join(out)


def _repeat(z, block, count):
    """Feed ``count`` elements of the constant ``block`` to the compressor ``z``."""
    while count > 0:
        piece = block[:min(count, block.size)]
        count -= piece.size
        yield z.compress(piece)


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
