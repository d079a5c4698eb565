"""``readatl06 reduce`` on the command line: options, their validation (on every rank, before MPI
starts) and the run. Importing this module imports nothing heavy."""
import argparse

from readatl06.atl06.schema import BEAMS, COMPRESSIONS
from readatl06.errors import UsageError
from readatl06.options import add_inputs, add_jobs, add_merge_memory, add_remote, configure_remote

HELP = "reduce granules to per-beam files"


def add_arguments(p):
    add_inputs(p, outdir="OUTDIR")
    _add_subset(p)
    _add_reduction(p)
    _add_run(p)
    add_remote(p, scratch=True)


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
    g.add_argument("--beams", nargs="+", metavar="BEAM", choices=BEAMS)
    g.add_argument("--strong-only", action="store_true", help="strong beams only (from sc_orient)")
    g.add_argument("--quality", choices=("summary", "none"), default="summary",
                   help="summary: atl06_quality_summary == 0 and |h_li| < 1e4 (default); fill values always go")


def _add_run(p):
    g = p.add_argument_group("run")
    add_jobs(g)
    g.add_argument("--merge", metavar="MERGED.h5", help="merge all tracks into one parallel-HDF5 file")
    g.add_argument("--no-per-beam", action="store_true", help="with --merge: do not write per-beam files")
    g.add_argument("--append", action="store_true", help="with --merge: add to an existing MERGED.h5 the "
                   "granules of OUTDIR it lacks (merge --append, after the reduce)")
    add_merge_memory(g)
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


def check(args):
    """Validate the options on every rank (same argv, same answer) before MPI starts; keeps the
    selection and the reduce options on ``args``."""
    from readatl06.atl06.names import Selection
    from readatl06.atl06.schema import output_vars
    from readatl06.atl06.subset import Subset
    from readatl06.reduce.granule import ReduceOptions
    if args.no_per_beam and not args.merge:
        raise UsageError("--no-per-beam needs --merge MERGED.h5")
    if args.append and (not args.merge or args.no_per_beam):
        raise UsageError("--append needs --merge MERGED.h5 and the per-beam files (not --no-per-beam): "
                         "the new part is merged from OUTDIR")
    from readatl06.sources.local import all_inside
    if all_inside(args.sources, args.outdir):
        raise UsageError(f"-o {args.outdir}: every SOURCE ({' '.join(args.sources)}) lies inside the output "
                         "folder, which is never read as a source; expected an -o outside the granules' folder")
    if args.no_per_beam and args.jobs not in (None, 1):
        raise UsageError(f"--no-per-beam with -j {args.jobs}: local workers hand their tracks to the merge "
                         "through the per-beam files; drop --no-per-beam, or run under mpirun")
    try:
        table = output_vars(args.vars)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    selection = Selection.from_args(args)
    subset = Subset(args.bbox, args.bbox_xy, args.crs, args.polygon, args.polygon_crs)
    args.selection = selection
    # --beams gt1l gt1l: each beam once (reduced, written, counted and merged once)
    args.reduce_options = ReduceOptions(
        vars=table, beams=tuple(dict.fromkeys(args.beams or BEAMS)), strong_only=args.strong_only,
        quality=args.quality,
        subset=subset, selection=selection.as_dict(), compression=args.compression,
        shortcuts=not getattr(args, "full_read", False))
    configure_remote(args)


def run(args, comm):
    from readatl06.reduce.run import run_reduce
    progress = True if args.progress is None else args.progress
    status = run_reduce(comm, args.sources, args.selection, args.reduce_options, args.outdir,
                        resume=args.resume, overwrite=args.overwrite, write=not args.no_per_beam,
                        progress=progress, log=args.log, merge_path=None if args.append else args.merge,
                        schedule_how=args.schedule, merge_memory=args.merge_memory, timings=args.timings)
    if args.append and status != 2:      # OUTDIR's complete granules appended to MERGED.h5
        from readatl06.merge.command import merge_outdir
        status = max(status, merge_outdir(comm, args.outdir, args.merge, memory=args.merge_memory,
                                          compression=args.compression, append=True))
    if args.plot and comm.rank == 0:
        from readatl06.plot.command import plot_after_run
        plot_after_run(args.outdir, args.merge)
    return status
