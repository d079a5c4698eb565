"""One file for the whole run, written collectively with parallel HDF5 (docs/merge.md).

Granules are ordered by (acquisition time in the name, file name); within a (beam, direction) the
points of granule g start at the prefix sum of the counts of granules before g, so the file is the
same for any rank count and any distribution of work. Every rank builds the same plan from one
allgather of the tracks each holds (in memory, or as per-beam files): all groups and datasets are
created first, at full size, with identical structure calls on every rank; then each group is
written in rounds that fit ``--merge-memory``. In a round every rank owns whole chunks of every
dataset (``redistribute``): it reads its share of the per-beam files itself and receives the points
other ranks hold in memory with one Alltoallv per dataset, then every rank writes its run of chunks
in ONE collective call per dataset (also with nothing to write: see docs/parallel-hdf5.md on the empty-slice
hang), so each chunk is compressed by exactly one rank. Without MPI in h5py, rank 0 gathers each
round (Gatherv) and writes the same file serially. ``--compression none``: contiguous datasets,
no filters, the same writes. After the close, rank 0 alone gives the file its
netCDF dimensions and CF attributes (``_netcdf``), before the rename.

What the file holds (datasets, attributes, chunks or contiguous storage) is :mod:`readatl06.merge.layout`. The
parallel file is opened with collective metadata reads and writes (``h5native.set_coll_metadata``),
and while it is written HDF5's deflate filter compresses with ISA-L (``h5native.isal_deflate``).
"""
import os
import sys

import h5py
import numpy as np

from readatl06 import __version__
from readatl06.hdf5 import native as h5native
from readatl06.merge import layout as ml
from readatl06.merge import redistribute as rd
from readatl06.parallel.exchange import alltoallv, gatherv
from readatl06.merge.layout import GI, GROUPS, GZIP_LEVEL, combine, describe, fill_for  # noqa: F401 (API)
from readatl06.merge.redistribute import memory_bytes, track_bytes
from readatl06.outputs.outdir import TrackFile  # noqa: F401 (API)
from readatl06.outputs.folder import PlantedError, check_claim, claim, crash_point, tmp_name
from readatl06.atl06.schema import DIMENSION, FEATURE_TYPE, GRANULE_DIMENSION
from readatl06.outputs.trackfile import CF_FILE_ATTRS
from readatl06.hdf5.dimensions import attach_all

CHUNK = rd.CHUNK_MAX       # elements per chunk of a large merged dataset (smaller ones: rd.chunk_for)
DEFAULT_MEMORY_MB = rd.DEFAULT_MEMORY_MB
ROUND_SHARE = rd.ROUND_SHARE
last_stats = {}            # this process's figures of its last merge (rounds, largest buffer ...)


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


def _write_collective(dset, a, b, buf):
    """Every rank calls H5Dwrite with a collective transfer list, even with an empty selection."""
    mspace, fspace, buf, dxpl = write_selection(dset, [(a, b - a)] if b > a else [], buf)
    dset.id.write(mspace, fspace, buf, dxpl=dxpl)


def mpi_h5py(comm):
    """Parallel HDF5 is usable: h5py built with MPI, a real mpi4py communicator, not forced off."""
    return (bool(h5py.get_config().mpi) and hasattr(comm, "py2f")
            and os.environ.get("READATL06_MERGE_SERIAL", "") != "1")


def _plans(comm, held, items, budget):
    """Per group: the GroupPlan from every rank's sources, and {source index: Track} of this rank's."""
    local = [(row, GROUPS.index((t.beam, t.direction)), len(t), t.path if isinstance(t, TrackFile) else None)
             for row, t in held if len(t)]
    table = comm.allgather(local) if comm.size > 1 else [local]
    by_group = [[] for _ in GROUPS]
    for rank, entries in enumerate(table):
        for row, k, n, path in entries:
            by_group[k].append((row, n, -1 if path is not None else rank, path))
    mine = {(row, GROUPS.index((t.beam, t.direction))): t for row, t in held
            if len(t) and not isinstance(t, TrackFile)}
    plans, tracks = [], []
    for k, sources in enumerate(by_group):
        sources.sort(key=lambda s: s[0])
        rows = [s[0] for s in sources]
        if len(set(rows)) != len(rows):
            raise ValueError(f"two tracks of one granule in group {'/'.join(GROUPS[k])}")
        sizes = [np.dtype(dt).itemsize for _, dt, _, _ in items[k]]
        # per point of a rank's run: every dataset's buffer, one dataset's send and receive buffers,
        # and HDF5's uncompressed + compressed chunks of the dataset being written
        gp = rd.GroupPlan(sources, comm.size, sum(sizes) + 4 * max(sizes), budget)
        plans.append(gp)
        tracks.append({i: mine[(s[0], k)] for i, s in enumerate(sources) if s[2] == comm.rank})
    return plans, tracks


def merge_tracks(comm, granules, held, path, opts=None, parameters=None, parallel=None, memory=None,
                 compression=None):
    """Write the merged file (docs/merge.md), called on every rank alike.

    Every rank describes what it holds, one allgather gives every rank the same plan, the file is
    created at full size and written group by group in rounds of whole chunks, each chunk by one
    rank; it is written under a temporary name that rank 0 renames to ``path`` after the close.

    Args:
        comm: the communicator (mpi4py, or the one-rank stand-in of
            ``readatl06.parallel.world.world()``).
        granules: the ``GranuleName`` of every granule in the file, in (acquisition time, file name)
            order, the same list on every rank; it becomes ``/granules``.
        held: this rank's tracks as ``[(granule_row, track)]``: ``granule_row`` the index of the
            track's granule in ``granules``, ``track`` a ``Track`` in memory or a
            ``readatl06.outputs.trackfile.TrackFile`` (a per-beam file, which any rank can read).
        path: the merged file to write (an existing one is replaced: the caller checks
            ``--overwrite``).
        opts: the run's ``ReduceOptions``, or None; gives ``parameters`` and ``compression`` where
            those are not given.
        parameters: the JSON string stored as the file's ``parameters`` attribute (default:
            ``opts.parameters()``; None when neither is given).
        parallel: write through parallel HDF5 (True) or gather each round to rank 0, which writes
            serially (False); default: parallel when h5py has MPI and ``comm`` is an mpi4py
            communicator, unless ``READATL06_MERGE_SERIAL=1``.
        memory: ``--merge-memory`` in MB, the most each rank holds for the merge; None: 512.
        compression: ``"deflate"`` (chunked, shuffle + deflate) or ``"none"`` (contiguous,
            unfiltered); default: ``opts.compression``, else ``"deflate"``.

    Returns:
        int: the number of points written, the same on every rank.
    """
    global last_stats
    parallel = mpi_h5py(comm) if parallel is None else parallel
    compression = compression or getattr(opts, "compression", None) or "deflate"
    ml.storage(0, 1, compression)                 # a bad value fails here, on every rank alike
    if not parallel and comm.rank == 0:
        print("readatl06 merge: no parallel HDF5 (h5py without MPI or forced off): rank 0 gathers the "
              "arrays and writes the file serially", file=sys.stderr)
    held = sorted(held, key=lambda rt: (rt[0], GROUPS.index((rt[1].beam, rt[1].direction))))
    meta = combine(comm.allgather(describe(held)))
    items = [ml.datasets(vars_) for vars_ in ml.group_vars(meta)]
    budget = memory_bytes(memory) * ROUND_SHARE
    plans, tracks = _plans(comm, held, items, budget)
    writers = comm.size if parallel else 1       # serial: rank 0 holds a whole round
    if parameters is None and opts is not None:
        parameters = opts.parameters()
    stats = {"rounds": 0, "rounds_per_group": [], "largest_buffer": 0, "chunks": [gp.chunk for gp in plans],
             "held_bytes": sum(track_bytes(t) for _, t in held if not isinstance(t, TrackFile)),
             "budget": budget, "compression": compression}

    # Written under a temporary name in the target's folder (rank 0's name, the same on every rank)
    # and renamed by rank 0 after the collective close: a killed merge never leaves a file under
    # the final name, and an existing file is replaced only when the new one is complete.
    tmp = comm.bcast(_claimed(path) if comm.rank == 0 else None, root=0)
    if isinstance(tmp, PlantedError):            # a link planted at the name: refused on every rank
        raise PlantedError(str(tmp))
    tmp, ident = tmp
    try:
        _write(comm, tmp, granules, parameters, plans, items, tracks, writers, compression, parallel, stats)
    except BaseException:
        if comm.rank == 0 and os.path.lexists(tmp) and not os.path.islink(tmp):
            os.remove(tmp)                       # a failed merge (a full disk) leaves no temporary file
        raise
    comm.barrier()
    _on_rank0(comm, _netcdf, tmp)
    crash_point("merge-before-rename")
    if comm.rank == 0:
        check_claim(tmp, ident)
        os.replace(tmp, path)
    comm.barrier()
    last_stats = stats
    return int(sum(gp.total for gp in plans))


def _write(comm, tmp, granules, parameters, plans, items, tracks, writers, compression, parallel, stats):
    """Every group's rounds into the new file ``tmp`` (collective)."""
    with h5native.isal_deflate() as isal:
        stats["isal"] = isal
        f, stats["coll_metadata"] = _open(comm, tmp, parallel)
        try:
            dsets = ml.create(f, granules, parameters, comm.rank == 0, plans, items, compression)
            for k in range(len(GROUPS)):
                crash_point("merge-group")
                rounds = plans[k].rounds(writers)
                stats["rounds_per_group"].append(len(rounds))
                for a_round, b_round in rounds:
                    used = _round(comm, plans[k], tracks[k], items[k], dsets[k], a_round, b_round, parallel)
                    stats["largest_buffer"] = max(stats["largest_buffer"], used)
                stats["rounds"] += len(rounds)
            if f is not None:
                f.attrs["software"] = f"readatl06 {__version__}"
                f.attrs["n_granules"] = np.int64(len(granules))
        finally:
            if f is not None:
                f.close()


def _claimed(path):
    """Rank 0: (the temporary name, its identity) made new beside ``path`` (never through a link
    planted at the name, folder.claim), or the PlantedError to raise on every rank."""
    tmp = tmp_name(path, f"{os.getpid()}")
    try:
        return tmp, claim(tmp)
    except PlantedError as exc:
        return exc


def _open(comm, tmp, parallel):
    """(the new file, collective metadata on): parallel on every rank (mpio, as h5py's own
    ``File(tmp, "w", driver="mpio", comm=comm)`` makes it, plus collective metadata reads and writes
    unless ``READATL06_COLL_METADATA=0``), else serial on rank 0 (None elsewhere)."""
    if not parallel:
        return (h5py.File(tmp, "w") if comm.rank == 0 else None), False
    from readatl06.parallel.world import mpi_info
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_EARLIEST, h5py.h5f.LIBVER_LATEST)
    fapl.set_fapl_mpio(comm, mpi_info())
    coll = os.environ.get("READATL06_COLL_METADATA", "1") != "0" and h5native.set_coll_metadata(fapl)
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_obj_track_times(False)
    fid = h5py.h5f.create(os.fsencode(tmp), h5py.h5f.ACC_TRUNC, fapl=fapl, fcpl=fcpl)
    return h5py.File(fid), coll


def _netcdf(path):
    """Rank 0, on the closed file: each group's netCDF dimension with its datasets attached, and the
    CF attributes (docs/merge.md). Serial, after the collective close: no metadata change must be made
    identically by every rank, and no storage for the dimensions (parallel HDF5 allocates early)."""
    with h5py.File(path, "r+") as f:
        f.attrs.update(CF_FILE_ATTRS)
        attach_all(f["granules"], GRANULE_DIMENSION)
        for beam, direction in GROUPS:
            attach_all(f[beam][direction], DIMENSION)
            f[beam][direction].attrs["featureType"] = FEATURE_TYPE


def _on_rank0(comm, fn, *args):
    """``fn(*args)`` on rank 0; every rank raises if it failed (none is left waiting)."""
    error = None
    if comm.rank == 0:
        try:
            fn(*args)
        except Exception as exc:
            error = exc
    failed = comm.bcast(None if error is None else f"{type(error).__name__}: {error}", root=0)
    if error is not None:
        raise error
    elif failed:
        raise RuntimeError(f"rank 0 failed to finish the merged file: {failed}")


def _round(comm, gp, tracks, items, dsets, a_round, b_round, parallel):
    """One round of one group: this rank's run of whole chunks assembled, then written (collectively,
    or gathered to rank 0). Returns the most bytes of buffers this rank held at once."""
    bounds = gp.bounds(a_round, b_round)
    a, b = int(bounds[comm.rank]), int(bounds[comm.rank + 1])
    outs, live, used = {}, 0, 0
    if gp.any_file_in(a, b):       # all datasets at once: each file opened once per round
        outs = {name: np.empty(b - a, dtype) for name, dtype, _, _ in items}
        rd.read_files(gp, a, b, outs, {name: fill for name, _, _, fill in items})
        live = sum(o.nbytes for o in outs.values())
    ex = rd.plan_exchange(gp, bounds, comm.rank, a_round, b_round) if gp.any_held(a_round, b_round) else None
    for name, dtype, _, fill in items:
        out = outs.pop(name, None)
        if out is None:
            out = np.empty(b - a, dtype)
            live += out.nbytes
        extra = 0
        if name == GI:
            rd.fill_index(gp, a, b, out)
        elif ex is not None:
            rd.copy_local(ex, tracks, name, fill, out)
            if ex.needed:       # the same decision on every rank: all or none call Alltoallv
                send = rd.send_buffer(ex, gp, tracks, name, dtype, fill)
                got = alltoallv(comm, send, ex.scounts, ex.rcounts)
                extra = send.nbytes + got.nbytes
                del send
                rd.place(ex, got, out)
                del got
        used = max(used, live + extra)
        if parallel:
            _write_collective(dsets[name], a, b, out)
        else:
            data = gatherv(comm, out)
            if comm.rank == 0:
                dsets[name][a_round:b_round] = data
                used = max(used, live + data.nbytes)
            del data
        live -= out.nbytes
        del out
    return used


def load_track(path):
    """A Track read back from a per-beam file, points included."""
    from readatl06.atl06.track import Track
    t = TrackFile.open(path)
    with h5py.File(path, "r") as f:
        data = {k: f[k][()] for k in t.var_dtypes}
    return Track(t.granule, t.beam, t.direction, data, t.var_attrs, t.attrs)


def rounds_note():
    """`` (in N rounds)`` when the last merge needed more than one round per group."""
    per_group = last_stats.get("rounds_per_group", [])
    return f" (in {last_stats['rounds']} rounds)" if per_group and max(per_group) > 1 else ""
