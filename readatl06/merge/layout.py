"""What the merged file holds (docs/merge.md): its groups, datasets, attributes and storage layout.

Every rank computes the same layout from the same allgathered metadata, so that the structural
calls (create group, dataset, attribute) are identical on every rank, and the result is the same
for any number of ranks: a (beam, direction) group's variables and their attributes come from its
own lowest granule row; a variable that group lacks (an empty group, or a group whose granules all
lack it) is described by the run's lowest (granule row, group) that has it, with every ATL06 beam
path in its ``source`` rewritten to the group's own beam.
"""
import json
import re

import numpy as np

from readatl06.merge import redistribute as rd
from readatl06.atl06.schema import BEAMS, COMPRESSIONS, COORDINATES, DIRECTIONS
from readatl06.hdf5.datasets import write_attr

GROUPS = [(b, d) for b in BEAMS for d in DIRECTIONS]
GI = rd.GI
GI_ATTRS = {"long_name": "row of this point's granule in /granules", "units": "1",
            "coordinates": " ".join(COORDINATES)}
# HDF5 deflate level of the merged datasets (with shuffle). While the merge writes, HDF5's deflate
# filter runs ISA-L at this level (readatl06.hdf5.native), as the per-beam files are written
# (readatl06.hdf5.codecs.DEFLATE_LEVEL); without it, HDF5's zlib at this level.
GZIP_LEVEL = 1
BEAM_PATH = re.compile(r"/gt[123][lr]/")


def fill_for(dtype, attrs):
    """The dataset's fill: the source's ``_FillValue``, else the dtype's maximum (a boolean's: False)."""
    if "_FillValue" in attrs:
        return np.asarray(attrs["_FillValue"]).astype(dtype)[()]
    if np.dtype(dtype).kind == "b":
        return np.False_
    return (np.finfo(dtype).max if np.dtype(dtype).kind == "f" else np.iinfo(dtype).max)


def describe(held):
    """Local metadata: {(beam, dir): {var: (granule_row, dtype, attrs)}} keeping the lowest row."""
    meta = {}
    for row, t in held:
        vars_ = meta.setdefault((t.beam, t.direction), {})
        for name, (dtype, attrs) in rd.vars_of(t).items():
            if name not in vars_ or row < vars_[name][0]:
                vars_[name] = (row, dtype, dict(attrs))
    return meta


def combine(metas):
    """Every rank's metadata merged the same way on every rank (per group the lowest row: rows are
    unique within a group, so the result does not depend on the order of ``metas``)."""
    out = {}
    for meta in metas:
        for key, vars_ in meta.items():
            dst = out.setdefault(key, {})
            for name, info in vars_.items():
                if name not in dst or info[0] < dst[name][0]:
                    dst[name] = info
    return out


def for_beam(attrs, beam):
    """``attrs`` of a variable described by another group, with its ``source`` naming ``beam``."""
    src = attrs.get("source")
    return dict(attrs, source=BEAM_PATH.sub(f"/{beam}/", src)) if isinstance(src, str) else dict(attrs)


def group_vars(meta):
    """Per group of GROUPS: {var: (row, dtype, attrs)} with every variable of the run (see above)."""
    every = {}
    for k, key in enumerate(GROUPS):
        for name, (row, dtype, attrs) in meta.get(key, {}).items():
            if name not in every or (row, k) < every[name][0]:
                every[name] = ((row, k), dtype, attrs)
    out = []
    for beam, direction in GROUPS:
        own = meta.get((beam, direction), {})
        out.append({name: own[name] if name in own else (rk[0], dtype, for_beam(attrs, beam))
                    for name, (rk, dtype, attrs) in every.items()})
    return out


def datasets(vars_):
    """[(name, dtype, attrs, fill)] of a group in file order: by first row, then name; granule_index last."""
    out = []
    for name, (_, dtype, attrs) in sorted(vars_.items(), key=lambda kv: (kv[1][0], kv[0])):
        fill = fill_for(dtype, attrs)
        flag = np.dtype(dtype).kind == "b"     # no _FillValue: a CF reader would hide every False
        out.append((name, dtype, attrs if "_FillValue" in attrs or flag else dict(attrs, _FillValue=fill), fill))
    out.append((GI, "<i4", dict(GI_ATTRS), None))
    return out


def storage(n, chunk, compression):
    """h5py ``create_dataset`` keywords of a merged dataset of ``n`` points. ``deflate``: chunks of
    ``chunk`` with shuffle + deflate; ``none``: contiguous, and never pre-filled (every element is
    written by the merge; parallel HDF5 allocates at creation and would otherwise write the fill
    value over the whole dataset first). Contiguous is what collective MPI-IO writes fastest: each
    rank's run is one byte range per dataset, with no chunk index and no per-chunk I/O."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression {compression!r}: expected one of {', '.join(COMPRESSIONS)}")
    if not n:
        return {}
    if compression == "none":
        return {"fill_time": "never"}
    return {"chunks": (chunk,), "compression": "gzip", "compression_opts": GZIP_LEVEL, "shuffle": True}


def create(f, granules, parameters, first, plans, items, compression):
    """Every group and dataset at full size with its attributes (identical calls on every rank that
    has the file). Returns per group {name: Dataset} (empty without a file)."""
    dsets = [{} for _ in GROUPS]
    if f is None:
        return dsets
    granule_table(f, granules, parameters, write=first)
    for k, (beam, direction) in enumerate(GROUPS):
        grp = f.require_group(f"{beam}/{direction}")
        grp.attrs["beam"] = beam
        grp.attrs["direction"] = direction
        n = plans[k].total
        kw = storage(n, plans[k].chunk, compression)
        for name, dtype, attrs, _ in items[k]:
            d = grp.create_dataset(name, (n,), dtype=dtype, fillvalue=attrs.get("_FillValue"), **kw)
            for key, value in attrs.items():
                write_attr(d.id, key, value)      # what d.attrs[key] = value makes, at half the cost
            dsets[k][name] = d
    return dsets


def granule_table(f, granules, parameters, write):
    """/granules/name, rgt, cycle, segment, release: small contiguous datasets, written by rank 0."""
    g = f.create_group("granules")
    names = np.array([x.name.encode() for x in granules], dtype=f"S{max([len(x.name) for x in granules] + [1])}")
    cols = {"name": names,
            "rgt": np.array([x.rgt for x in granules], np.int16),
            "cycle": np.array([x.cycle for x in granules], np.int8),
            "segment": np.array([x.region for x in granules], np.int8),
            "release": np.array([x.release.encode() for x in granules], "S3")}
    for key, values in cols.items():
        d = g.create_dataset(key, shape=values.shape, dtype=values.dtype)
        if write and values.size:
            d[...] = values
    f.attrs["parameters"] = parameters or json.dumps({})
