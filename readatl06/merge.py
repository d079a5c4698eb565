"""One file for the whole run, written collectively with parallel HDF5 (DESIGN §3).

Every rank holds the tracks of the granules it reduced (or read). Granules are ordered by
(acquisition time in the name, file name); within a (beam, direction) the points of granule g
start at the prefix sum of the counts of granules before g, so the file is the same for any rank
count and any distribution of work. Structure calls are made identically on every rank; each rank
then writes its blocks of every dataset in ONE collective call (also with nothing to write: see
STACK.md on the empty-slice hang). Without MPI in h5py, rank 0 gathers numeric arrays (Gatherv)
and writes the same file serially.
"""
import json
import os
import sys

import h5py
import numpy as np

from readatl06 import __version__
from readatl06.outdir import crash_point, tmp_name
from readatl06.schema import BEAMS, DIRECTIONS

CHUNK = 1 << 18           # elements per chunk of the merged datasets
GROUPS = [(b, d) for b in BEAMS for d in DIRECTIONS]


def fill_for(dtype, attrs):
    """The dataset's fill: the source's ``_FillValue``, else the dtype's maximum."""
    if "_FillValue" in attrs:
        return np.asarray(attrs["_FillValue"]).astype(dtype)[()]
    return (np.finfo(dtype).max if np.dtype(dtype).kind == "f" else np.iinfo(dtype).max)


def describe(held):
    """Local metadata: {(beam, dir): {var: (granule_row, dtype, attrs)}} keeping the lowest row."""
    meta = {}
    for row, t in held:
        vars_ = meta.setdefault((t.beam, t.direction), {})
        for name, values in t.data.items():
            if name not in vars_ or row < vars_[name][0]:
                vars_[name] = (row, np.asarray(values).dtype.str, dict(t.var_attrs[name]))
    return meta


def combine(metas):
    """Merge every rank's metadata the same way on every rank; variable order = first seen by row."""
    out = {}
    for meta in metas:
        for key, vars_ in meta.items():
            dst = out.setdefault(key, {})
            for name, info in vars_.items():
                if name not in dst or info[0] < dst[name][0]:
                    dst[name] = info
    return out


def _group_vars(every, own, beam):
    """The group's variables: its own metadata, else the run's with the source path of this beam."""
    out = {}
    for name, (row, dtype, attrs) in every.items():
        if name in own:
            out[name] = own[name]
        else:
            src = attrs.get("source", "")
            if src.startswith("/gt"):
                src = f"/{beam}/{src[6:]}" if src[5] == "/" else src
            out[name] = (row, dtype, dict(attrs, source=src))
    return out


def _blocks(rows, counts, offsets):
    """Contiguous (start, length) runs in the file for this rank's granule rows (adjacent rows joined)."""
    blocks = []
    for r in rows:
        n = int(counts[r])
        if n == 0:
            continue
        start = int(offsets[r])
        if blocks and blocks[-1][0] + blocks[-1][1] == start:
            blocks[-1][1] += n
        else:
            blocks.append([start, n])
    return blocks


def _write_collective(dset, blocks, buf):
    """Every rank calls H5Dwrite with a collective transfer list, even with an empty selection."""
    mspace, fspace, buf, dxpl = write_selection(dset, blocks, buf)
    dset.id.write(mspace, fspace, buf, dxpl=dxpl)


def write_selection(dset, blocks, buf):
    """(memory space, file space as the union of ``blocks``, contiguous buffer, collective dxpl)."""
    fspace = dset.id.get_space()
    fspace.select_none()
    for start, n in blocks:
        fspace.select_hyperslab((start,), (n,), op=h5py.h5s.SELECT_OR)
    mspace = h5py.h5s.create_simple((max(buf.size, 1),))
    if buf.size == 0:
        mspace.select_none()
        buf = np.zeros(1, dset.dtype)
    dxpl = h5py.h5p.create(h5py.h5p.DATASET_XFER)
    dxpl.set_dxpl_mpio(h5py.h5fd.MPIO_COLLECTIVE)
    return mspace, fspace, np.ascontiguousarray(buf), dxpl


def _gatherv(comm, buf):
    """Rank 0 receives every rank's buffer concatenated in rank order (numeric Gatherv, no pickling)."""
    counts = comm.allgather(int(buf.size))
    if comm.size == 1:
        return buf
    out = np.empty(sum(counts), buf.dtype) if comm.rank == 0 else None
    comm.Gatherv(np.ascontiguousarray(buf), [out, counts] if comm.rank == 0 else None, root=0)
    return out


def mpi_h5py(comm):
    """Parallel HDF5 is usable: h5py built with MPI, a real mpi4py communicator, not forced off."""
    return (bool(h5py.get_config().mpi) and hasattr(comm, "py2f")
            and os.environ.get("READATL06_MERGE_SERIAL", "") != "1")


def merge_tracks(comm, granules, held, path, opts=None, parameters=None, parallel=None):
    """Write the merged file. ``granules``: GranuleName list in §3 order (the same on every rank);
    ``held``: this rank's ``[(granule_row, Track)]``. Returns the number of points written."""
    parallel = mpi_h5py(comm) if parallel is None else parallel
    if not parallel and comm.rank == 0:
        print("readatl06 merge: no parallel HDF5 (h5py without MPI or forced off): rank 0 gathers the "
              "arrays and writes the file serially", file=sys.stderr)
    held = sorted(held, key=lambda rt: (rt[0], BEAMS.index(rt[1].beam), rt[1].direction))
    meta = combine(comm.allgather(describe(held)))
    every = combine([{0: v} for v in meta.values()]).get(0, {})   # every group gets every variable
    ng = len(granules)
    counts = np.zeros((len(GROUPS), ng), np.int64)
    by_group = {}
    for row, t in held:
        k = GROUPS.index((t.beam, t.direction))
        counts[k, row] += len(t)
        by_group.setdefault(k, []).append((row, t))
    counts = comm.allreduce(counts) if comm.size > 1 else counts
    offsets = np.zeros_like(counts)
    offsets[:, 1:] = np.cumsum(counts, axis=1)[:, :-1]
    totals = counts.sum(axis=1)
    if parameters is None and opts is not None:
        parameters = opts.parameters()

    # Written under a temporary name in the target's folder (rank 0's name, the same on every rank)
    # and renamed by rank 0 after the collective close: a killed merge never leaves a file under
    # the final name, and an existing file is replaced only when the new one is complete.
    tmp = comm.bcast(tmp_name(path, f"{os.getpid()}") if comm.rank == 0 else None, root=0)
    if parallel:
        f = h5py.File(tmp, "w", driver="mpio", comm=comm)
    else:
        f = h5py.File(tmp, "w") if comm.rank == 0 else None
    try:
        if f is not None:
            _granule_table(f, granules, parameters, write=(comm.rank == 0))
        for k, (beam, direction) in enumerate(GROUPS):
            crash_point("merge-group")
            vars_ = _group_vars(every, meta.get((beam, direction), {}), beam)
            n = int(totals[k])
            grp = f.require_group(f"{beam}/{direction}") if f is not None else None
            if grp is not None:
                grp.attrs["beam"] = beam
                grp.attrs["direction"] = direction
            mine = by_group.get(k, [])
            blocks = _blocks([r for r, _ in mine], counts[k], offsets[k])
            items = sorted(vars_.items(), key=lambda kv: (kv[1][0], kv[0]))
            items.append(("granule_index", (0, "<i4", {"long_name": "row of this point's granule in /granules",
                                                        "units": "1"})))
            for name, (_, dtype, attrs) in items:
                if name == "granule_index":
                    buf = np.concatenate([np.full(len(t), r, np.int32) for r, t in mine]) if mine else np.zeros(0, "i4")
                else:
                    fill = fill_for(dtype, attrs)
                    parts = [np.asarray(t.data[name]) if name in t.data else np.full(len(t), fill, dtype)
                             for _, t in mine]
                    buf = np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)
                    if "_FillValue" not in attrs:
                        attrs = dict(attrs, _FillValue=fill)
                _dataset(comm, f, grp, name, dtype, n, attrs, blocks, buf, parallel, mine, counts[k], offsets[k])
        if f is not None:
            f.attrs["software"] = f"readatl06 {__version__}"
            f.attrs["n_granules"] = np.int64(ng)
    finally:
        if f is not None:
            f.close()
    comm.barrier()
    crash_point("merge-before-rename")
    if comm.rank == 0:
        os.replace(tmp, path)
    comm.barrier()
    return int(totals.sum())


def _dataset(comm, f, grp, name, dtype, n, attrs, blocks, buf, parallel, mine, counts, offsets):
    fill = attrs.get("_FillValue")
    kw = dict(chunks=(min(n, CHUNK),), compression="gzip", compression_opts=4, shuffle=True) if n else {}
    if parallel:
        d = grp.create_dataset(name, (n,), dtype=dtype, fillvalue=fill, **kw)
        for key, value in attrs.items():
            d.attrs[key] = value
        if n:   # zero-size: nobody writes (the same decision on every rank)
            _write_collective(d, blocks, buf)
        return
    # serial fallback: rank 0 places every rank's blocks
    all_blocks = comm.allgather(blocks)
    data = _gatherv(comm, buf)
    if comm.rank != 0:
        return
    full = np.empty(n, dtype)
    pos = 0
    for rank_blocks in all_blocks:
        for start, length in rank_blocks:
            full[start:start + length] = data[pos:pos + length]
            pos += length
    d = grp.create_dataset(name, data=full, fillvalue=fill, **kw)
    for key, value in attrs.items():
        d.attrs[key] = value


def _granule_table(f, granules, parameters, write):
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


def load_track(path):
    """A Track read back from a per-beam file (for ``merge OUTDIR`` and ``--resume --merge``)."""
    from readatl06.names import parse_name
    from readatl06.reduce import Track
    with h5py.File(path, "r") as f:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        data = {k: f[k][()] for k in f}
        var_attrs = {k: {a: (v.decode() if isinstance(v, bytes) else v) for a, v in f[k].attrs.items()}
                     for k in f}
    return Track(parse_name(attrs["granule"]), attrs["beam"], attrs["direction"], data, var_attrs, attrs)


def _outdir_plan(outdir, output, overwrite, params):
    """Rank 0, under the folder's lock: (files, granules, sizes) to merge; UsageError when the target
    is not allowed or the folder mixes parameter sets and ``params`` does not say which."""
    import glob

    from readatl06 import manifest
    from readatl06 import outdir as outdir_mod
    from readatl06.errors import UsageError
    from readatl06.names import parse_name
    files = sorted(glob.glob(os.path.join(glob.escape(outdir), "*" + outdir_mod.BEAM_FILE_GLOB)))
    outdir_mod.check_file_target("-o", output, files, overwrite)
    outdir_mod.remove_leftovers(os.path.dirname(os.path.abspath(output)), [os.path.basename(output)])
    by_key, granule_of = {}, {}
    for p in files:
        with h5py.File(p, "r") as f:
            g, par = f.attrs["granule"], f.attrs.get("parameters", "{}")
        g, par = (v.decode() if isinstance(v, bytes) else str(v) for v in (g, par))
        granule_of[p] = g
        by_key.setdefault(manifest.params_key(par), []).append(p)
    if params is None and len(by_key) > 1:
        sets = "; ".join(f"{k}: {len(v)} files" for k, v in sorted(by_key.items()))
        raise UsageError(f"{outdir} mixes per-beam files of {len(by_key)} parameter sets ({sets}); "
                         "choose one with --parameters KEY")
    if params is not None and params not in by_key:
        raise UsageError(f"--parameters {params}: no per-beam file in {outdir} has it "
                         f"(found: {', '.join(sorted(by_key)) or 'none'})")
    key = params if params is not None else next(iter(by_key), None)
    files = by_key.get(key, [])
    names = {granule_of[p] for p in files}
    for r in manifest.latest(manifest.read_records(outdir)).values():   # reduced granules without points
        if r.get("status") == "empty" and r.get("params") == key:
            names.add(r["granule"])
    return files, sorted(parse_name(n) for n in names), [os.path.getsize(p) for p in files]


def merge_outdir(comm, outdir, output, overwrite=False, params=None):
    """``readatl06 merge OUTDIR -o MERGED.h5``: ranks read disjoint per-beam files, then merge.
    Returns the exit status (2: bad target or mixed parameter sets, before any work)."""
    from readatl06 import outdir as outdir_mod
    from readatl06 import schedule
    from readatl06.errors import UsageError
    plan, lock = None, None
    if comm.rank == 0:
        try:
            if not os.path.isdir(outdir):
                raise UsageError(f"{outdir}: no such folder")
            lock = outdir_mod.Lock(outdir, "merge")
            plan = _outdir_plan(outdir, output, overwrite, params)
            if not plan[0]:
                print(f"readatl06 merge: no per-beam files (*_gtNx_A|D.h5) in {outdir}", file=sys.stderr)
        except UsageError as exc:
            print(f"readatl06 merge: error: {exc}", file=sys.stderr)
            plan = 2
    plan = comm.bcast(plan, root=0)
    try:
        if plan == 2 or not plan[0]:
            return 2 if plan == 2 else 1
        files, granules, sizes = plan
        row = {g.name: i for i, g in enumerate(granules)}
        held = []
        parameters = None
        for i in schedule.assign(sizes, comm.size)[comm.rank]:
            t = load_track(files[i])
            parameters = parameters or t.attrs.get("parameters")
            held.append((row[t.granule.name], t))
        parameters = next((p for p in comm.allgather(parameters) if p), None)
        n = merge_tracks(comm, granules, held, output, parameters=parameters)
        if comm.rank == 0:
            print(f"readatl06 merge: {n} points from {len(files)} files of {len(granules)} granules -> {output}")
        return 0
    finally:
        if lock is not None:
            lock.release()
