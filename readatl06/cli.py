"""The command line: one table of commands, each a subpackage with a ``command.py`` that has
``add_arguments(parser)``, ``run(args, comm)`` and optionally ``check(args)`` (validation on every
rank before MPI starts) and ``USES_MPI = False``. Arguments are parsed before MPI is imported;
under MPI only rank 0 prints, and every rank exits with the same code."""
import importlib
import sys

from readatl06 import __version__
from readatl06.errors import ReadATL06Error, UsageError
from readatl06.parallel.world import launcher_rank

COMMANDS = ("list", "reduce", "merge", "xover", "export", "plot", "synth", "demo", "fetch")
PACKAGE = {"list": "listing"}        # the command's subpackage where its name is not one


def command_module(name):
    """The ``command`` module of a subcommand (light: argparse and names only)."""
    return importlib.import_module(f"readatl06.{PACKAGE.get(name, name)}.command")


def build_parser():
    import argparse
    parser = argparse.ArgumentParser(prog="readatl06", description="Reduce ICESat-2 ATL06 granules to "
                                     "per-beam, per-direction track files (run under mpirun for parallel work).")
    parser.add_argument("--version", action="version", version=f"readatl06 {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = command_module(name)
        module.add_arguments(sub.add_parser(name, help=module.HELP))
    return parser


def _silence(parser):
    """Rank > 0: no usage, help or error text from argparse (rank 0 prints them)."""
    def nothing(*a, **k):
        return None
    parsers = [parser] + [p for a in parser._subparsers._group_actions for p in a.choices.values()]
    for p in parsers:
        p.print_usage = p.print_help = p._print_message = nothing


def main(argv=None):
    quiet = launcher_rank() != 0
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if quiet:
        _silence(parser)
    args = parser.parse_args(argv)
    module = command_module(args.command)
    try:
        if hasattr(module, "check"):
            module.check(args)
        if not getattr(module, "USES_MPI", True):
            return module.run(args, None)
        from readatl06.parallel.world import abort_on_error, world
        comm = world()
        with abort_on_error(comm, f"readatl06 {args.command}"):
            return module.run(args, comm)
    except UsageError as exc:
        if not quiet:
            print(f"readatl06 {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except ReadATL06Error as exc:
        if not quiet:
            print(f"readatl06 {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
