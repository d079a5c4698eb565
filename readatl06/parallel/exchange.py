"""Point-to-point data exchanges as numeric MPI collectives (no pickling), of arrays of any numpy
dtype, structured ones included: ``Alltoallv`` of a buffer to its destination ranks
(:func:`alltoallv`; :func:`exchange` sorts records by destination first), ``Gatherv`` to rank 0
and ``Allreduce`` of a numeric array (:func:`allreduce_array`: O(array) per rank, where an
allgather of the same arrays would be O(array x P)).

One element of the array travels as one element of an MPI datatype: the numpy dtype's own
(``mpi4py.util.dtlib.from_numpy_dtype``: a predefined type for numbers, a struct of the fields for
a structured dtype), so counts and displacements are in elements, whatever the itemsize.
"""
import contextlib
import functools

import numpy as np

REDUCTIONS = {"sum": np.add, "max": np.maximum, "min": np.minimum}


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
    out = np.empty(int(np.sum(rcounts)), buf.dtype)
    with mpi_type(buf.dtype) as datatype:
        comm.Alltoallv([buf, _displacements(scounts), datatype], [out, _displacements(rcounts), datatype])
    return out


def exchange(comm, records, dest):
    """Every record to its destination rank ``dest`` (one per record); returns the records received,
    by source rank, each source's in their order here (a stable sort by destination)."""
    dest = np.asarray(dest, np.int64)
    order = np.argsort(dest, kind="stable")
    return alltoallv(comm, records[order], np.bincount(dest, minlength=comm.size))


def gatherv(comm, buf):
    """Rank 0 receives every rank's buffer concatenated in rank order (None elsewhere)."""
    counts = comm.allgather(int(buf.size))
    if comm.size == 1:
        return buf
    buf = np.ascontiguousarray(buf)
    out = np.empty(sum(counts), buf.dtype) if comm.rank == 0 else None
    with mpi_type(buf.dtype) as datatype:
        comm.Gatherv([buf, datatype], [out, _displacements(counts), datatype] if comm.rank == 0 else None, root=0)
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
    comm.Allreduce(values, out, op={"sum": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op])
    return out


def _reduce(op, a, b):
    return REDUCTIONS[op](a, b)
