"""``readatl06 synth`` on the command line. Importing this module does not import the generator
(h5py, the orbit model, the schema tables); ``run`` does."""
import pathlib
import sys
import time

from readatl06.atl06.schema import BEAMS


HELP = "write synthetic ATL06 granules"


def add_arguments(parser):
    """Options of `readatl06 synth`."""
    parser.add_argument("outdir", metavar="OUTDIR", help="folder for the granules (created)")
    parser.add_argument("--granules", type=int, default=4, metavar="N", help="number of granules (default 4)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    parser.add_argument("--segments", nargs="+", default=["10-12"], metavar="SS",
                        help="granule regions 1..14, e.g. 10 11 12 or 10-12 (default 10-12)")
    parser.add_argument("--start", default="2019-01-01", metavar="DATE",
                        help="first acquisition time, ISO date or date-time UTC (default 2019-01-01)")
    parser.add_argument("--segments-per-beam", type=int, default=10000, metavar="M",
                        help="20-m segments per beam in a granule span (default 10000)")
    parser.add_argument("--size-spread", type=float, default=0.0, metavar="SIGMA",
                        help="lognormal sigma of granule sizes (default 0: all the same)")
    parser.add_argument("--beams", nargs="+", choices=BEAMS, metavar="BEAM", help="beams to write (default all six)")
    parser.add_argument("--release", default="006", help="ATL06 release, 001/003/006 layouts (default 006)")
    parser.add_argument("--corrupt", metavar="KIND", help="write broken granules of this kind (for tests): "
                        "truncated, empty, no-beams, missing-var, wrong-product; hostile content: "
                        "string-h-li, nan-coords, range-coords, huge-shape, short-latitude, no-epoch, sc-orient-7")
    parser.add_argument("--fill-fraction", type=float, default=0.05, help="fraction of h_li fill values (default 0.05)")
    parser.add_argument("--bad-quality-fraction", type=float, default=0.1,
                        help="fraction of valid heights with atl06_quality_summary=1 (default 0.1)")
    box = parser.add_mutually_exclusive_group()
    box.add_argument("--bbox", nargs=4, type=float, metavar=("W", "E", "S", "N"),
                     help="keep only granules whose track crosses this lon/lat box")
    box.add_argument("--bbox-xy", nargs=4, type=float, metavar=("XMIN", "XMAX", "YMIN", "YMAX"),
                     help="keep only granules whose track crosses this projected box (--crs)")
    parser.add_argument("--crs", default="EPSG:3031", help="CRS of --bbox-xy (default EPSG:3031)")
    parser.add_argument("--fit-box", action="store_true",
                        help="cut the granules to the box: tracks chosen to fill it (ascending and descending), "
                             "each granule only the part of its track inside (--segments-per-beam unused)")
    parser.add_argument("--cycles", type=int, default=1, metavar="K",
                        help="with --fit-box: spread the tracks over K 91-day windows from --start (default 1)")
    return parser


def run(args, comm):
    """Run `readatl06 synth` on every rank of comm; returns the exit status."""
    from readatl06.synth.plan import prepare, share
    from readatl06.synth.granule import write_granule
    t0, started = time.perf_counter(), time.time()
    box = None
    if getattr(args, "bbox", None):
        box = ("EPSG:4326",) + tuple(args.bbox)
    elif getattr(args, "bbox_xy", None):
        box = (args.crs,) + tuple(args.bbox_xy)
    try:
        if getattr(args, "fit_box", False) and box is None:
            raise ValueError("--fit-box needs --bbox or --bbox-xy")
        plans, opts = prepare(args.granules, args.seed, args.segments, args.start, args.segments_per_beam,
                              args.size_spread, args.beams, args.release, args.corrupt, args.fill_fraction,
                              args.bad_quality_fraction, box, fit_box=getattr(args, "fit_box", False),
                              cycles=getattr(args, "cycles", 1))
    except ValueError as exc:            # same on every rank: nobody waits for anybody
        if comm.rank == 0:
            print(f"readatl06 synth: error: {exc}", file=sys.stderr)
        return 2
    failed = None
    try:
        outdir = pathlib.Path(args.outdir)
        outdir.mkdir(parents=True, exist_ok=True)
        for i in share(plans, comm.rank, comm.size):
            write_granule(outdir, plans[i], **opts)
    except Exception as exc:             # report, but still meet the other ranks at the barrier
        failed = exc
        print(f"readatl06 synth: error (rank {comm.rank}): {exc}", file=sys.stderr)
    comm.barrier()
    if comm.rank == 0:
        dt = time.perf_counter() - t0
        out = pathlib.Path(args.outdir)
        new = [p for p in out.iterdir() if p.suffix == ".h5" and p.stat().st_mtime >= started - 1] \
            if out.is_dir() else []
        nbytes = sum(p.stat().st_size for p in new)
        print(f"synth: {len(new)} of {len(plans)} granules ({nbytes / 1e6:.1f} MB) written to {out} "
              f"by {comm.size} rank(s) in {dt:.1f} s")
    return 1 if failed is not None else 0
