"""The command line: one table of commands, each a subpackage with a ``command.py`` that has
``add_arguments(parser)``, ``run(args, comm)`` and optionally ``check(args)`` (validation on every
rank before MPI starts) and ``USES_MPI = False``. Arguments are parsed before MPI is imported;
under MPI only rank 0 prints, and every rank exits with the same code."""
import importlib
import os
import sys

from readatl06 import __version__
from readatl06.errors import ReadATL06Error, UsageError, one_line
from readatl06.parallel.world import launched_by_mpirun, launcher_rank

COMMANDS = ("list", "reduce", "merge", "xover", "export", "verify", "plot", "synth", "demo", "fetch")
PACKAGE = {"list": "listing"}        # the command's subpackage where its name is not one


def command_module(name):
    """The ``command`` module of a subcommand (light: argparse and names only)."""
    return importlib.import_module(f"readatl06.{PACKAGE.get(name, name)}.command")


def build_parser():
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message):           # one line, no usage block: exit status 2
            self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    parser = Parser(prog="readatl06", description="Reduce ICESat-2 ATL06 granules to "
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


FAILED = []


def main(argv=None):
    """The command line (``argv``: None = ``sys.argv[1:]``); returns the exit status.

    Run as the program (``argv`` None: the console script, ``python -m readatl06``), after an
    unexpected error the process ends at once (``os._exit``) without freeing what the error holds
    on to: HDF5 crashes (SIGSEGV) when it frees a file whose flush failed (a full disk), which would
    turn the one-line error and exit status 1 into a segmentation fault."""
    status = _main(argv)
    if argv is None and FAILED:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def _files(args, exc):
    """`` (SOURCE -> OUTPUT)`` after a message that names neither (pyarrow's, HDF5's read errors)."""
    src = getattr(args, "source", None) or getattr(args, "outdir", None)
    out = getattr(args, "output", None)
    if not (src and out) or str(src) in str(exc) or str(out) in str(exc):
        return ""
    return f" ({src} -> {out})"


def _main(argv):
    quiet = launcher_rank() != 0
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if quiet:
        _silence(parser)
    args = parser.parse_args(argv)
    return _guarded(args.command, quiet, _start, command_module(args.command), args)


def _start(module, args):
    """Validate, then run: without MPI, under an MPI launcher (every rank), or on ``-j N`` local
    workers that this process supervises (:mod:`readatl06.parallel.local`)."""
    jobs = getattr(args, "jobs", None)
    if jobs is not None and launched_by_mpirun():
        raise UsageError(f"-j {jobs}: local workers are for runs without mpirun; under mpirun its ranks "
                         "are the workers (drop -j)")
    if hasattr(module, "check"):
        module.check(args)
    if not getattr(module, "USES_MPI", True):
        return module.run(args, None)
    if jobs is not None:
        from readatl06.parallel.local import run_local, workers
        if workers(jobs) > 1:
            return run_local(workers(jobs), lambda comm: _guarded(args.command, comm.rank != 0, _on_rank,
                                                                  module, args, comm), args.command)
    from readatl06.parallel.world import world
    return _on_rank(module, args, world())


def _on_rank(module, args, comm):
    from readatl06.parallel.world import abort_on_error
    with abort_on_error(comm, f"readatl06 {args.command}"):
        return module.run(args, comm)


def _guarded(command, quiet, fn, *fn_args):
    """``fn(*fn_args)``, its errors one line on stderr (unless ``quiet``: a rank other than 0) and an
    exit status: 2 bad usage, 1 a failure, 130 Ctrl-C."""
    try:
        return fn(*fn_args)
    except UsageError as exc:
        if not quiet:
            print(f"readatl06 {command}: error: {exc}", file=sys.stderr)
        return 2
    except ReadATL06Error as exc:
        if not quiet:
            print(f"readatl06 {command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except Exception as exc:        # a full disk, a corrupt HDF5 chunk, a truncated file: one line, exit 1
        if os.environ.get("READATL06_TRACEBACK"):
            raise
        if not quiet:
            args = next((a for a in fn_args if hasattr(a, "command")), None)
            where = _files(args, exc) if args is not None else ""
            print(f"readatl06 {command}: error: {one_line(exc)}{where}", file=sys.stderr)
        FAILED.append(exc)         # kept alive: see main()
        return 1



if __name__ == "__main__":
    sys.exit(main())
