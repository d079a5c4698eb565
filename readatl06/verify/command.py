"""``readatl06 verify OUTDIR|MERGED.h5`` on the command line (the checks are :mod:`.check`)."""

HELP = "check the outputs of an OUTDIR against their records, or a merged file (docs/output.md)"


def add_arguments(p):
    p.add_argument("target", metavar="OUTDIR|MERGED.h5",
                   help="an output folder of reduce (every per-beam file against its record) or a merged file")


def run(args, comm):
    from readatl06.verify.check import run_verify
    return run_verify(comm, args.target)
