"""``readatl06 list``: the granules a selection takes, one per line (nothing is opened, no MPI), or
the granules a merged product holds (``readatl06 list M.h5``: only then is h5py imported)."""
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
    products = [s for s in sources if is_product(s)]
    if products:
        return list_products(products, [s for s in sources if s not in products], out, err)
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


def is_product(source):
    """A local ``.h5`` file that is not an ATL06 granule by name: a merged product, if anything."""
    import os
    from readatl06.atl06.names import parse_name
    from readatl06.errors import NotATL06Error
    text = str(source)
    if "://" in text or not text.endswith(".h5") or not os.path.isfile(text):
        return False
    try:
        parse_name(text)
    except NotATL06Error:
        return False
    except ValueError:
        return True
    return False


def list_products(products, others, out, err):
    """One line per granule of each product (name, release, revision, the file holding it) and a
    summary of its cycles and releases on stderr."""
    from readatl06.errors import BadFileError
    from readatl06.outputs.merged import product_granules
    if others:
        print(f"readatl06 list: error: give merged products alone (found {len(others)} other SOURCEs "
              f"beside {products[0]})", file=err)
        return 2
    for path in products:
        try:
            granules, where = product_granules(path)
        except BadFileError as exc:
            print(f"readatl06 list: error: {exc}", file=err)
            return 2
        for g in granules:
            print(f"{g.name}\trelease {g.release}\trevision {g.revision}\t{where[g.name]}", file=out)
        releases = {}
        for g in granules:
            releases[g.release] = releases.get(g.release, 0) + 1
        cycles = sorted({g.cycle for g in granules})
        span = f"cycles {cycles[0]}-{cycles[-1]}" if cycles else "no cycle"
        print(f"readatl06: {path} holds {len(granules)} granules: {span}, releases "
              + ", ".join(f"{r} ({n})" for r, n in sorted(releases.items())), file=err)
    return 0
