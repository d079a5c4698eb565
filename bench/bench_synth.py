"""Benchmark of the synthetic ATL06 generator.

    python bench/bench_synth.py OUTDIR [--granules N] [--segments-per-beam M] [...]
    mpirun -n 2 python bench/bench_synth.py /tmp/synth200 --granules 200 --segments-per-beam 60000

Prints (rank 0) the wall time, granules/s, total size and MB/s written.
"""
import argparse
import pathlib
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from readatl06 import synth  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("outdir")
    p.add_argument("--granules", type=int, default=20)
    p.add_argument("--segments-per-beam", type=int, default=60000)
    p.add_argument("--segments", nargs="+", default=["10-12"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size-spread", type=float, default=0.0)
    p.add_argument("--release", default="006")
    a = p.parse_args(argv)
    try:
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
    except ImportError:
        comm = None
    rank, size = (comm.rank, comm.size) if comm else (0, 1)
    if comm:
        comm.barrier()
    t0 = time.perf_counter()
    paths = synth.generate(a.outdir, granules=a.granules, seed=a.seed, segments=a.segments,
                           segments_per_beam=a.segments_per_beam, size_spread=a.size_spread,
                           release=a.release, rank=rank, size=size)
    t_rank = time.perf_counter() - t0
    nbytes = sum(q.stat().st_size for q in paths)
    if comm:
        nbytes = comm.reduce(nbytes)
        t_max = comm.reduce(t_rank, op=MPI.MAX)
        comm.barrier()
    else:
        t_max = t_rank
    wall = time.perf_counter() - t0
    if rank == 0:
        print(f"bench_synth: {a.granules} granules x {a.segments_per_beam} segments/beam x 6 beams, "
              f"{size} rank(s)")
        print(f"  wall {wall:.1f} s (slowest rank {t_max:.1f} s), {a.granules / wall:.2f} granules/s")
        print(f"  {nbytes / 1e6:.1f} MB written ({nbytes / 1e6 / a.granules:.1f} MB/granule), "
              f"{nbytes / 1e6 / wall:.1f} MB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
