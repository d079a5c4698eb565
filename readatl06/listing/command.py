"""``readatl06 list``: the granules a selection takes, one per line; nothing is opened, no MPI."""
import sys

from readatl06.errors import ReadATL06Error
from readatl06.options import add_inputs, add_remote, configure_remote

HELP = "print the selected granules, one per line"
USES_MPI = False          # a listing: never initialises MPI, even under mpirun


def add_arguments(p):
    add_inputs(p)
    add_remote(p)


def run(args, comm=None):
    from readatl06.atl06.names import Selection
    configure_remote(args)
    return run_list(args.sources, Selection.from_args(args))


def run_list(sources, selection, out=None, err=None):
    """``readatl06 list``: selected paths on stdout, problems and the count on stderr."""
    from readatl06.atl06.names import select
    from readatl06.sources import discover
    out, err = out or sys.stdout, err or sys.stderr
    try:
        listing = discover(sources)
    except ReadATL06Error as exc:
        print(f"readatl06 list: error: {exc}", file=err)
        return 2
    paths = listing.paths
    for m in listing.messages():
        print(f"readatl06: {m}", file=err)
    sel = select(paths, selection)
    for m in sel.messages():
        print(f"readatl06: {m}", file=err)
    from readatl06.redact import redact
    for _, p in sel.granules:
        print(redact(p), file=out)           # user information in a URL: masked (put it in ~/.netrc)
    print(f"readatl06: {len(sel.granules)} granules selected of {len(paths)} files", file=err)
    return 0
