"""``readatl06 export`` on the command line (the parallel writer is :mod:`.writer`)."""

HELP = "GeoParquet 1.1 table of every point (docs/export.md)"


def add_arguments(p):
    p.add_argument("source", metavar="MERGED.h5|OUTDIR")
    p.add_argument("-o", "--output", required=True, metavar="TABLE.parquet",
                   help="one GeoParquet 1.1 file: WKB lon/lat points, bbox covering column, row groups of 100 000")
    p.add_argument("--overwrite", action="store_true", help="replace an existing TABLE.parquet")
    p.add_argument("--parameters", metavar="KEY", help="OUTDIR: export only the per-beam files of this "
                   "parameter set (the key that a refusal lists) when OUTDIR mixes several")


def run(args, comm):
    from readatl06.export.writer import run_export
    return run_export(comm, args.source, args.output, overwrite=args.overwrite, params=args.parameters)
