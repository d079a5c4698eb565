"""Set-up check: every rank writes its slice of a gzip dataset collectively, then reads it back.

Run as ``mpirun -n 4 python -m readatl06.selfcheck FILE.h5``; exits non-zero on any mismatch.
"""
import sys

import numpy as np


def main(path):
    from mpi4py import MPI
    import h5py

    comm = MPI.COMM_WORLD
    if not h5py.get_config().mpi:
        if comm.rank == 0:
            print("FATAL: h5py has no MPI support", file=sys.stderr)
        return 1
    per_rank = 250_000
    n = per_rank * comm.size
    with h5py.File(path, "w", driver="mpio", comm=comm) as f:
        d = f.create_dataset("x", (n,), dtype="f8", chunks=(65536,), compression="gzip", shuffle=True)
        lo = comm.rank * per_rank
        with d.collective:
            d[lo:lo + per_rank] = np.arange(lo, lo + per_rank, dtype="f8")
    comm.Barrier()
    with h5py.File(path, "r", driver="mpio", comm=comm) as f:
        ok = np.array_equal(f["x"][:], np.arange(n, dtype="f8")) and f["x"].compression == "gzip"
    ok = comm.allreduce(ok, op=MPI.LAND)
    if comm.rank == 0:
        print(f"parallel HDF5 check: {comm.size} ranks wrote {n} gzip-compressed values collectively: "
              + ("OK" if ok else "MISMATCH"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
