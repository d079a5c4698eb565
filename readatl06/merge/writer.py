"""One file for the whole run (docs/merge.md), the same bytes for any number of ranks, rounds or holders.

Granules are ordered by (acquisition time in the name, file name); within a (beam, direction) the
points of granule g start at the prefix sum of the counts of granules before g. Every rank builds the
same plan from one allgather of the tracks each holds (in memory, or as per-beam files), and each
group is written in rounds that fit ``--merge-memory``. In a round every rank owns a contiguous run
of whole chunks of every dataset (``redistribute``): it reads its share of the per-beam files itself
and receives the points other ranks hold in memory with one Alltoallv per dataset.

Who writes what: rank 0 alone makes every HDF5 call, serially, on a file object (h5py's ``fileobj``
driver, :class:`ChunkHoles`): the granule table, every group, dataset and attribute, the netCDF
dimensions, and the allocation of every chunk. The ranks write the data themselves, with ``pwrite``
into the file: ``deflate``: each rank shuffles and deflates its own chunks (``hdf5.codecs.encode``
with zlib's deflate at level ``GZIP_LEVEL``: its output is a function of the chunk alone, where ISA-L's
was seen to differ now and then between processes at the same bytes; a partial last chunk padded with
zeros, so no byte of the file is left to chance), sends their sizes to rank 0, which stores each chunk with a direct chunk write
whose bytes :class:`ChunkHoles` leaves out of the file (HDF5 allocates and indexes the chunk), and
answers with the addresses; ``none``: contiguous datasets allocated when rank 0 creates them, each
rank writes its run at the dataset's offset. Rank 0 allocates the chunks of a round in one fixed
order — chunk by chunk, within a chunk dataset by dataset — so that the sequence of HDF5 calls, and
with it the whole file, is the same whatever the rounds, the ranks or where the points were: the
merged file is byte-for-byte reproducible (sha256). No collective HDF5 call is made, so a rank that
fails cannot leave the others inside one (``parallel.world.abort_on_error`` stops the job).
"""
import contextlib
import os
import sys
import zlib

import h5py
import numpy as np

from readatl06 import __version__
from readatl06.hdf5.codecs import encode
from readatl06.merge import layout as ml
from readatl06.merge import redistribute as rd
from readatl06.parallel.exchange import allgather_objects, alltoallv
from readatl06.merge.layout import GI, GROUPS, GZIP_LEVEL, combine, describe, fill_for  # noqa: F401 (API)
from readatl06.merge.redistribute import memory_bytes
from readatl06.merge.sources import Sources, track_bytes
from readatl06.outputs.outdir import TrackFile  # noqa: F401 (API)
from readatl06.outputs.folder import PlantedError, check_claim, crash_point, open_new, tmp_name
from readatl06.atl06.schema import DIMENSION, FEATURE_TYPE, GRANULE_DIMENSION
from readatl06.outputs.trackfile import CF_FILE_ATTRS
from readatl06.hdf5.dimensions import attach_all

CHUNK = rd.CHUNK_MAX       # elements per chunk of a large merged dataset (smaller ones: rd.chunk_for)
DEFAULT_MEMORY_MB = rd.DEFAULT_MEMORY_MB
ROUND_SHARE = rd.ROUND_SHARE
HOLE = 0xA5                # the byte of the stand-in chunks rank 0 hands HDF5 (never written)
last_stats = {}            # this process's figures of its last merge (rounds, largest buffer ...)


class ChunkHoles:
    """The file object rank 0's HDF5 writes the merged file through (h5py's ``fileobj`` driver, which
    has no metadata aggregation or cache of its own: every write HDF5 makes arrives here, whole).
    Everything is written to the file except the stand-in of the chunk being allocated
    (:meth:`allocate`): its place is left as a hole, which the chunk's owner fills with ``pwrite``."""

    def __init__(self, path):
        fd = open_new(path, os.O_RDWR)   # created new, never through a link planted at the name
        st = os.fstat(fd)
        self.ident = (st.st_dev, st.st_ino)      # checked again before the rename (check_claim)
        self.fh = os.fdopen(fd, "w+b", buffering=0)  # noqa: SIM115 (closed by close())
        self.skip = None         # the stand-in bytes of the chunk being allocated
        self.at = None           # where HDF5 put it
        self.error = None        # an OSError of a write (a full disk): raised as itself, not as HDF5's

    def seek(self, pos, whence=0):
        return self.fh.seek(pos, whence)

    def tell(self):
        return self.fh.tell()

    def read(self, n=-1):
        return self.fh.read(n)

    def write(self, data):
        if self.skip is not None and len(data) == len(self.skip) and bytes(data) == self.skip:
            self.at, self.skip = self.fh.tell(), None
            return len(data)
        view, done = memoryview(data).cast("B"), 0
        try:
            while done < len(view):
                done += self.fh.write(view[done:])
        except OSError as exc:
            self.error = self.error or exc
            raise
        return done

    def truncate(self, size=None):
        return self.fh.truncate(size)

    def flush(self):
        pass

    def close(self):
        self.fh.close()

    def allocate(self, dset, start, size):
        """The file address HDF5 gives a chunk of ``size`` stored bytes at element ``start`` of the
        DatasetID ``dset`` (filters applied: mask 0)."""
        self.skip = bytes([HOLE]) * size
        dset.write_direct_chunk((start,), self.skip)
        if self.skip is not None or self.at is None:
            raise RuntimeError(f"HDF5 did not write the {size}-byte chunk at {start} of {dset.name!r} as one block")
        at, self.at = self.at, None
        return at


METADATA_CACHE = 1 << 18     # bytes (as stored) of HDF5 metadata rank 0 keeps in memory for the merged file


def file_access(holes):
    """Rank 0's file access properties of the merged file: h5py's ``fileobj`` driver on ``holes``, and
    a metadata cache of a fixed METADATA_CACHE bytes. HDF5's default (2 MB, as stored) fills with the
    chunk index's B-tree nodes, ~10 times as large in memory as in the file (a node's keys hold 33
    coordinates each): ~19 MiB on rank 0 once a product has ~10^5 chunks, growing with the granules
    until then. At 256 KB the chunks are placed as fast (the nodes being filled stay cached) and
    rank 0 holds ~2 MiB of them whatever the product's size; the file's bytes are the same."""
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_fileobj_driver(h5py.h5fd.fileobj_driver, holes)
    config = fapl.get_mdc_config()
    config.set_initial_size = True
    config.initial_size = config.min_size = config.max_size = METADATA_CACHE
    config.incr_mode = config.decr_mode = config.flash_incr_mode = 0      # H5C_incr__off, ...: fixed
    fapl.set_mdc_config(config)
    return fapl


def _create(tmp, granules, parameters, plans, items, compression):
    """Rank 0: the new file with every object (:func:`layout.create`). Returns (file, holes, datasets,
    {(group, name): offset} of the contiguous datasets)."""
    holes = ChunkHoles(tmp)
    try:
        fapl = file_access(holes)
        fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
        fcpl.set_obj_track_times(False)
        fid = h5py.h5f.create(repr(holes).encode("ascii", "replace"), h5py.h5f.ACC_TRUNC, fapl=fapl, fcpl=fcpl)
        f = h5py.File(fid)
    except BaseException:
        holes.close()
        raise
    try:
        dsets = ml.create(f.id, granules, parameters, plans, items, compression)
    except BaseException:
        _close(f, holes)
        raise
    offsets = {}
    if compression == "none":
        offsets = {(k, name): d.get_offset() for k, group in enumerate(dsets) for name, d in group.items()
                   if plans[k].total}
    return f, holes, dsets, offsets


def _rank0_done(comm, error, what):
    """After a step rank 0 makes alone: every rank goes on, or every rank raises — rank 0 its own
    error, the others an ElsewhereError saying so (none is left waiting for rank 0)."""
    from readatl06.parallel.world import ElsewhereError, cause
    failed = comm.bcast(None if error is None else cause(error), root=0) if comm.size > 1 else None
    if error is not None:
        raise error
    if failed:
        raise ElsewhereError(f"rank 0 failed {what}: {failed}")


def _close(f, holes):
    try:
        f.close()
    finally:
        holes.close()


def _finish(f, granules):
    """Rank 0, after every chunk is in place: the root attributes, each group's netCDF dimension with
    its datasets attached and the CF attributes (docs/merge.md)."""
    f.attrs["software"] = f"readatl06 {__version__}"
    f.attrs["n_granules"] = np.int64(len(granules))
    f.attrs.update(CF_FILE_ATTRS)
    attach_all(f["granules"], GRANULE_DIMENSION)
    for beam, direction in GROUPS:
        attach_all(f[beam][direction], DIMENSION)
        f[beam][direction].attrs["featureType"] = FEATURE_TYPE


def _plans(comm, held, items, budget, granules):
    """Per group: the GroupPlan from every rank's sources, and {source index: Track} of this rank's."""
    by_group = rd.source_table(comm, held, granules)
    mine = {(row, GROUPS.index((t.beam, t.direction))): t for row, t in held.tracks if len(t)}
    plans, tracks = [], []
    for k, (rows, count, holder, path_of) in enumerate(by_group):
        if len(np.unique(rows)) != len(rows):
            raise ValueError(f"two tracks of one granule in group {'/'.join(GROUPS[k])}")
        sizes = [np.dtype(dt).itemsize for _, dt, _, _ in items[k]]
        # per point of a rank's run: every dataset's buffer, every dataset's deflated chunks (at most
        # about as large) held until rank 0 has placed them, one dataset's send and receive buffers
        gp = rd.GroupPlan(rows, count, holder, comm.size, 2 * sum(sizes) + 2 * max(sizes), budget, path_of)
        plans.append(gp)
        tracks.append({i: mine[(int(rows[i]), k)] for i in np.flatnonzero(holder == comm.rank).tolist()})
    return plans, tracks


def merge_tracks(comm, granules, held, path, opts=None, parameters=None, memory=None, compression=None,
                 rows=None):
    """Write the merged file (docs/merge.md), called on every rank alike.

    Every rank describes what it holds, one allgather gives every rank the same plan; rank 0 makes
    every HDF5 call and places every chunk, each rank writes its own chunks with ``pwrite``, group by
    group in rounds of whole chunks. The file is written under a temporary name (created new, never
    through a planted link) that rank 0 renames to ``path`` when complete.

    Args:
        comm: the communicator (mpi4py, or the one-rank stand-in of
            ``readatl06.parallel.world.world()``).
        granules: the ``GranuleName`` of every granule in the file, in (acquisition time, file name)
            order, the same list on every rank; it becomes ``/granules``.
        held: this rank's tracks as ``[(granule_row, track)]``: ``granule_row`` the index of the
            track's granule in ``granules``, ``track`` a ``Track`` in memory or a
            ``readatl06.outputs.outdir.TrackFile`` (a per-beam file, which any rank can read).
        path: the merged file to write (an existing one is replaced: the caller checks
            ``--overwrite``).
        opts: the run's ``ReduceOptions``, or None; gives ``parameters`` and ``compression`` where
            those are not given.
        parameters: the JSON string stored as the file's ``parameters`` attribute (default:
            ``opts.parameters()``; None when neither is given).
        rows: the ``granule_index`` of each granule of ``granules`` (a part of an appended product,
            docs/merge.md "Appending": its rows in the whole product); default its position.
        memory: ``--merge-memory`` in MB, the most each rank holds for the merge; None: 512.
        compression: ``"deflate"`` (chunked, shuffle + deflate) or ``"none"`` (contiguous,
            unfiltered); default: ``opts.compression``, else ``"deflate"``.

    Returns:
        int: the number of points written, the same on every rank.
    """
    global last_stats
    compression = compression or getattr(opts, "compression", None) or "deflate"
    ml.check_compression(compression)              # a bad value fails here, on every rank alike
    held = Sources.of(held)
    meta = combine(allgather_objects(comm, [describe(held)]))
    if comm.rank == 0:
        for note in ml.dtype_notes(meta, [g.name for g in granules]):
            print(f"readatl06 merge: note: {note}", file=sys.stderr)
    items = [ml.datasets(vars_) for vars_ in ml.group_vars(meta)]
    budget = memory_bytes(memory) * ROUND_SHARE
    plans, tracks = _plans(comm, held, items, budget, granules)
    counts = [(gp.rows, gp.count) for gp in plans]   # per group: (granule, points); rows replaced below
    if rows is not None:
        for gp in plans:
            gp.rows = np.asarray(rows, np.int64)[gp.rows]
    if parameters is None and opts is not None:
        parameters = opts.parameters()
    stats = {"rounds": 0, "rounds_per_group": [], "largest_buffer": 0, "chunks": [gp.chunk for gp in plans],
             "held_bytes": sum(track_bytes(t) for _, t in held.tracks),
             "budget": budget, "compression": compression, "counts": counts}

    # Written under a temporary name in the target's folder (rank 0's name, the same on every rank)
    # and renamed by rank 0 when complete: a killed merge never leaves a file under the final name,
    # and an existing file is replaced only when the new one is complete.
    tmp = comm.bcast(tmp_name(path, f"{os.getpid()}") if comm.rank == 0 else None, root=0)
    f = holes = dsets = ident = None
    offsets = {}
    fd = None
    try:
        error = None
        if comm.rank == 0:
            try:
                f, holes, dsets, offsets = _create(tmp, granules, parameters, plans, items, compression)
                ident = holes.ident
            except Exception as exc:
                error = holes.error if holes is not None and holes.error else exc
        _rank0_done(comm, error, "creating the merged file")
        offsets = comm.bcast(offsets, root=0)        # also: the file exists
        fd = os.open(tmp, os.O_WRONLY | os.O_NOFOLLOW)
        for k in range(len(GROUPS)):
            crash_point("merge-group")
            rounds = plans[k].rounds(comm.size)
            stats["rounds_per_group"].append(len(rounds))
            for a_round, b_round in rounds:
                sink = _Sink(comm, fd, plans[k], items[k], dsets[k] if dsets else None, holes, offsets, k)
                used = _round(comm, plans[k], tracks[k], items[k], a_round, b_round, sink)
                stats["largest_buffer"] = max(stats["largest_buffer"], used)
            stats["rounds"] += len(rounds)
        os.close(fd)
        fd = None
        comm.barrier()                               # every chunk is in the file
        if comm.rank == 0:
            try:
                _finish(f, granules)
                fh, f = f, None
                _close(fh, holes)
            except Exception as exc:
                error = holes.error if holes is not None and holes.error else exc
        _rank0_done(comm, error, "finishing the merged file")
    except BaseException as exc:
        with contextlib.suppress(Exception):     # the cleanup never hides the error
            if fd is not None:
                os.close(fd)
            if f is not None:
                _close(f, holes)
        if comm.rank == 0 and os.path.lexists(tmp) and not os.path.islink(tmp):
            os.remove(tmp)                       # a failed merge (a full disk) leaves no temporary file
        if holes is not None and holes.error is not None and exc is not holes.error:
            raise holes.error from None          # HDF5 wraps a failed write of its file object
        raise
    crash_point("merge-before-rename")
    error = None
    if comm.rank == 0:
        try:
            check_claim(tmp, ident)              # still the file rank 0 made: nothing planted since
            os.replace(tmp, path)
        except (OSError, PlantedError) as exc:
            error = exc
    _rank0_done(comm, error, "renaming the merged file")
    last_stats = stats
    return int(sum(gp.total for gp in plans))


class _Sink:
    """Where one round's runs go: for ``deflate`` the chunks of every dataset, placed by rank 0 in one
    exchange at the end of the round; for ``none`` straight to the dataset's offset."""

    def __init__(self, comm, fd, gp, items, dsets, holes, offsets, k):
        self.comm, self.fd, self.gp, self.items, self.dsets, self.holes = comm, fd, gp, items, dsets, holes
        self.offsets, self.k = offsets, k
        self.chunks = []           # per dataset (items order): the encoded chunks of my run
        self.held = 0

    def put(self, i, name, a, out):
        """Dataset ``items[i]`` (``name``) of my run ``[a, a + len(out))``."""
        if self.offsets:
            _pwrite(self.fd, out, self.offsets[(self.k, name)] + a * out.dtype.itemsize)
            return 0
        c = self.gp.chunk
        encoded = [encode(out[s:s + c], c, level=GZIP_LEVEL, compress=zlib.compress) for s in range(0, out.size, c)]
        self.chunks.append(encoded)
        self.held += sum(len(e) for e in encoded)
        return self.held

    def place(self, bounds):
        """``deflate``: rank 0 allocates the round's chunks in file order (chunk by chunk, within a chunk
        dataset by dataset), every rank writes its own at their addresses."""
        if self.offsets:
            return
        comm = self.comm
        sizes = np.array([[len(b) for b in per] for per in self.chunks], np.int64).reshape(len(self.items), -1)
        every = comm.gather(sizes, root=0) if comm.size > 1 else [sizes]
        where = error = None
        if comm.rank == 0:
            try:
                where = self._allocate(every, bounds)
            except Exception as exc:
                error = self.holes.error if self.holes is not None and self.holes.error else exc
        _rank0_done(comm, error, "placing the chunks")
        mine = comm.scatter(where, root=0) if comm.size > 1 else where[0]
        for i, per in enumerate(self.chunks):
            for j, data in enumerate(per):
                _pwrite(self.fd, data, int(mine[i, j]))
        self.chunks, self.held = [], 0

    def _allocate(self, every, bounds):
        """Rank 0: per rank, the addresses of its chunks (datasets x chunks), allocated in file order."""
        where = []
        for r, got in enumerate(every):
            at = np.zeros(got.shape, np.int64)
            for j in range(got.shape[1]):
                start = int(bounds[r]) + j * self.gp.chunk
                for i, (name, *_rest) in enumerate(self.items):
                    at[i, j] = self.holes.allocate(self.dsets[name], start, int(got[i, j]))
            where.append(at)
        return where


def _pwrite(fd, data, offset):
    view, done = memoryview(data).cast("B"), 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)


def _round(comm, gp, tracks, items, a_round, b_round, sink):
    """One round of one group: this rank's run of whole chunks assembled dataset by dataset and handed
    to ``sink``. Returns the most bytes of buffers this rank held at once."""
    bounds = gp.bounds(a_round, b_round)
    a, b = int(bounds[comm.rank]), int(bounds[comm.rank + 1])
    outs, live, used = {}, 0, 0
    if gp.any_file_in(a, b):       # all datasets at once: each file opened once per round
        outs = {name: np.empty(b - a, dtype) for name, dtype, _, _ in items}
        rd.read_files(gp, a, b, outs, {name: fill for name, _, _, fill in items})
        live = sum(o.nbytes for o in outs.values())
    ex = rd.plan_exchange(gp, bounds, comm.rank, a_round, b_round) if gp.any_held(a_round, b_round) else None
    held = 0
    for i, (name, dtype, _, fill) in enumerate(items):
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
                got = alltoallv(comm, send.astype(dtype, copy=False), ex.scounts, ex.rcounts)
                extra = send.nbytes + got.nbytes
                del send
                rd.place(ex, got, out)
                del got
        used = max(used, live + held + extra)
        held = sink.put(i, name, a, out)
        used = max(used, live + held)
        live -= out.nbytes
        del out
    sink.place(bounds)
    return used


def rounds_note():
    """`` (in N rounds)`` when the last merge needed more than one round per group."""
    per_group = last_stats.get("rounds_per_group", [])
    return f" (in {last_stats['rounds']} rounds)" if per_group and max(per_group) > 1 else ""
