"""What the merged file holds (docs/merge.md): its groups, datasets, attributes and storage layout.

Every rank computes the same layout from the same allgathered metadata, so that the structural
calls (create group, dataset, attribute) are identical on every rank, and the result is the same
for any number of ranks: a (beam, direction) group's variables and their attributes come from its
own lowest granule row; a variable that group lacks (an empty group, or a group whose granules all
lack it) is described by the run's lowest (granule row, group) that has it, with every ATL06 beam
path in its ``source`` rewritten to the group's own beam.

A variable's dtype is one for the whole file: NumPy's promotion (``np.result_type``) of its dtype in
every track of the run, so that every granule's values are held exactly (``fit_statistics/n_seg_pulses``
is int32 in release 001 and float32 in 003/006: float64). The merge says so in a note
(:func:`dtype_notes`) and its ``_FillValue`` is cast to that dtype; a track whose own ``_FillValue``
differs has it replaced by the dataset's (``redistribute.put``).
"""
import json
import re

import h5py
import numpy as np

from readatl06.merge import redistribute as rd
from readatl06.merge.sources import GROUPS, Sources
from readatl06.atl06.schema import COMPRESSIONS, COORDINATES
from readatl06.hdf5.datasets import plists, write_attr

GI = rd.GI
GI_ATTRS = {"long_name": "row of this point's granule in /granules", "units": "1",
            "coordinates": " ".join(COORDINATES)}
# deflate level of the merged datasets (with shuffle), zlib's (the per-beam files: ISA-L's,
# readatl06.hdf5.codecs.DEFLATE_LEVEL), declared as HDF5's standard deflate filter
GZIP_LEVEL = 1
BEAM_PATH = re.compile(r"/gt[123][lr]/")


DTYPES = "dtypes"        # key of describe()'s census: {var: {dtype: (lowest row, tracks)}}


def promote(dtypes):
    """The dtype (a little-endian dtype string) that holds the values of every dtype in ``dtypes``:
    NumPy's promotion (int32 + float32 -> float64)."""
    return np.result_type(*[np.dtype(d) for d in dtypes]).newbyteorder("<").str


def exact_in(src, dst):
    """Every value of dtype ``src`` is one of dtype ``dst`` (NumPy calls int64 -> float64 safe; it is not)."""
    src, dst = np.dtype(src), np.dtype(dst)
    if src.kind in "iu" and dst.kind == "f":
        return src.itemsize * 8 - (src.kind == "i") <= np.finfo(dst).nmant + 1
    return bool(np.can_cast(src, dst, "safe"))


def dtype_notes(meta, names):
    """One line per variable whose tracks have several dtypes (``meta`` from :func:`combine`, ``names``
    the granule names by row): the dtypes, in how many tracks, from which granule, and what the file
    holds."""
    out = []
    for var, seen in sorted(meta.get(DTYPES, {}).items()):
        if len(seen) < 2:
            continue
        to = promote(seen)
        parts = [f"{np.dtype(d).name} in {n} track{'s' * (n > 1)} (from {names[row]})"
                 for d, (row, n) in sorted(seen.items(), key=lambda kv: kv[1][0])]
        how = ("which holds every value exactly" if all(exact_in(d, to) for d in seen)
               else "the nearest type NumPy promotes to: integers beyond its precision are rounded")
        out.append(f"{var} is {' and '.join(parts)}: written as {np.dtype(to).name}, {how}")
    return out


def fill_for(dtype, attrs):
    """The dataset's fill: the source's ``_FillValue``, else the dtype's maximum (a boolean's: False)."""
    if "_FillValue" in attrs:
        return np.asarray(attrs["_FillValue"]).astype(dtype)[()]
    if np.dtype(dtype).kind == "b":
        return np.False_
    return (np.finfo(dtype).max if np.dtype(dtype).kind == "f" else np.iinfo(dtype).max)


def describe(held):
    """Local metadata of ``held`` (``Sources`` or ``[(row, track)]``): {(beam, dir): {var:
    (granule_row, dtype, attrs)}} keeping the lowest row, and under ``DTYPES`` the census {var:
    {dtype: (lowest row, tracks)}} of every track."""
    meta, census = {}, {}
    for row, group, variables, tracks in Sources.of(held).kinds():
        vars_ = meta.setdefault(group, {})
        for name, (dtype, attrs) in variables.items():
            if name not in vars_ or row < vars_[name][0]:
                vars_[name] = (row, dtype, dict(attrs))
            dtype = np.dtype(dtype).newbyteorder("<").str
            first, n = census.setdefault(name, {}).get(dtype, (row, 0))
            census[name][dtype] = (min(first, row), n + tracks)
    if census:
        meta[DTYPES] = census
    return meta


def combine(metas):
    """Every rank's metadata merged the same way on every rank (per group the lowest row: rows are
    unique within a group, so the result does not depend on the order of ``metas``)."""
    out = {}
    for meta in metas:
        for key, vars_ in meta.items():
            dst = out.setdefault(key, {})
            for name, info in vars_.items():
                if key == DTYPES:
                    seen = dst.setdefault(name, {})
                    for dtype, (row, n) in info.items():
                        first, m = seen.get(dtype, (row, 0))
                        seen[dtype] = (min(first, row), m + n)
                elif name not in dst or info[0] < dst[name][0]:
                    dst[name] = info
    return out


def for_beam(attrs, beam):
    """``attrs`` of a variable described by another group, with its ``source`` naming ``beam``."""
    src = attrs.get("source")
    return dict(attrs, source=BEAM_PATH.sub(f"/{beam}/", src)) if isinstance(src, str) else dict(attrs)


def group_vars(meta):
    """Per group of GROUPS: {var: (row, dtype, attrs)} with every variable of the run (see above),
    its dtype the promotion of every track's."""
    dtypes = {name: promote(seen) for name, seen in meta.get(DTYPES, {}).items()}
    every = {}
    for k, key in enumerate(GROUPS):
        for name, (row, dtype, attrs) in meta.get(key, {}).items():
            if name not in every or (row, k) < every[name][0]:
                every[name] = ((row, k), dtype, attrs)
    out = []
    for beam, direction in GROUPS:
        own = meta.get((beam, direction), {})
        group = {name: own[name] if name in own else (rk[0], dtype, for_beam(attrs, beam))
                 for name, (rk, dtype, attrs) in every.items()}
        out.append({name: (row, dtypes.get(name, dtype), attrs) for name, (row, dtype, attrs) in group.items()})
    return out


def datasets(vars_):
    """[(name, dtype, attrs, fill)] of a group in file order: by first row, then name; granule_index
    last. ``_FillValue`` is the dataset's dtype (the source's cast, or the dtype's maximum). The
    attributes are made in name order: a Track held in memory has them in the order they were made,
    its per-beam file gives them back by name, and the order they are created in changes the bytes
    of the object header (and every address after it)."""
    out = []
    for name, (_, dtype, attrs) in sorted(vars_.items(), key=lambda kv: (kv[1][0], kv[0])):
        fill = fill_for(dtype, attrs)
        flag = np.dtype(dtype).kind == "b"     # no _FillValue: a CF reader would hide every False
        kept = {k: v for k, v in attrs.items() if k != "_FillValue"} if flag else dict(attrs, _FillValue=fill)
        out.append((name, dtype, dict(sorted(kept.items())), fill))
    out.append((GI, "<i4", dict(GI_ATTRS), None))
    return out


def check_compression(compression):
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression {compression!r}: expected one of {', '.join(COMPRESSIONS)}")


def storage(n, chunk, compression):
    """h5py ``create_dataset`` keywords of a dataset laid out as a merged one (for the benchmark's
    raw writes; the merge itself uses :func:`dcpl`)."""
    check_compression(compression)
    if not n:
        return {}
    if compression == "none":
        return {"fill_time": "never"}
    return {"chunks": (chunk,), "compression": "gzip", "compression_opts": GZIP_LEVEL, "shuffle": True}


def dcpl(n, chunk, compression, dtype, fill):
    """The creation property list of a merged dataset of ``n`` points: no object times, the fill
    value. ``deflate``: chunks of ``chunk`` with HDF5's shuffle + deflate filters declared (the
    chunks are made by ``hdf5.codecs.encode`` on the rank that owns them and stored with direct
    chunk writes), allocated as they are written; ``none``: contiguous, allocated at creation and
    never pre-filled (the ranks write every element). An empty dataset stores nothing."""
    check_compression(compression)
    p = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    p.set_obj_track_times(False)
    if fill is not None:
        p.set_fill_value(np.asarray(fill, dtype).reshape(()))
    if not n:
        return p
    if compression == "none":
        p.set_layout(h5py.h5d.CONTIGUOUS)
        p.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        p.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    else:
        p.set_chunk((chunk,))
        p.set_shuffle()
        p.set_deflate(GZIP_LEVEL)
    return p


def _group(parent, name):
    """A new group under the open id ``parent``, without object times."""
    gcpl = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    gcpl.set_obj_track_times(False)
    return h5py.h5g.create(parent, name.encode(), gcpl=gcpl)


def _dataset(parent, name, values_or_n, dtype, plist):
    dtype = np.dtype(dtype)
    n = values_or_n if isinstance(values_or_n, int) else len(values_or_n)
    ftype = plists().type_of(dtype)[0]
    return h5py.h5d.create(parent, name.encode(), ftype, h5py.h5s.create_simple((n,)), dcpl=plist)


def create(fid, granules, parameters, plans, items, compression):
    """Rank 0, in the new file (the open FileID ``fid``): the granule table, every group and dataset at
    full size with its attributes, in a fixed order. Returns per group {name: DatasetID}."""
    root = h5py.h5g.open(fid, b"/")
    granule_table(root, granules, parameters)
    dsets = [{} for _ in GROUPS]
    beams = {}
    for k, (beam, direction) in enumerate(GROUPS):
        if beam not in beams:
            beams[beam] = _group(root, beam)
        grp = _group(beams[beam], direction)
        write_attr(grp, "beam", beam)
        write_attr(grp, "direction", direction)
        n = plans[k].total
        for name, dtype, attrs, fill in items[k]:
            d = _dataset(grp, name, n, dtype, dcpl(n, plans[k].chunk, compression, dtype, fill))
            for key, value in attrs.items():
                write_attr(d, key, value)
            dsets[k][name] = d
    return dsets


def granule_table(root, granules, parameters):
    """/granules/name, rgt, cycle, segment, release: small contiguous datasets; the root attribute
    ``parameters``."""
    g = _group(root, "granules")
    names = np.array([x.name.encode() for x in granules], dtype=f"S{max([len(x.name) for x in granules] + [1])}")
    cols = {"name": names,
            "rgt": np.array([x.rgt for x in granules], np.int16),
            "cycle": np.array([x.cycle for x in granules], np.int8),
            "segment": np.array([x.region for x in granules], np.int8),
            "release": np.array([x.release.encode() for x in granules], "S3")}
    plain = plists().plain
    for key, values in cols.items():
        d = _dataset(g, key, values, values.dtype, plain)
        if values.size:
            d.write(h5py.h5s.ALL, h5py.h5s.ALL, np.ascontiguousarray(values), mtype=plists().type_of(values.dtype)[1])
    write_attr(root, "parameters", parameters or json.dumps({}))
