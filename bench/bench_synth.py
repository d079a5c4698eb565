"""Benchmark of the synthetic ATL06 generator.

    python bench/bench_synth.py OUTDIR [--granules N] [--segments-per-beam M] [...]
    mpirun -n 2 python bench/bench_synth.py /tmp/synth200 --granules 200 --segments-per-beam 60000
    python bench/bench_synth.py /tmp/kamb --kamb --granules 10 --cycles 3      # the demo's set (fit_box)
    python bench/bench_synth.py /tmp/kamb --kamb --granules 10 --zlib          # HDF5's own zlib instead of ISA-L

Prints (rank 0) the wall time, granules/s, segments x beams per second, total size and MB/s written,
and which deflate encoder wrote the chunks (ISA-L through write_direct_chunk, or HDF5's zlib).
"""
import argparse
import pathlib
import shutil
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from readatl06 import synth  # noqa: E402
from readatl06.synth import h5write  # noqa: E402

KAMB = ("EPSG:3031", -1124782.0, 81623.0, -919821.0, -96334.0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("outdir", help="folder for the granules (emptied first)")
    p.add_argument("--granules", type=int, default=20)
    p.add_argument("--segments-per-beam", type=int, default=60000)
    p.add_argument("--segments", nargs="+", default=["10-12"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size-spread", type=float, default=0.0)
    p.add_argument("--release", default="006")
    p.add_argument("--beams", nargs="+", help="beams to write (default all six)")
    p.add_argument("--kamb", action="store_true", help="the demo's set: granules cut to the Kamb box (fit_box)")
    p.add_argument("--cycles", type=int, default=3, help="with --kamb: 91-day windows (default 3)")
    p.add_argument("--zlib", action="store_true", help="let HDF5 compress (zlib 6) instead of ISA-L")
    a = p.parse_args(argv)
    try:
        from mpi4py import MPI
        comm = MPI.COMM_WORLD
    except ImportError:
        comm = None
    rank, size = (comm.rank, comm.size) if comm else (0, 1)
    if a.zlib:
        h5write._encode = None
    encoder = "HDF5 zlib level 6" if h5write._encode is None else "ISA-L level 1 (write_direct_chunk)"
    if rank == 0:
        shutil.rmtree(a.outdir, ignore_errors=True)
    box = dict(region_box=KAMB, fit_box=True, cycles=a.cycles) if a.kamb else {}
    plans, _ = synth.prepare(a.granules, a.seed, a.segments, "2019-01-01", a.segments_per_beam, a.size_spread,
                             a.beams, a.release, None, 0.05, 0.1, **box)
    nbeams = len(a.beams or synth.BEAMS)
    seg_beams = sum(q.n_dense for q in plans) * nbeams
    if comm:
        comm.barrier()
    t0 = time.perf_counter()
    paths = synth.generate(a.outdir, granules=a.granules, seed=a.seed, segments=a.segments,
                           segments_per_beam=a.segments_per_beam, size_spread=a.size_spread,
                           release=a.release, beams=a.beams, rank=rank, size=size, **box)
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
        what = f"cut to the Kamb box, {a.cycles} cycles" if a.kamb else f"{a.segments_per_beam} segments/beam"
        print(f"bench_synth: {a.granules} granules ({what}), {seg_beams / 1e6:.2f} M segments x beams "
              f"({nbeams} beams), {size} rank(s), {encoder}")
        print(f"  wall {wall:.1f} s (slowest rank {t_max:.1f} s), {a.granules / wall:.2f} granules/s, "
              f"{seg_beams / wall / 1e6:.2f} M segments x beams / s")
        print(f"  {nbytes / 1e6:.1f} MB written ({nbytes / 1e6 / max(a.granules, 1):.1f} MB/granule), "
              f"{nbytes / 1e6 / wall:.1f} MB/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
