"""The index file of an appended product (docs/merge.md "Appending"), written by rank 0 alone: the
same groups, datasets, attributes, netCDF dimensions and /granules as a full merge of its granules,
every (beam, direction) dataset an HDF5 virtual dataset mapping, in granule order, runs of rows of
the part files (merged files whose ``granule_index`` holds the rows of the whole product), by names
relative to the index's folder. Besides: /parts/file (the part files) and /members (every granule a
part holds: its part, its row in /granules, -1 when superseded and no longer mapped, and its points
per group), from which the next append maps the parts again without reading their points.

A dataset's dtype, fill value and attributes are those of the part that holds the group's first
granule having the variable (a full merge takes them from that granule). A part whose dtype or
fill value of a mapped variable differs from the product's (``fit_statistics/n_seg_pulses``: int32
in release 001, float32 later) cannot be mapped as it is: :func:`describe_parts` says which, and
the append then rebuilds the whole product as one part (a full merge's promotion)."""
import os

import h5py
import numpy as np

from readatl06 import __version__
from readatl06.atl06.schema import DIMENSION, FEATURE_TYPE, GRANULE_DIMENSION
from readatl06.hdf5.datasets import plists, write_attr
from readatl06.hdf5.dimensions import DIMENSION_ATTRS, attach_all, is_dimension
from readatl06.merge.layout import GI, GROUPS, granule_table
from readatl06.outputs.folder import open_new
from readatl06.outputs.merged import MEMBERS, PARTS, count_name
from readatl06.outputs.trackfile import CF_FILE_ATTRS

PART_DIMENSION = "part"
MEMBER_DIMENSION = "member"


def _same(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _group_vars(f, beam, direction):
    """{var: (dtype str, fill)} of the group in the open part ``f`` (attributes: :func:`_attrs`)."""
    grp = f[beam][direction]
    out = {}
    for name in grp:
        d = grp[name]
        if not is_dimension(d):
            out[name] = (d.dtype.str, d.fillvalue)
    return out


def _attrs(f, beam, direction, var):
    d = f[beam][direction][var]
    return {k: v for k, v in d.attrs.items() if k not in DIMENSION_ATTRS}


def describe_parts(folder, parts, members):
    """Per group, the product's ``[(var, dtype, attrs, fill, [parts having it])]`` and the parts
    whose mapped variables disagree with it (dtype or fill value): ``(specs, clashes)``. Every part's
    dtypes and fill values are read; attributes only from the part each variable takes them from."""
    shown = [[(row, n) for _, row, n in ms if row >= 0] for ms in members]
    seen = []
    for p in parts:
        with h5py.File(os.path.join(folder, p), "r") as f:
            seen.append([_group_vars(f, b, d) for b, d in GROUPS])
    first_any = [min([r for r, _ in rows] or [np.inf]) for rows in shown]
    specs, clashes, opened = [], set(), {}
    try:
        for k in range(len(GROUPS)):
            specs.append(_describe_group(k, folder, parts, shown, seen, first_any, clashes, opened))
    finally:
        for f in opened.values():
            f.close()
    return specs, sorted(clashes)


def _describe_group(k, folder, parts, shown, seen, first_any, clashes, opened):
    """One group of :func:`describe_parts` (``opened``: the parts open for their attributes)."""
    beam, direction = GROUPS[k]
    first = [min([r for r, n in rows if n[k] > 0] or [np.inf]) for rows in shown]
    order = sorted(range(len(parts)), key=lambda p: (first[p], first_any[p], p))
    names = sorted({v for p in order for v in seen[p][k]} - {GI}) + [GI]
    group = []
    for var in names:
        have = [p for p in order if var in seen[p][k]]
        dtype, fill = seen[have[0]][k][var]
        for p in have:
            if first[p] < np.inf and (seen[p][k][var][0] != dtype or not _same(seen[p][k][var][1], fill)):
                clashes.add(parts[p])
        if have[0] not in opened:
            opened[have[0]] = h5py.File(os.path.join(folder, parts[have[0]]), "r")
        group.append((var, dtype, _attrs(opened[have[0]], beam, direction, var), fill, have))
    return group


def runs(n_rows, parts, members):
    """Per group: ``[(part, source start, product start, n)]``, one per run of consecutive rows of
    one part that are consecutive in it too, and the group's total points."""
    where = [None] * n_rows             # row -> (part, member index)
    starts = []                         # per part: per member, per group, its first point in the part
    for p, ms in enumerate(members):
        n = np.array([m[2] for m in ms], np.int64).reshape(len(ms), len(GROUPS))
        starts.append(np.cumsum(n, axis=0) - n)
        for i, (_, row, _) in enumerate(ms):
            if row >= 0:
                where[row] = (p, i)
    out = []
    for k in range(len(GROUPS)):
        group, at = [], 0
        for row in range(n_rows):
            p, i = where[row]
            n = int(members[p][i][2][k])
            if not n:
                continue
            src = int(starts[p][i, k])
            last = group[-1] if group else None
            if last and last[0] == p and last[1] + last[3] == src:
                group[-1] = (p, last[1], last[2], last[3] + n)
            else:
                group.append((p, src, at, n))
            at += n
        out.append((group, at))
    return out


def _gcpl():
    p = h5py.h5p.create(h5py.h5p.GROUP_CREATE)
    p.set_obj_track_times(False)
    return p


def _virtual(parent, name, dtype, fill, total, mapped, source):
    """A virtual dataset of ``total`` elements, its runs ``mapped`` [(file, start, at, n)] read from
    ``source`` in each file (an empty one: a plain empty dataset)."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_obj_track_times(False)
    if fill is not None:
        dcpl.set_fill_value(np.asarray(fill, dtype).reshape(()))
    vspace = h5py.h5s.create_simple((total,))
    for file, start, at, n in mapped:
        vspace.select_hyperslab((at,), (n,))
        sspace = h5py.h5s.create_simple((n,))     # the run [start, start + n) of the source
        sspace.select_hyperslab((start,), (n,))
        dcpl.set_virtual(vspace, file.encode(), source.encode(), sspace)
    ftype = plists().type_of(np.dtype(dtype))[0]
    return h5py.h5d.create(parent, name.encode(), ftype, h5py.h5s.create_simple((total,)), dcpl=dcpl)


def _table(root, group, cols):
    """A small group of 1-D columns (their netCDF dimension is attached in :func:`_fill`)."""
    g = h5py.h5g.create(root, group.encode(), gcpl=_gcpl())
    for key, values in cols.items():
        values = np.ascontiguousarray(values)
        d = h5py.h5d.create(g, key.encode(), plists().type_of(values.dtype)[0],
                            h5py.h5s.create_simple(values.shape), dcpl=plists().plain)
        if values.size:
            d.write(h5py.h5s.ALL, h5py.h5s.ALL, values, mtype=plists().type_of(values.dtype)[1])


def _strings(values):
    return np.array([v.encode() for v in values], dtype=f"S{max([len(v) for v in values] + [1])}")


def write_index(tmp, granules, parameters, parts, members, specs):
    """Rank 0: the index file at the new name ``tmp`` (created here, never through a planted link);
    returns its (device, inode) for the check before the rename. ``granules``: the product's
    GranuleNames in order; ``parts``: part file names relative to the index's folder; ``members``:
    per part ``[(name, row, counts)]``; ``specs`` from :func:`describe_parts`."""
    fd = open_new(tmp, os.O_RDWR)
    st = os.fstat(fd)
    fh = os.fdopen(fd, "w+b")
    try:
        fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
        fapl.set_fileobj_driver(h5py.h5fd.fileobj_driver, fh)
        fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
        fcpl.set_obj_track_times(False)
        fid = h5py.h5f.create(b"index", h5py.h5f.ACC_TRUNC, fapl=fapl, fcpl=fcpl)
        with h5py.File(fid) as f:
            _fill(f, granules, parameters, parts, members, specs)
    finally:
        fh.close()
    return st.st_dev, st.st_ino


def _fill(f, granules, parameters, parts, members, specs):
    root = h5py.h5g.open(f.id, b"/")
    granule_table(root, granules, parameters)
    every = runs(len(granules), parts, members)
    beams = {}
    for k, (beam, direction) in enumerate(GROUPS):
        if beam not in beams:
            beams[beam] = h5py.h5g.create(root, beam.encode(), gcpl=_gcpl())
        grp = h5py.h5g.create(beams[beam], direction.encode(), gcpl=_gcpl())
        write_attr(grp, "beam", beam)
        write_attr(grp, "direction", direction)
        mapped, total = every[k]
        for var, dtype, attrs, fill, have in specs[k]:
            src = [(parts[p], s, a, n) for p, s, a, n in mapped if p in have]
            d = _virtual(grp, var, dtype, None if var == GI else fill, total, src, f"/{beam}/{direction}/{var}")
            for key, value in sorted(attrs.items()):
                write_attr(d, key, value)
    rows = {}
    for p, ms in enumerate(members):
        for name, row, n in ms:
            rows.setdefault("name", []).append(name)
            rows.setdefault("part", []).append(p)
            rows.setdefault("row", []).append(row)
            rows.setdefault("n", []).append(n)
    counts = np.array(rows.get("n", []), np.int64).reshape(-1, len(GROUPS))
    _table(root, PARTS, {"file": _strings(parts)})
    _table(root, MEMBERS,
           {"name": _strings(rows.get("name", [])), "part": np.array(rows.get("part", []), np.int32),
            "row": np.array(rows.get("row", []), np.int32),
            **{count_name(b, d): counts[:, k] for k, (b, d) in enumerate(GROUPS)}})
    f.attrs["software"] = f"readatl06 {__version__}"
    f.attrs["n_granules"] = np.int64(len(granules))
    f.attrs.update(CF_FILE_ATTRS)
    attach_all(f["granules"], GRANULE_DIMENSION)
    attach_all(f[PARTS], PART_DIMENSION)
    attach_all(f[MEMBERS], MEMBER_DIMENSION)
    for beam, direction in GROUPS:
        attach_all(f[beam][direction], DIMENSION)
        f[beam][direction].attrs["featureType"] = FEATURE_TYPE
