"""Data exchanges as numeric MPI collectives (no pickling), of arrays of any numpy dtype, structured
ones included: ``Alltoallv`` of a buffer to its destination ranks (:func:`alltoallv`; :func:`exchange`
sorts records by destination first), ``Gatherv`` to rank 0 (:func:`gatherv`), ``Allgatherv`` to every
rank (:func:`allgatherv`, :func:`allgather_bytes`), ``Bcast`` of a whole array or object
(:func:`bcast_array`, :func:`bcast_object`), objects gathered to rank 0 as bytes
(:func:`gather_objects`) and ``Allreduce`` of a numeric array (:func:`allreduce_array`: sum, max or
min; O(array) per rank, where an allgather of the same arrays would be O(array x P)).

One element of the array travels as one element of an MPI datatype: the numpy dtype's own
(``mpi4py.util.dtlib.from_numpy_dtype``: a predefined type for numbers, a struct of the fields for
a structured dtype), so counts and displacements are in elements, whatever the itemsize.

**Past 2^31.** MPI's counts and displacements are C ints. Every helper here splits a collective into
rounds so that no count, displacement or buffer of one call exceeds ``chunk_bytes()`` (default
2^30 bytes; the environment variable ``READATL06_MPI_CHUNK_BYTES`` sets it, e.g. 64 to make the
chunked path run on small data): in a round a rank sends at most ``limit / P`` bytes to each peer
(so it receives at most ``limit`` in all); the limit (the smallest any rank was given) and the number
of rounds are agreed with the counts (one ``Allreduce`` or ``Allgather``).
The received bytes are the same whatever the limit.

**Counted.** :data:`sent` holds the bytes this process has put into these helpers' collectives, for
the tests and the bench (:func:`reset_sent`): its own payload once, counts included, whatever the
MPI library's algorithm forwards — ``Alltoallv``: what it sends to other ranks (and 8 bytes per rank of
counts when they are exchanged), ``Gatherv`` and ``Allgatherv``: its buffer and 16 bytes (its count and its limit),
``Bcast``: the root's buffer.
"""
import contextlib
import functools
import os
import pickle

import numpy as np

REDUCTIONS = {"sum": np.add, "max": np.maximum, "min": np.minimum}
CHUNK_ENV = "READATL06_MPI_CHUNK_BYTES"
DEFAULT_CHUNK_BYTES = 1 << 30
sent = {"bytes": 0, "calls": 0}


def reset_sent():
    sent["bytes"], sent["calls"] = 0, 0


def _count(nbytes):
    sent["bytes"] += int(nbytes)
    sent["calls"] += 1


def chunk_bytes():
    """The most bytes one MPI call of these helpers moves (``READATL06_MPI_CHUNK_BYTES``, default
    2^30); UsageError naming the variable for a value that is not a whole number of bytes from 1 to
    2^31 - 1 (the same on every rank: every rank raises it at the same call)."""
    from readatl06.errors import UsageError
    raw = os.environ.get(CHUNK_ENV, "").strip()
    if not raw:
        return DEFAULT_CHUNK_BYTES
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value < 1 << 31:
        raise UsageError(f"environment {CHUNK_ENV}={raw!r}: expected a whole number of bytes from 1 to 2^31 - 1")
    return value


def _per_peer(comm, limit, itemsize):
    """Elements one rank may send to one peer in one round, under ``limit`` bytes a call."""
    return max(1, int(limit) // max(int(itemsize), 1) // comm.size)


def _plan_rounds(comm, need, itemsize):
    """(elements per peer and round, rounds), the same on every rank: one ``Allreduce`` gives the
    most any rank needs to or from one peer (``need`` elements here) and the smallest limit any
    rank was given (a setting that differed between ranks cannot make them disagree)."""
    from mpi4py import MPI
    mine = np.array([int(need), -chunk_bytes()], np.int64)
    out = np.empty(2, np.int64)
    comm.Allreduce(mine, out, op=MPI.MAX)
    per = _per_peer(comm, -out[1], itemsize)
    return per, -(-int(out[0]) // per)


def _is_mpi(comm):
    return hasattr(comm, "Allgatherv") and comm.size > 1


@contextlib.contextmanager
def mpi_type(dtype):
    """The committed MPI datatype of one element of ``dtype`` (freed afterwards unless predefined)."""
    from mpi4py.util.dtlib import from_numpy_dtype
    datatype = from_numpy_dtype(np.dtype(dtype))
    if datatype.is_predefined:
        yield datatype
        return
    datatype.Commit()
    try:
        yield datatype
    finally:
        datatype.Free()


def _displacements(counts):
    counts = np.asarray(counts, np.int64)
    return counts.tolist(), (np.cumsum(counts) - counts).tolist()


def _starts(counts):
    counts = np.asarray(counts, np.int64)
    return np.cumsum(counts) - counts


def _take(buf, starts, counts, j, per):
    """Round ``j``'s part of each block of ``buf`` (block r: ``counts[r]`` elements at ``starts[r]``):
    (the parts packed, their counts)."""
    lo = np.minimum(np.int64(j) * per, counts)
    hi = np.minimum(lo + per, counts)
    parts = [buf[s + a:s + b] for s, a, b in zip(starts.tolist(), lo.tolist(), hi.tolist())]
    return (np.concatenate(parts) if parts else buf[:0]), hi - lo


def _put(out, starts, counts, j, per, got):
    """Round ``j``'s received parts (packed in ``got``) into their blocks of ``out``."""
    lo = np.minimum(np.int64(j) * per, counts)
    hi = np.minimum(lo + per, counts)
    at = 0
    for s, a, b in zip(starts.tolist(), lo.tolist(), hi.tolist()):
        out[s + a:s + b] = got[at:at + b - a]
        at += b - a


def alltoallv(comm, buf, scounts, rcounts=None):
    """``buf`` (elements in destination-rank order, ``scounts[r]`` of them to rank r) sent; returns
    the elements received, by source rank. ``rcounts``: the elements from each rank when the caller
    knows them, else they are exchanged (``Alltoall``)."""
    buf = np.ascontiguousarray(buf)
    scounts = np.asarray(scounts, np.int64)
    if comm.size == 1:
        return buf.copy()
    if rcounts is None:
        rcounts = np.empty(comm.size, np.int64)
        comm.Alltoall(scounts, rcounts)
        _count(8 * (comm.size - 1))
    rcounts = np.asarray(rcounts, np.int64)
    out = np.empty(int(np.sum(rcounts)), buf.dtype)
    per, rounds = _plan_rounds(comm, max(int(scounts.max(initial=0)), int(rcounts.max(initial=0))),
                               buf.dtype.itemsize)
    sstart, rstart = _starts(scounts), _starts(rcounts)
    _count((int(scounts.sum()) - int(scounts[comm.rank])) * buf.dtype.itemsize)
    with mpi_type(buf.dtype) as datatype:
        for j in range(rounds):
            if rounds == 1:             # every count within the limit: straight from and to the buffers
                comm.Alltoallv([buf, _displacements(scounts), datatype], [out, _displacements(rcounts), datatype])
                break
            part, sc = _take(buf, sstart, scounts, j, per)
            rc = np.minimum(np.maximum(rcounts - np.int64(j) * per, 0), per)
            got = np.empty(int(rc.sum()), buf.dtype)
            comm.Alltoallv([part, _displacements(sc), datatype], [got, _displacements(rc), datatype])
            _put(out, rstart, rcounts, j, per, got)
    return out


def exchange(comm, records, dest):
    """Every record to its destination rank ``dest`` (one per record); returns the records received,
    by source rank, each source's in their order here (a stable sort by destination)."""
    dest = np.asarray(dest, np.int64)
    order = np.argsort(dest, kind="stable")
    return alltoallv(comm, records[order], np.bincount(dest, minlength=comm.size))


def _counts(comm, n):
    """(every rank's ``n`` (int64, rank order), the smallest limit any rank was given): one
    ``Allgather`` of 16 bytes each."""
    both = np.empty((comm.size, 2), np.int64)
    comm.Allgather(np.array([n, chunk_bytes()], np.int64), both)
    _count(16)
    return both[:, 0].copy(), int(both[:, 1].min())


def gatherv(comm, buf):
    """Rank 0 receives every rank's buffer concatenated in rank order (None elsewhere)."""
    if comm.size == 1:
        return buf
    if not _is_mpi(comm):
        parts = comm.gather(np.ascontiguousarray(buf), root=0)
        return np.concatenate(parts) if comm.rank == 0 else None
    buf = np.ascontiguousarray(buf)
    counts, limit = _counts(comm, buf.size)
    out = np.empty(int(counts.sum()), buf.dtype) if comm.rank == 0 else None
    per = _per_peer(comm, limit, buf.dtype.itemsize)
    rounds = -(-int(counts.max()) // per) if counts.any() else 0
    starts = _starts(counts)
    if comm.rank != 0:
        _count(buf.nbytes)
    with mpi_type(buf.dtype) as datatype:
        for j in range(rounds):
            if rounds == 1:
                comm.Gatherv([buf, datatype], [out, _displacements(counts), datatype] if comm.rank == 0 else None,
                             root=0)
                break
            a = min(j * per, buf.size)
            part = buf[a:min(a + per, buf.size)]
            rc = np.minimum(np.maximum(counts - np.int64(j) * per, 0), per)
            got = np.empty(int(rc.sum()), buf.dtype) if comm.rank == 0 else None
            comm.Gatherv([part, datatype], [got, _displacements(rc), datatype] if comm.rank == 0 else None, root=0)
            if comm.rank == 0:
                _put(out, starts, counts, j, per, got)
    return out


def allreduce_array(comm, values, op="sum"):
    """The element-wise ``op`` (``sum``, ``max`` or ``min``) of every rank's numeric array of one
    shape, on every rank: ``Allreduce`` in place of the array's own MPI type (a pickled
    ``allreduce`` for a communicator without it, such as local workers)."""
    values = np.ascontiguousarray(values)
    if comm.size == 1:
        return values.copy()
    if not hasattr(comm, "Allreduce"):
        return np.asarray(comm.allreduce(values, op=functools.partial(_reduce, op)), values.dtype)
    from mpi4py import MPI
    out = np.empty_like(values)     # the buffers' own predefined type (a derived one has no MAX)
    _count(values.nbytes)
    comm.Allreduce(values, out, op={"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op])
    return out


def _reduce(op, a, b):
    return REDUCTIONS[op](a, b)


def allgatherv(comm, buf):
    """Every rank receives every rank's buffer concatenated in rank order (``Allgatherv``); returns
    (the array, each rank's count)."""
    buf = np.ascontiguousarray(buf)
    if comm.size == 1:
        return buf, np.array([buf.size], np.int64)
    if not _is_mpi(comm):
        parts = comm.allgather(buf)
        return np.concatenate(parts), np.array([p.size for p in parts], np.int64)
    counts, limit = _counts(comm, buf.size)
    out = np.empty(int(counts.sum()), buf.dtype)
    per = _per_peer(comm, limit, buf.dtype.itemsize)
    rounds = -(-int(counts.max()) // per) if counts.any() else 0
    starts = _starts(counts)
    _count(buf.nbytes)
    with mpi_type(buf.dtype) as datatype:
        for j in range(rounds):
            if rounds == 1:
                comm.Allgatherv([buf, datatype], [out, _displacements(counts), datatype])
                break
            a = min(j * per, buf.size)
            part = buf[a:min(a + per, buf.size)]
            rc = np.minimum(np.maximum(counts - np.int64(j) * per, 0), per)
            got = np.empty(int(rc.sum()), buf.dtype)
            comm.Allgatherv([part, datatype], [got, _displacements(rc), datatype])
            _put(out, starts, counts, j, per, got)
    return out, counts


def allgather_bytes(comm, items):
    """``items`` (a list of bytes on each rank) of every rank, concatenated in rank order: one
    ``Allgatherv`` of their lengths and one of their bytes (no pickling)."""
    lengths = np.array([len(b) for b in items], np.int64)
    blob = np.frombuffer(b"".join(items), np.uint8)
    lengths, _ = allgatherv(comm, lengths)
    blob, _ = allgatherv(comm, blob)
    ends = np.cumsum(lengths)
    data = blob.tobytes()
    return [data[e - n:e] for e, n in zip(ends.tolist(), lengths.tolist())]


def allgather_objects(comm, objs):
    """``objs`` (a list of picklable objects on each rank) of every rank, concatenated in rank order,
    through :func:`allgather_bytes` (for the few, small objects that are no table: no 2^31 limit)."""
    return [pickle.loads(b) for b in allgather_bytes(comm, [pickle.dumps(o, protocol=5) for o in objs])]


def gather_objects(comm, obj):
    """Every rank's ``obj`` on rank 0 as a list in rank order (None elsewhere), pickled and sent as
    bytes with :func:`gatherv` (no 2^31 limit: the records of 10^5 granules)."""
    if comm.size == 1:
        return [obj]
    if not _is_mpi(comm):
        return comm.gather(obj, root=0)
    data = np.frombuffer(pickle.dumps(obj, protocol=5), np.uint8)
    lengths = gatherv(comm, np.array([data.size], np.int64))
    blob = gatherv(comm, data)
    if comm.rank != 0:
        return None
    ends = np.cumsum(lengths).tolist()
    raw = blob.tobytes()
    return [pickle.loads(raw[e - n:e]) for e, n in zip(ends, lengths.tolist())]


def scatter_bytes(comm, parts):
    """Rank 0's ``parts[r]`` (bytes) to rank r; returns this rank's. Through :func:`alltoallv` under
    MPI (pieces below 2^31, counted), else the communicator's own ``scatter``."""
    if comm.size == 1:
        return parts[0]
    if not _is_mpi(comm):
        return comm.scatter(parts, root=0)
    if comm.rank == 0:
        buf = np.frombuffer(b"".join(parts), np.uint8)
        scounts = [len(p) for p in parts]
    else:
        buf, scounts = np.empty(0, np.uint8), np.zeros(comm.size, np.int64)
    return alltoallv(comm, buf, scounts).tobytes()


def bcast_array(comm, arr, root=0):
    """Rank ``root``'s numpy array on every rank: its dtype and shape (pickled, small), then its
    elements with ``Bcast`` in pieces of at most ``chunk_bytes()``."""
    if comm.size == 1:
        return arr
    if not _is_mpi(comm):
        return comm.bcast(arr, root=root)
    head = comm.bcast((arr.dtype, arr.shape, chunk_bytes()) if comm.rank == root else None, root=root)
    out = np.ascontiguousarray(arr) if comm.rank == root else np.empty(head[1], head[0])
    flat = out.reshape(-1)
    if comm.rank == root:
        _count(out.nbytes)
    per = max(1, head[2] // max(out.dtype.itemsize, 1))          # the root's limit
    with mpi_type(out.dtype) as datatype:
        for a in range(0, flat.size, per):
            comm.Bcast([flat[a:a + per], datatype], root=root)
    return out


def bcast_object(comm, obj, root=0):
    """Rank ``root``'s ``obj`` on every rank, pickled and sent as bytes with :func:`bcast_array` (no
    2^31 limit: the plan of 10^6 files)."""
    if comm.size == 1:
        return obj
    if not _is_mpi(comm):
        return comm.bcast(obj, root=root)
    data = np.frombuffer(pickle.dumps(obj, protocol=5), np.uint8) if comm.rank == root else None
    return pickle.loads(bcast_array(comm, data, root=root).tobytes())
