"""``readatl06 demo``: synthetic Antarctic granules -> reduce in parallel -> merge -> plots. No download.

About 24 granules of regions 10-12 whose tracks cross the Kamb ice stream box of the seed
(EPSG:3031 x -1124782..81623, y -919821..-96334) are generated, reduced on all ranks with that box
as subset, merged into one parallel-HDF5 file and drawn (map, profile, run summary).
"""
import os
import shutil
import sys
import time

KAMB = (-1124782.0, 81623.0, -919821.0, -96334.0)


def add_arguments(parser):
    parser.add_argument("--workdir", default="readatl06-demo", metavar="DIR",
                        help="folder for granules, tracks, merged file and figures (default ./readatl06-demo)")
    parser.add_argument("--granules", type=int, default=24, metavar="N", help="granules to generate (default 24)")
    parser.add_argument("--segments-per-beam", type=int, default=12000, metavar="M",
                        help="20-m segments per beam and granule (default 12000)")
    parser.add_argument("--seed", type=int, default=2019, help="random seed (default 2019)")
    parser.add_argument("--no-plots", action="store_true", help="skip the figures")
    return parser


def run(args, comm):
    from readatl06 import synth
    from readatl06.names import Selection
    from readatl06.reduce import ReduceOptions
    from readatl06.runner import run_reduce
    from readatl06.subset import Subset

    t0 = time.perf_counter()
    work = os.path.abspath(args.workdir)
    granules, tracks = os.path.join(work, "granules"), os.path.join(work, "tracks")
    merged, figures = os.path.join(work, "kamb_merged.h5"), os.path.join(work, "figures")
    if comm.rank == 0:
        for d in (granules, tracks, figures):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
        if os.path.exists(merged):
            os.remove(merged)
        print(f"demo: generating {args.granules} synthetic ATL06 granules (regions 10-12, crossing the Kamb "
              f"box) on {comm.size} ranks ...", flush=True)
    comm.barrier()
    synth.generate(granules, granules=args.granules, seed=args.seed, segments=(10, 11, 12),
                   start="2019-01-01", segments_per_beam=args.segments_per_beam, size_spread=0.3,
                   rank=comm.rank, size=comm.size, region_box=("EPSG:3031",) + KAMB)
    comm.barrier()
    t_synth = time.perf_counter() - t0
    if comm.rank == 0:
        print(f"demo: granules written in {t_synth:.1f} s; reducing with --bbox-xy {' '.join(map(str, KAMB))} "
              "--crs EPSG:3031 --merge ...", flush=True)
    opts = ReduceOptions(subset=Subset(bbox_xy=KAMB, crs="EPSG:3031"))
    status = run_reduce(comm, [granules], Selection(), opts, tracks, merge_path=merged)
    figs = {}
    if comm.rank == 0 and not args.no_plots:
        from readatl06 import plot
        plot.plot_map([merged], os.path.join(figures, "map.png"))
        plot.plot_profile([tracks], os.path.join(figures, "profile.png"))
        plot.plot_summary(tracks, os.path.join(figures, "summary.png"))
        figs = sorted(os.listdir(figures))
    if comm.rank == 0:
        print(f"demo: finished in {time.perf_counter() - t0:.1f} s (exit status {status})")
        print(f"  granules : {granules}")
        print(f"  tracks   : {tracks}  (one file per granule, beam and direction; readatl06-manifest.jsonl)")
        print(f"  merged   : {merged}")
        if figs:
            print(f"  figures  : {figures}: {', '.join(figs)}")
        sys.stdout.flush()
    return status
