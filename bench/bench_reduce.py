"""Reduce throughput against a floor: the bare h5py read of the same datasets.

    mpirun -n N python bench/bench_reduce.py GRANULE_DIR [--out DIR] [--repeat 2]

The floor reads, for every granule of this rank, the whole 1-D datasets that reduce needs (no
masking, no output). The ratio floor/reduce says how close the pipeline (read + filter + split +
write with gzip + manifest) gets to merely reading the bytes. Prints one line per figure on rank 0.
"""
import argparse
import glob
import os
import shutil
import time

import h5py


def floor_read(paths, sources):
    n = 0
    for p in paths:
        with h5py.File(p, "r") as f:
            for beam in ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r"):
                g = f.get(f"{beam}/land_ice_segments")
                if g is None:
                    continue
                for s in sources:
                    if s in g:
                        n += g[s][()].nbytes
    return n


def main():
    from mpi4py import MPI

    from readatl06 import schedule
    from readatl06.names import Selection, select
    from readatl06.reduce import ReduceOptions
    from readatl06.runner import run_reduce
    from readatl06.schema import OUTPUT_VARS
    ap = argparse.ArgumentParser()
    ap.add_argument("granules")
    ap.add_argument("--out", default="/tmp/bench_reduce_out")
    ap.add_argument("--repeat", type=int, default=2)
    a = ap.parse_args()
    comm = MPI.COMM_WORLD
    paths = [p for _, p in select(sorted(glob.glob(os.path.join(a.granules, "*.h5")))).granules]
    sizes = [os.path.getsize(p) for p in paths]
    mine = [paths[i] for i in schedule.assign(sizes, comm.size)[comm.rank]]
    sources = sorted({v.source for v in OUTPUT_VARS if v.kind in ("segment", "gpstime") and not v.source.startswith("/")})
    best_floor = best_reduce = float("inf")
    nbytes = 0
    for _ in range(a.repeat):
        comm.Barrier()
        t = time.perf_counter()
        nbytes = comm.allreduce(floor_read(mine, sources))
        comm.Barrier()
        best_floor = min(best_floor, time.perf_counter() - t)
        if comm.rank == 0:
            shutil.rmtree(a.out, ignore_errors=True)
        comm.Barrier()
        t = time.perf_counter()
        run_reduce(comm, [a.granules], Selection(), ReduceOptions(), a.out)
        comm.Barrier()
        best_reduce = min(best_reduce, time.perf_counter() - t)
    if comm.rank == 0:
        total = sum(sizes)
        print(f"bench_reduce: {len(paths)} granules, {total / 1e6:.0f} MB on disk, {nbytes / 1e6:.0f} MB of "
              f"variables decompressed, {comm.size} ranks")
        print(f"  floor (h5py read only): {best_floor:.2f} s  {len(paths) / best_floor:.1f} granules/s")
        print(f"  readatl06 reduce      : {best_reduce:.2f} s  {len(paths) / best_reduce:.1f} granules/s")
        print(f"  ratio floor/reduce    : {best_floor / best_reduce:.2f}")


if __name__ == "__main__":
    main()
