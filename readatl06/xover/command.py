"""``readatl06 xover`` on the command line (the parallel run is :mod:`.run`)."""

HELP = "crossovers: every ascending x descending track crossing (docs/crossovers.md)"


def add_arguments(p):
    p.add_argument("source", metavar="MERGED.h5|OUTDIR")
    p.add_argument("-o", "--output", required=True, metavar="XOVERS.h5|.parquet",
                   help="HDF5 (.h5, group xovers) or GeoParquet (.parquet), by the suffix")
    p.add_argument("--crs", metavar="EPSG:N", help="projected CRS in metres for every track "
                   "(default: EPSG:3031 where lat < 0, EPSG:3413 where lat >= 0)")
    p.add_argument("--max-gap", type=float, default=100.0, metavar="M",
                   help="skip lines whose two points are more than M metres apart (default 100)")
    p.add_argument("--dt-max", type=float, metavar="DAYS", help="keep only crossings at most DAYS apart in time")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--since", metavar="T", help="only the crossings in which at least one track's granule starts "
                   "at or after T (ISO-8601 date or date-time, UTC; the time in its file name)")
    p.add_argument("--append", action="store_true", help="add the rows to the existing table -o (made with "
                   "the same options from this product); each crossing once, as a full run")
    p.add_argument("--parameters", metavar="KEY", help="OUTDIR: cross only the per-beam files of this "
                   "parameter set (the key that a refusal lists) when OUTDIR mixes several")


def run(args, comm):
    from readatl06.xover.run import run_xover
    return run_xover(comm, args.source, args.output, crs=args.crs, max_gap=args.max_gap,
                     dt_max=args.dt_max, overwrite=args.overwrite, params=args.parameters,
                     since=args.since, append=args.append)
