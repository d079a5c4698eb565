"""Command line (DESIGN §1). Arguments are parsed before MPI is imported; only rank 0 prints."""
import argparse
import importlib
import sys

from readatl06 import __version__
from readatl06.errors import ReadATL06Error, UsageError
from readatl06.parallel import launcher_rank
from readatl06.schema import COMPRESSIONS

EPILOG = ("SOURCE: file, folder (recursive *.h5), quoted glob, @list.txt (paths or URLs), "
          "ssh://[user@]host[:port]/path/glob, s3://bucket/prefix, https://host/path/granule.h5")


def _add_selection(p):
    g = p.add_argument_group("selection (file names only)")
    g.add_argument("--start", metavar="T", help="ISO-8601 date or date-time (UTC), inclusive")
    g.add_argument("--end", metavar="T", help="ISO-8601 date or date-time (UTC), inclusive")
    g.add_argument("--segments", nargs="+", metavar="S", help="latitude regions 1-14, e.g. 10 11 12 or 10-12")
    g.add_argument("--rgts", nargs="+", metavar="N", help="reference ground tracks (lists or ranges)")
    g.add_argument("--cycles", nargs="+", metavar="N", help="cycles (lists or ranges)")
    g.add_argument("--releases", nargs="+", metavar="VVV", help="releases, e.g. 006")


def _add_subset(p):
    g = p.add_argument_group("subset")
    g.add_argument("--bbox", nargs=4, type=float, metavar=("W", "E", "S", "N"),
                   help="lon/lat box in degrees; W > E crosses the antimeridian")
    g.add_argument("--bbox-xy", nargs=4, type=float, metavar=("XMIN", "XMAX", "YMIN", "YMAX"),
                   help="projected box in the units of --crs")
    g.add_argument("--crs", help="CRS of --bbox-xy, e.g. EPSG:3031")
    g.add_argument("--polygon", metavar="FILE.geojson", help="Polygon/MultiPolygon (holes respected)")
    g.add_argument("--polygon-crs", metavar="CRS", help="the polygon's coordinates are in this CRS "
                   "(edges straight in that plane); default lon/lat")
    g.add_argument("--full-read", action="store_true",
                   help="decode every beam whole: no skips by granule bounds, no slice reads (same output, "
                   "slower; for checking)")


def _add_reduction(p):
    g = p.add_argument_group("reduction")
    g.add_argument("--vars", nargs="+", default=[], metavar="NAME",
                   help="extra ATL06 variables: relative to land_ice_segments/ (fit_statistics/n_fit_photons) "
                   "or absolute with gtx for the beam (/gtx/land_ice_segments/dem/dem_h)")
    g.add_argument("--beams", nargs="+", metavar="BEAM", choices=("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r"))
    g.add_argument("--strong-only", action="store_true", help="strong beams only (from sc_orient)")
    g.add_argument("--quality", choices=("summary", "none"), default="summary",
                   help="summary: atl06_quality_summary == 0 and |h_li| < 1e4 (default); fill values always go")


def _add_run(p):
    g = p.add_argument_group("run")
    g.add_argument("--merge", metavar="MERGED.h5", help="merge all tracks into one parallel-HDF5 file")
    g.add_argument("--no-per-beam", action="store_true", help="with --merge: do not write per-beam files")
    _add_merge_memory(g)
    g.add_argument("--resume", action="store_true", help="skip granules whose outputs are complete")
    g.add_argument("--overwrite", action="store_true", help="replace existing output files")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress over all ranks (default on): a live line on the terminal the job was "
                        "started from, else a log line on stderr every 30 s")
    g.add_argument("--log", metavar="FILE", help="append errors, notes and the summary to FILE")
    g.add_argument("--plot", action="store_true", help="draw a map and a summary figure at the end")
    g.add_argument("--compression", choices=COMPRESSIONS, default="deflate",
                   help="per-beam and merged files: deflate (default; HDF5's standard shuffle + deflate "
                   "filters, which every HDF5 reader decodes) or none (unfiltered)")
    g.add_argument("--timings", action="store_true", help="print seconds per stage (list, read and inflate, "
                   "filter, write) summed over ranks and the bytes read (always recorded in the manifest)")
    g.add_argument("--schedule", choices=("dynamic", "static"), default="dynamic",
                   help="dynamic (default): ranks take the next largest granule as they finish; "
                        "static: largest-first plan made up front")


def _add_remote(p, scratch=False):
    g = p.add_argument_group("remote sources (ssh://, s3://, https://)")
    g.add_argument("--ssh-key", metavar="FILE", help="private key (default: the ssh agent and ~/.ssh keys); "
                   "a password only from READATL06_SSH_PASSWORD or a prompt")
    g.add_argument("--known-hosts", metavar="FILE", help="host keys to trust (default ~/.ssh/known_hosts)")
    g.add_argument("--ssh-accept-new", action="store_true",
                   help="trust and record the key of a host seen for the first time (a changed key is always refused)")
    g.add_argument("--s3-endpoint", metavar="URL", help="an S3-compatible store (credentials: the AWS chain)")
    g.add_argument("--s3-anon", action="store_true", help="unsigned S3 requests (public buckets)")
    if scratch:
        g.add_argument("--scratch", metavar="DIR", help="stage remote granules here when they cannot be read "
                       "in place (deleted after reduction; default: the system's temporary folder)")


def _megabytes(text):
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number of MB")
    return value


def _add_merge_memory(g):
    g.add_argument("--merge-memory", type=_megabytes, default=512, metavar="MB",
                   help="memory per rank for the merge's buffers (default 512): beyond it the merge writes "
                        "in rounds and reads tracks back from the per-beam files")


def build_parser():
    parser = argparse.ArgumentParser(prog="readatl06", description="Reduce ICESat-2 ATL06 granules to "
                                     "per-beam, per-direction track files (run under mpirun for parallel work).")
    parser.add_argument("--version", action="version", version=f"readatl06 {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="print the selected granules, one per line", epilog=EPILOG)
    p.add_argument("sources", nargs="+", metavar="SOURCE")
    _add_selection(p)
    _add_remote(p)

    p = sub.add_parser("reduce", help="reduce granules to per-beam files", epilog=EPILOG)
    p.add_argument("sources", nargs="+", metavar="SOURCE")
    p.add_argument("-o", "--outdir", required=True, metavar="OUTDIR")
    _add_selection(p)
    _add_subset(p)
    _add_reduction(p)
    _add_run(p)
    _add_remote(p, scratch=True)

    p = sub.add_parser("merge", help="merge per-beam files into one parallel-HDF5 file")
    p.add_argument("outdir", metavar="OUTDIR")
    p.add_argument("-o", "--output", required=True, metavar="MERGED.h5")
    p.add_argument("--overwrite", action="store_true", help="replace an existing MERGED.h5")
    p.add_argument("--parameters", metavar="KEY", help="merge only the per-beam files of this parameter "
                   "set (the key that a refusal lists) when OUTDIR mixes several")
    p.add_argument("--compression", choices=COMPRESSIONS, default="deflate",
                   help="the merged file: deflate (default) or none (contiguous, unfiltered)")
    _add_merge_memory(p)

    p = sub.add_parser("xover", help="crossovers: every ascending x descending track crossing (DESIGN §7)")
    p.add_argument("source", metavar="MERGED.h5|OUTDIR")
    p.add_argument("-o", "--output", required=True, metavar="XOVERS.h5|.parquet",
                   help="HDF5 (.h5, group xovers) or GeoParquet (.parquet), by the suffix")
    p.add_argument("--crs", metavar="EPSG:N", help="projected CRS in metres for every track "
                   "(default: EPSG:3031 where lat < 0, EPSG:3413 where lat >= 0)")
    p.add_argument("--max-gap", type=float, default=100.0, metavar="M",
                   help="skip lines whose two points are more than M metres apart (default 100)")
    p.add_argument("--dt-max", type=float, metavar="DAYS", help="keep only crossings at most DAYS apart in time")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")

    p = sub.add_parser("export", help="GeoParquet 1.1 table of every point (DESIGN §6)")
    p.add_argument("source", metavar="MERGED.h5|OUTDIR")
    p.add_argument("-o", "--output", required=True, metavar="TABLE.parquet",
                   help="one GeoParquet 1.1 file: WKB lon/lat points, bbox covering column, row groups of 100 000")
    p.add_argument("--overwrite", action="store_true", help="replace an existing TABLE.parquet")
    p.add_argument("--parameters", metavar="KEY", help="OUTDIR: export only the per-beam files of this "
                   "parameter set (the key that a refusal lists) when OUTDIR mixes several")

    for name, module, text in (("plot", "plot.command", "draw check figures"),
                               ("synth", "synth.command", "write synthetic ATL06 granules"),
                               ("demo", "demo", "synth -> reduce -> merge -> plot, no download")):
        p = sub.add_parser(name, help=text)
        p.set_defaults(module=module)
        importlib.import_module(f"readatl06.{module}").add_arguments(p)   # light: no matplotlib, no generator

    p = sub.add_parser("fetch", help="download selected remote granules", epilog=EPILOG)
    p.add_argument("sources", nargs="+", metavar="SOURCE")
    p.add_argument("-o", "--outdir", required=True, metavar="DIR")
    _add_selection(p)
    _add_remote(p)
    return parser


def _options(args):
    """Validate reduce options on every rank (same argv, same answer) before MPI starts."""
    from readatl06.names import Selection
    from readatl06.reduce import ReduceOptions
    from readatl06.schema import BEAMS, output_vars
    from readatl06.subset import Subset
    if args.no_per_beam and not args.merge:
        raise UsageError("--no-per-beam needs --merge MERGED.h5")
    try:
        table = output_vars(args.vars)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    selection = Selection.from_args(args)
    subset = Subset(args.bbox, args.bbox_xy, args.crs, args.polygon, args.polygon_crs)
    opts = ReduceOptions(vars=table, beams=tuple(args.beams or BEAMS), strong_only=args.strong_only,
                         quality=args.quality, subset=subset, selection=selection.as_dict(),
                         compression=args.compression, shortcuts=not getattr(args, "full_read", False))
    return selection, opts


def _reduce(args):
    selection, opts = _options(args)
    from readatl06.parallel import abort_on_error, world
    from readatl06.runner import run_reduce
    comm = world()
    with abort_on_error(comm):
        progress = True if args.progress is None else args.progress
        status = run_reduce(comm, args.sources, selection, opts, args.outdir, resume=args.resume,
                            overwrite=args.overwrite, write=not args.no_per_beam, progress=progress,
                            log=args.log, merge_path=args.merge,
                            schedule_how=args.schedule, merge_memory=args.merge_memory,
                            timings=args.timings)
        if args.plot and comm.rank == 0:
            from readatl06.plot.command import plot_after_run
            plot_after_run(args.outdir, args.merge)
    return status


def _module_command(args):
    from readatl06.parallel import abort_on_error, world
    module = importlib.import_module(f"readatl06.{args.module}")
    comm = world()
    with abort_on_error(comm):
        return module.run(args, comm)


def _fetch(args):
    from readatl06.fetch import run_fetch
    from readatl06.names import Selection
    from readatl06.parallel import abort_on_error, world
    selection = Selection.from_args(args)
    comm = world()
    with abort_on_error(comm):
        return run_fetch(comm, args.sources, selection, args.outdir)


def _merge(args):
    from readatl06.merge import merge_outdir
    from readatl06.parallel import abort_on_error, world
    comm = world()
    with abort_on_error(comm):
        return merge_outdir(comm, args.outdir, args.output, args.overwrite, args.parameters,
                            memory=args.merge_memory, compression=args.compression)


def _export(args):
    from readatl06.export import run_export
    from readatl06.parallel import abort_on_error, world
    comm = world()
    with abort_on_error(comm):
        return run_export(comm, args.source, args.output, overwrite=args.overwrite, params=args.parameters)


def main(argv=None):
    quiet = launcher_rank() != 0
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    if quiet:   # only rank 0 prints usage and errors; every rank exits with the same code
        parser.print_usage = parser.print_help = lambda *a, **k: None
        for action in parser._subparsers._group_actions:
            for p in action.choices.values():
                p.print_usage = p.print_help = lambda *a, **k: None
                p._print_message = lambda *a, **k: None
        parser._print_message = lambda *a, **k: None
    args = parser.parse_args(argv)
    try:
        if args.command in ("list", "reduce", "fetch"):
            from readatl06.sources import remote
            remote.configure(args)                # process-wide, on every rank
        if args.command == "list":
            from readatl06.names import Selection
            from readatl06.runner import run_list
            return run_list(args.sources, Selection.from_args(args))
        if args.command == "reduce":
            return _reduce(args)
        if args.command == "merge":
            return _merge(args)
        if args.command == "export":
            return _export(args)
        if args.command == "xover":
            from readatl06.parallel import abort_on_error, world
            from readatl06.xover_run import run_xover
            comm = world()
            with abort_on_error(comm):
                return run_xover(comm, args.source, args.output, crs=args.crs, max_gap=args.max_gap,
                                 dt_max=args.dt_max, overwrite=args.overwrite)
        if args.command == "fetch":
            return _fetch(args)
        return _module_command(args)
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
