"""``readatl06 plot --kind map``: points coloured by h_elv in polar stereographic, A and D panels,
the run's box or polygon outline. Loading lives in :mod:`readatl06.plot.data`."""
import os

import numpy as np

from readatl06.errors import UsageError
from readatl06.atl06.subset import transformer   # the project's one cached Transformer per CRS pair
from readatl06.plot.data import DIRECTIONS, granule_names, granule_stem, load_tracks, match_granule, require_tracks
from readatl06.plot.style import MARKERS, MAX_POINTS, OUTLINE_COLOUR, new_figure, save_png

HEMISPHERE_CRS = {"north": "EPSG:3413", "south": "EPSG:3031"}


class HemisphereError(UsageError):
    """Tracks in both hemispheres and no --crs: one polar stereographic map cannot show both."""


# ---------------------------------------------------------------- geometry
def choose_crs(lat):
    """EPSG:3031 (Antarctic polar stereographic) when the mean latitude is south, else EPSG:3413."""
    return "EPSG:3031" if float(np.nanmean(lat)) < 0 else "EPSG:3413"


def check_crs(crs):
    """``crs`` as given when it is a projected CRS pyproj knows; UsageError otherwise (the map's axes
    are kilometres of a plane, so lon/lat or geocentric systems are refused)."""
    import pyproj
    try:
        parsed = pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as exc:
        raise UsageError(f"plot --crs {crs}: unknown coordinate reference system ({exc})") from None
    if not parsed.is_projected:
        raise UsageError(f"plot --crs {crs}: not a projected CRS (the map is drawn in metres); "
                         "use e.g. EPSG:3413 (Arctic) or EPSG:3031 (Antarctic)")
    return crs


def hemisphere_counts(tracks):
    """``{"north": points with lat >= 0, "south": points with lat < 0}`` over the tracks."""
    south = sum(int(np.count_nonzero(t.lat < 0)) for t in tracks)
    return {"north": sum(t.size for t in tracks) - south, "south": south}


def select_hemisphere(tracks, hemisphere):
    """The tracks' points in one hemisphere (``north``: lat >= 0, ``south``: lat < 0); empty tracks dropped."""
    import dataclasses
    if hemisphere not in HEMISPHERE_CRS:
        raise UsageError(f"plot: hemisphere {hemisphere!r}: expected north or south")
    out = []
    for t in tracks:
        sel = (t.lat >= 0) if hemisphere == "north" else (t.lat < 0)
        if sel.all():
            out.append(t)
        elif sel.any():
            out.append(dataclasses.replace(t, **{k: getattr(t, k)[sel] for k in ("lon", "lat", "h", "s", "segment_id")
                                                 if getattr(t, k) is not None}))
    return out


def _densify(ring, step, closed=True):
    """Ring (N, 2), closed unless told, with extra vertices so no piece is longer than ``step``."""
    ring = np.asarray(ring, dtype=np.float64)[:, :2]
    if closed and len(ring) and not np.array_equal(ring[0], ring[-1]):
        ring = np.vstack([ring, ring[:1]])
    if step is None or len(ring) < 2:
        return ring
    seg = np.diff(ring, axis=0)
    k = np.maximum(1, np.ceil(np.hypot(seg[:, 0], seg[:, 1]) / step)).astype(np.int64)
    idx = np.repeat(np.arange(len(seg)), k)
    frac = (np.arange(k.sum()) - np.repeat(np.cumsum(k) - k, k)) / np.repeat(k, k)
    return np.vstack([ring[:-1][idx] + seg[idx] * frac[:, None], ring[-1:]])


def _to_plot(ring, src_crs, crs, closed=True):
    """Ring in ``src_crs`` (None = lon/lat) -> plot CRS, densified so edges keep their true shape."""
    if src_crs is None:
        ring = _densify(ring, 0.25, closed)              # straight in lon/lat, as GeoJSON defines
        x, y = transformer(crs).transform(ring[:, 0], ring[:, 1])
    elif src_crs.upper() == crs.upper():
        ring = _densify(ring, None, closed)              # straight in the plot plane already
        x, y = ring[:, 0], ring[:, 1]
    else:
        ring = _densify(ring, 5000.0, closed)
        x, y = transformer(crs, src_crs).transform(ring[:, 0], ring[:, 1])
    return np.column_stack([x, y])


def _polygon_rings(geom):
    """Every ring (exteriors and holes) of a GeoJSON Polygon/MultiPolygon/Feature/FeatureCollection."""
    kind = (geom or {}).get("type")
    if kind == "FeatureCollection":
        return [r for f in geom.get("features", []) for r in _polygon_rings(f.get("geometry"))]
    if kind == "Feature":
        return _polygon_rings(geom.get("geometry"))
    if kind == "GeometryCollection":
        return [r for g in geom.get("geometries", []) for r in _polygon_rings(g)]
    if kind == "Polygon":
        return [np.asarray(r, float) for r in geom["coordinates"] if len(r) >= 3]
    if kind == "MultiPolygon":
        return [np.asarray(r, float) for p in geom["coordinates"] for r in p if len(r) >= 3]
    return []


def outline_rings(params, crs):
    """The subset of a run as ``[(label, ring_xy_metres), ...]`` in ``crs``, from the ``parameters``
    dict written into every output file (keys bbox, bbox_xy + crs, polygon + polygon_crs)."""
    out = []
    if not params:
        return out
    if params.get("bbox") is not None:
        from readatl06.atl06.envelopes import box_lons
        w, e, s, n = (float(v) for v in params["bbox"])
        label = f"--bbox {w:g} {e:g} {s:g} {n:g}"
        lons = box_lons(w, e)                            # the box the reducer keeps points in
        if lons is None:                                 # all longitudes: only the parallels are edges
            for lat in (s, n):
                if abs(lat) < 90.0:
                    circle = [(w, lat), (w + 120, lat), (w + 240, lat), (w + 360, lat)]
                    out.append((label, _to_plot(circle, None, crs, closed=False)))
        else:                                            # from W eastward (across 180° when it crosses)
            w = lons[0][0]
            e = w + sum(hi - lo for lo, hi in lons)
            ring = [(w, s), (e, s), (e, n), (w, n), (w, s)]
            out.append((label, _to_plot(ring, None, crs)))
    if params.get("bbox_xy") is not None:
        x0, x1, y0, y1 = (float(v) for v in params["bbox_xy"])
        src = params.get("crs") or crs
        ring = [(x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)]
        out.append((f"--bbox-xy ({src})", _to_plot(ring, src, crs)))
    if params.get("polygon"):
        src = params.get("polygon_crs")
        name = os.path.basename(params.get("polygon_file") or "") or "polygon"
        out.extend((f"--polygon {name}", _to_plot(r, src, crs)) for r in _polygon_rings(params["polygon"]))
    return out


def _outline_params(outline):
    """plot_map's ``outline`` argument -> a parameters-like dict (or None)."""
    if outline is None or outline is False:
        return None
    if isinstance(outline, (str, os.PathLike)):
        import json
        with open(outline, encoding="utf-8") as fh:
            return {"polygon": json.load(fh), "polygon_file": os.fspath(outline)}
    if isinstance(outline, dict) and "type" in outline:
        return {"polygon": outline}
    if isinstance(outline, dict):
        return outline
    raise UsageError(f"plot: outline {outline!r}: expected a GeoJSON file, a geometry or a parameters dict")


def _thin(n, budget):
    """Indices of at most ``budget`` of ``n`` points, evenly spaced (keeps every track's shape)."""
    if n <= budget:
        return slice(None)
    return np.linspace(0, n - 1, max(int(budget), 1)).astype(np.int64)


def _limits(xs, ys, aspect=1.0, pad=0.04):
    """Axis limits holding every x/y, padded, widened to ``aspect`` (width/height) so an equal-aspect
    map fills its panel however long and thin the tracks are."""
    x0, x1 = min(float(np.min(x)) for x in xs), max(float(np.max(x)) for x in xs)
    y0, y1 = min(float(np.min(y)) for y in ys), max(float(np.max(y)) for y in ys)
    w, h = max(x1 - x0, 1e-3), max(y1 - y0, 1e-3)
    w, h = w * (1 + 2 * pad), h * (1 + 2 * pad)
    w, h = max(w, h * aspect), max(h, w / aspect)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return (cx - w / 2, cx + w / 2), (cy - h / 2, cy + h / 2)


# ---------------------------------------------------------------- map
def draw_map(tracks, out_png, outline=None, max_points=MAX_POINTS, dpi=150, crs=None):
    """Map of TrackView objects (see :mod:`readatl06.plot.data`). Reduced points are coloured by h_elv;
    raw-granule points, when given along with reduced ones, are drawn underneath in grey (before/after).
    ``outline``: None = the subset from the files' ``parameters``; False = none; a GeoJSON path or
    geometry (lon/lat); or a parameters-like dict."""
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D

    after = [t for t in tracks if t.kind != "raw"]
    before = [t for t in tracks if t.kind == "raw"] if after else []
    main = after or [t for t in tracks if t.kind == "raw"]
    if not main:
        raise UsageError("plot: no points to draw")
    n_total = sum(t.size for t in main)
    if crs is None:
        counts = hemisphere_counts(main + before)
        if counts["north"] and counts["south"]:
            raise HemisphereError(
                f"plot: the tracks are in both hemispheres ({counts['north']:,} points north of the equator, "
                f"{counts['south']:,} south) and one polar stereographic map cannot show both: give "
                "--hemisphere north (EPSG:3413) or --hemisphere south (EPSG:3031), or --crs EPSG:N for one map")
    else:
        check_crs(crs)
    crs = crs or choose_crs(np.concatenate([t.lat[:: max(1, t.size // 1000)] for t in main]))
    tf = transformer(crs)
    dirs = [d for d in DIRECTIONS if any(t.direction == d for t in main)]

    def gather(group, d, budget):
        sel = [t for t in group if t.direction == d]
        if not sel:
            return None
        lon = np.concatenate([t.lon for t in sel])
        idx = _thin(lon.size, budget)
        lat = np.concatenate([t.lat for t in sel])[idx]
        x, y = tf.transform(lon[idx], lat)
        h = np.concatenate([t.h for t in sel])[idx] if group is main else None
        return {"n": int(lon.size), "x": np.asarray(x) / 1e3, "y": np.asarray(y) / 1e3, "h": h}

    layers = {}
    for d in dirs:
        n_d = sum(t.size for t in main if t.direction == d)
        layers[d] = gather(main, d, max_points * n_d / n_total)
        layers[d]["background"] = gather(before, d, max_points / 2 / len(dirs)) if before else None
    h_all = np.concatenate([layers[d]["h"] for d in dirs]).astype(np.float64)
    lo, hi = np.percentile(h_all, [1, 99]) if h_all.size else (0.0, 1.0)
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    norm = Normalize(vmin=lo, vmax=hi)
    n_drawn = sum(int(layers[d]["h"].size) for d in dirs)
    size = 6.0 if n_drawn < 20_000 else (3.0 if n_drawn < 100_000 else 1.5)

    params = _outline_params(outline) if outline is not None else None
    if outline is None:
        seen, params = set(), []
        for t in main:
            key = repr(sorted((k, repr(v)) for k, v in t.parameters.items()
                              if k in ("bbox", "bbox_xy", "crs", "polygon", "polygon_crs")))
            if key not in seen:
                seen.add(key)
                params.append(t.parameters)
    rings = [r for p in (params if isinstance(params, list) else [params]) for r in outline_rings(p, crs)]

    xs = [layers[d]["x"] for d in dirs] + [layers[d]["background"]["x"] for d in dirs if layers[d]["background"]] + \
        [r[:, 0] / 1e3 for _, r in rings]
    ys = [layers[d]["y"] for d in dirs] + [layers[d]["background"]["y"] for d in dirs if layers[d]["background"]] + \
        [r[:, 1] / 1e3 for _, r in rings]
    xlim, ylim = _limits(xs, ys, aspect=0.95)
    fig = new_figure(figsize=(1.5 + 6.5 * len(dirs), 7.0), dpi=dpi)
    axes = fig.subplots(1, len(dirs), squeeze=False)[0]
    sc = None
    for ax, d in zip(axes, dirs):
        L = layers[d]
        handles = []
        if L["background"] is not None:
            B = L["background"]
            ax.scatter(B["x"], B["y"], s=size, marker=MARKERS[d], color="0.78", linewidths=0, rasterized=True)
            handles.append(Line2D([], [], marker=MARKERS[d], linestyle="", color="0.7",
                                  label=f"raw ATL06, before ({B['n']:,})"))
        sc = ax.scatter(L["x"], L["y"], c=L["h"], cmap="viridis", norm=norm, s=size, marker=MARKERS[d],
                        linewidths=0, rasterized=True)
        handles.append(Line2D([], [], marker=MARKERS[d], linestyle="", color="0.15", markersize=7,
                              label=f"{d} ({L['n']:,} points)"))
        for i, (label, ring) in enumerate(rings):
            ax.plot(ring[:, 0] / 1e3, ring[:, 1] / 1e3, color=OUTLINE_COLOUR, linewidth=1.2, zorder=3)
            if i == 0 or label != rings[i - 1][0]:
                handles.append(Line2D([], [], color=OUTLINE_COLOUR, linewidth=1.2, label=f"subset {label}"))
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_aspect("equal", adjustable="box")
        ax.set_title(f"{d} tracks")
        ax.set_xlabel(f"x (km, {crs})")
        ax.legend(handles=handles, loc="lower left", fontsize="small", framealpha=0.85)
        ax.grid(True, linewidth=0.3, alpha=0.5)
    axes[0].set_ylabel(f"y (km, {crs})")
    units = main[0].h_units or "m"
    fig.colorbar(sc, ax=list(axes), label=f"h_elv ({units})", shrink=0.85, extend="both")
    granules = sorted({granule_stem(t.granule) for t in main})
    thinned = f", 1 in {n_total / n_drawn:.0f} drawn" if n_drawn < n_total else ""
    fig.suptitle(f"{n_total:,} points{thinned}, {len(main)} beam tracks from {len(granules)} granule(s)")
    save_png(fig, out_png, dpi)
    return {"kind": "map", "path": os.fspath(out_png), "crs": crs, "n_points": n_total, "n_drawn": n_drawn,
            "n_tracks": len(main), "n_granules": len(granules), "granules": granules,
            "directions": {d: layers[d]["n"] for d in dirs}, "hlim": (float(lo), float(hi)),
            "outline_rings": len(rings), "n_background": sum(t.size for t in before),
            "figure": fig, "axes": list(axes)}


def plot_map(paths, out_png, outline=None, max_points=MAX_POINTS, dpi=150, granule=None, beams=None,
             crs=None, hemisphere=None):
    """Map of PATHs (per-beam files, output folders, merged files, raw granules). Returns facts:
    crs (EPSG by hemisphere), n_points, n_drawn, n_tracks, n_granules, directions, outline_rings, figure.

    Tracks in both hemispheres need ``hemisphere`` (``north``/``south``: only those points, in EPSG:3413
    / EPSG:3031) or ``crs`` (every point in that projected CRS); without either, HemisphereError."""
    if crs is not None:
        check_crs(crs)
    granules = None
    if granule:
        granules = {match_granule(granule_names(paths), granule)}
    tracks, skipped = load_tracks(paths, granules=granules, beams=set(beams) if beams else None, warn=False)
    tracks = require_tracks(tracks, skipped, paths)
    if hemisphere is not None:
        tracks = select_hemisphere(tracks, hemisphere)
        if not tracks:
            raise UsageError(f"plot: no points in the {hemisphere}ern hemisphere in {' '.join(map(str, paths))}")
        crs = crs or HEMISPHERE_CRS[hemisphere]
    return draw_map(tracks, out_png, outline=outline, max_points=max_points, dpi=dpi, crs=crs)
