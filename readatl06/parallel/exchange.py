"""Point-to-point data exchanges as numeric MPI collectives (no pickling): ``Alltoallv`` of a
buffer to its destination ranks and ``Gatherv`` to rank 0."""
import numpy as np

def alltoallv(comm, buf, scounts, rcounts, dtype):
    """``buf`` scattered by ``scounts``; the buffer received, by source rank (bytes on the wire)."""
    out = np.empty(int(rcounts.sum()), dtype)
    if comm.size == 1:
        out[...] = buf
        return out
    from mpi4py import MPI
    size = np.dtype(dtype).itemsize

    def spec(counts):
        c = (counts * size).astype(np.int64)
        return c.tolist(), np.concatenate([[0], np.cumsum(c)[:-1]]).tolist()

    sc, sd = spec(scounts)
    rc, rd = spec(rcounts)
    comm.Alltoallv([buf.view(np.uint8), (sc, sd), MPI.BYTE], [out.view(np.uint8), (rc, rd), MPI.BYTE])
    return out


def gatherv(comm, buf):
    """Rank 0 receives every rank's buffer concatenated in rank order (numeric Gatherv, no pickling)."""
    counts = comm.allgather(int(buf.size))
    if comm.size == 1:
        return buf
    out = np.empty(sum(counts), buf.dtype) if comm.rank == 0 else None
    comm.Gatherv(np.ascontiguousarray(buf), [out, counts] if comm.rank == 0 else None, root=0)
    return out
