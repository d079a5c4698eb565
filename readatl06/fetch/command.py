"""``readatl06 fetch`` on the command line (the downloads are in :mod:`.download`)."""
from readatl06.options import add_inputs, add_jobs, add_remote, configure_remote

HELP = "download selected remote granules"


def add_arguments(p):
    add_inputs(p, outdir="DIR")
    add_jobs(p)
    add_remote(p)


def check(args):
    from readatl06.atl06.names import Selection
    args.selection = Selection.from_args(args)
    configure_remote(args)


def run(args, comm):
    from readatl06.fetch.download import run_fetch
    return run_fetch(comm, args.sources, args.selection, args.outdir)
