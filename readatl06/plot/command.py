"""``readatl06 plot`` on the command line, and ``reduce --plot``. Importing this module imports
neither matplotlib nor the figure modules; they load when a figure is drawn."""
import os
import sys

from readatl06.errors import ReadATL06Error, UsageError
from readatl06.plot.style import KINDS, MAX_POINTS
from readatl06.atl06.schema import BEAMS


HELP = "draw check figures"


# ---------------------------------------------------------------- command line
def add_arguments(parser):
    """Options of ``readatl06 plot`` on an argparse (sub)parser."""
    parser.add_argument("paths", nargs="+", metavar="PATH",
                        help="per-beam files, a reduce output folder, a merged file or raw ATL06 granules "
                             "(summary: the output folder or its readatl06-manifest.jsonl)")
    parser.add_argument("-o", "--output", required=True, metavar="FIGURE.png",
                        help="figure to write (format from the extension: .png, .pdf, .svg)")
    parser.add_argument("--kind", choices=KINDS, default="map",
                        help="map: points by h_elv in polar stereographic; profile: h_elv along track per "
                             "beam of one granule; summary: the run's manifest (default: map)")
    parser.add_argument("--granule", metavar="NAME",
                        help="granule to draw (name, stem or a unique part of it; profile default: the earliest)")
    parser.add_argument("--beams", nargs="+", choices=BEAMS, metavar="BEAM", help="only these beams (gt1l ... gt3r)")
    parser.add_argument("--outline", metavar="FILE.geojson",
                        help="map: draw this lon/lat polygon instead of the run's subset")
    parser.add_argument("--hemisphere", choices=("north", "south"),
                        help="map: only the points of this hemisphere, in EPSG:3413 (north) or EPSG:3031 "
                             "(south); needed when the tracks lie in both and no --crs is given")
    parser.add_argument("--crs", metavar="EPSG:N",
                        help="map: project the points in this projected CRS (default: EPSG:3031 south, "
                             "EPSG:3413 north, chosen from the data)")
    parser.add_argument("--max-points", type=int, default=MAX_POINTS, metavar="N",
                        help=f"map: draw at most N points, thinned evenly along the tracks (default {MAX_POINTS:,})")
    parser.add_argument("--dpi", type=int, default=150, help="resolution of raster output (default 150)")
    return parser


def run(args, comm=None):
    """Draw on rank 0 (other ranks return 0 at once). Exit status 0, 2 for bad usage, 1 for I/O errors."""
    rank = getattr(comm, "rank", 0) if comm is not None else 0
    if rank != 0:
        return 0
    from readatl06.plot import plot_profile, plot_summary
    kind = getattr(args, "kind", "map") or "map"
    crs, hemisphere = getattr(args, "crs", None), getattr(args, "hemisphere", None)
    try:
        if args.max_points is not None and args.max_points < 1:
            raise UsageError("plot: --max-points must be at least 1")
        if kind != "map" and (crs or hemisphere):
            raise UsageError(f"plot: --{'crs' if crs else 'hemisphere'} applies to --kind map only")
        if kind == "summary":
            if len(args.paths) != 1:
                raise UsageError("plot --kind summary: give one PATH (the output folder or its manifest)")
            f = plot_summary(args.paths[0], args.output, dpi=args.dpi)
            what = f"{f['n_granules']} granules, {f['points']:,} points kept"
        elif kind == "profile":
            f = plot_profile(args.paths, args.output, granule=args.granule, beams=args.beams, dpi=args.dpi)
            what = f"{f['granule']}, {f['n_lines']} beams, {f['n_points']:,} points"
        elif kind == "xover":
            if len(args.paths) != 1:
                raise UsageError("plot --kind xover: give one PATH (the xover command's .h5 or .parquet)")
            from readatl06.plot.xover import plot_xover
            f = plot_xover(args.paths[0], args.output, dpi=args.dpi)
            what = f"{f['n_xovers']:,} crossovers"
        else:
            maps = map_each_hemisphere(args.paths, args.output, outline=getattr(args, "outline", None),
                                       dpi=args.dpi, max_points=args.max_points, granule=args.granule,
                                       beams=args.beams, crs=crs, hemisphere=hemisphere)
            if len(maps) > 1:      # tracks in both hemispheres: one map each, named as reduce --plot does
                for out, f in maps.items():
                    print(f"plot: wrote {out} (map: {f['n_points']:,} points, {f['n_granules']} granules, "
                          f"{f['crs']})")
                return 0
            f = maps[args.output]
            what = f"{f['n_points']:,} points, {f['n_granules']} granules, {f['crs']}"
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except (OSError, ValueError, ReadATL06Error) as exc:
        print(f"plot: {exc}", file=sys.stderr)
        return 1
    print(f"plot: wrote {args.output} ({kind}: {what})")
    return 0


def hemisphere_name(path, hemisphere):
    """``map.png`` -> ``map-north.png``: the figure of one hemisphere."""
    stem, ext = os.path.splitext(path)
    return f"{stem}-{hemisphere}{ext}"


def map_each_hemisphere(paths, output, **kw):
    """``{figure: facts}``: one map, or, when the tracks lie in both hemispheres and neither
    ``hemisphere`` nor ``crs`` is given, one per hemisphere (:func:`hemisphere_name`)."""
    from readatl06.plot import plot_map
    from readatl06.plot.map import HemisphereError
    try:
        return {output: plot_map(paths, output, **kw)}
    except HemisphereError:  # Arctic and Antarctic tracks: one map per hemisphere
        kw.pop("hemisphere", None)
        return {hemisphere_name(output, h): plot_map(paths, hemisphere_name(output, h), hemisphere=h, **kw)
                for h in ("north", "south")}


def plot_after_run(outdir, merged=None):
    """``reduce --plot`` (rank 0): a map of the run and its summary figure, next to the outputs
    (``readatl06-map-north.png`` and ``readatl06-map-south.png`` when the run has tracks in both)."""
    from readatl06.plot import plot_summary
    src = merged if merged and os.path.exists(merged) else outdir
    out = {}
    try:
        maps = map_each_hemisphere([src], os.path.join(outdir, "readatl06-map.png"))
        for path, f in maps.items():
            out["map" if len(maps) == 1 else os.path.splitext(os.path.basename(path))[0][len("readatl06-"):]] = f
    except Exception as exc:   # a figure must never turn a finished run into a failed one
        print(f"readatl06 plot: map not drawn: {exc}", file=sys.stderr)
    try:
        out["summary"] = plot_summary(outdir, os.path.join(outdir, "readatl06-summary.png"))
    except Exception as exc:
        print(f"readatl06 plot: summary not drawn: {exc}", file=sys.stderr)
    return out
