"""``readatl06 plot``: figures to check a run with (map, profile, summary).

matplotlib is imported inside the drawing functions only, and through the object-oriented API
(``matplotlib.figure.Figure`` rendered by Agg): no pyplot, no global backend switch, no display needed
on a compute node. Loading lives in :mod:`readatl06.plotdata`.
"""
import os
import sys

import numpy as np

from readatl06.errors import UsageError
from readatl06.plotdata import (BEAMS, DIRECTIONS, REMOVED_KEYS, granule_names, granule_stem,
                                load_tracks, log, match_granule, read_manifest)

KINDS = ("map", "profile", "summary")
MAX_POINTS = 250_000            # points drawn per map; more are thinned evenly along the tracks
MARKERS = {"ascending": "^", "descending": "v"}
STRENGTH_STYLE = {"strong": {"linewidth": 1.6, "linestyle": "-"},
                  "weak": {"linewidth": 0.8, "linestyle": (0, (4, 2))},
                  "unknown": {"linewidth": 1.1, "linestyle": "-."}}
STATUS_COLOURS = {"done": "tab:blue", "empty": "0.6", "failed": "tab:red"}
REMOVED_COLOURS = {"fill": "0.55", "quality": "tab:orange", "subset": "tab:purple"}
OUTLINE_COLOUR = "red"
SEGMENT_LENGTH_KM = 0.02        # ATL06 segments are 40 m long, centred every 20 m (x_atc ~ 20 m * segment_id)


# ---------------------------------------------------------------- geometry
def choose_crs(lat):
    """EPSG:3031 (Antarctic polar stereographic) when the mean latitude is south, else EPSG:3413."""
    return "EPSG:3031" if float(np.nanmean(lat)) < 0 else "EPSG:3413"


def _transformer(crs_to, crs_from="EPSG:4326"):
    from readatl06.subset import transformer   # the project's one cached Transformer per CRS pair
    return transformer(crs_to, crs_from)


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
        x, y = _transformer(crs).transform(ring[:, 0], ring[:, 1])
    elif src_crs.upper() == crs.upper():
        ring = _densify(ring, None, closed)              # straight in the plot plane already
        x, y = ring[:, 0], ring[:, 1]
    else:
        ring = _densify(ring, 5000.0, closed)
        x, y = _transformer(crs, src_crs).transform(ring[:, 0], ring[:, 1])
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
        w, e, s, n = (float(v) for v in params["bbox"])
        label = f"--bbox {w:g} {e:g} {s:g} {n:g}"
        if w > e:
            e += 360.0                                   # crosses the antimeridian
        if e - w >= 360.0:                               # all longitudes: only the parallels are edges
            for lat in (s, n):
                if abs(lat) < 90.0:
                    circle = [(w, lat), (w + 120, lat), (w + 240, lat), (w + 360, lat)]
                    out.append((label, _to_plot(circle, None, crs, closed=False)))
        else:
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


def _figure(**kw):
    from matplotlib.figure import Figure
    return Figure(layout="constrained", **kw)


def _save(fig, out_png, dpi):
    d = os.path.dirname(os.path.abspath(out_png))
    os.makedirs(d, exist_ok=True)
    fig.savefig(out_png, dpi=dpi)


# ---------------------------------------------------------------- map
def draw_map(tracks, out_png, outline=None, max_points=MAX_POINTS, dpi=150, crs=None):
    """Map of Track objects (see :mod:`readatl06.plotdata`). Reduced points are coloured by h_elv;
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
    crs = crs or choose_crs(np.concatenate([t.lat[:: max(1, t.size // 1000)] for t in main]))
    tf = _transformer(crs)
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
    fig = _figure(figsize=(1.5 + 6.5 * len(dirs), 7.0), dpi=dpi)
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
    _save(fig, out_png, dpi)
    return {"kind": "map", "path": os.fspath(out_png), "crs": crs, "n_points": n_total, "n_drawn": n_drawn,
            "n_tracks": len(main), "n_granules": len(granules), "granules": granules,
            "directions": {d: layers[d]["n"] for d in dirs}, "hlim": (float(lo), float(hi)),
            "outline_rings": len(rings), "n_background": sum(t.size for t in before),
            "figure": fig, "axes": list(axes)}


def plot_map(paths, out_png, outline=None, max_points=MAX_POINTS, dpi=150, granule=None, beams=None):
    """Map of PATHs (per-beam files, output folders, merged files, raw granules). Returns facts:
    crs (EPSG by hemisphere), n_points, n_drawn, n_tracks, n_granules, directions, outline_rings, figure."""
    granules = None
    if granule:
        granules = {match_granule(granule_names(paths), granule)}
    tracks, _ = load_tracks(paths, granules=granules, beams=set(beams) if beams else None)
    if not tracks:
        raise UsageError(f"plot: no points in {' '.join(map(str, paths))}")
    return draw_map(tracks, out_png, outline=outline, max_points=max_points, dpi=dpi)


# ---------------------------------------------------------------- profile
def _name_fields(stem):
    """rgt, cycle, region from ``ATL06_yyyymmddhhmmss_ttttccss_vvv_rr`` (None when it does not parse)."""
    parts = granule_stem(stem).split("_")
    if len(parts) >= 3 and len(parts[2]) == 8 and parts[2].isdigit():
        p = parts[2]
        return int(p[:4]), int(p[4:6]), int(p[6:8])
    return None


def _join(parts):
    """One beam's A and D tracks -> arrays in along-track order."""
    cols = {}
    for k in ("lon", "lat", "h", "s", "segment_id"):
        vals = [getattr(t, k) for t in parts]
        cols[k] = None if any(v is None for v in vals) else np.concatenate(vals)
    if cols["segment_id"] is not None:
        order = np.argsort(cols["segment_id"], kind="stable")
        cols = {k: (v[order] if v is not None else None) for k, v in cols.items()}
    return cols


def _along_track_km(cols, seg0):
    if seg0 is not None:
        return (cols["segment_id"].astype(np.float64) - seg0) * SEGMENT_LENGTH_KM
    import pyproj
    _, _, dist = pyproj.Geod(ellps="WGS84").inv(cols["lon"][:-1], cols["lat"][:-1],
                                                cols["lon"][1:], cols["lat"][1:])
    return np.concatenate([[0.0], np.cumsum(dist)]) / 1e3


def _with_breaks(x, *ys, gap_km=0.5):
    """Insert NaN where consecutive points are more than ``gap_km`` apart, so lines do not bridge gaps."""
    cut = np.flatnonzero(np.diff(x) > gap_km) + 1
    if not cut.size:
        return (x,) + ys
    out = [np.insert(x.astype(np.float64), cut, np.nan)]
    out += [None if y is None else np.insert(y.astype(np.float64), cut, np.nan) for y in ys]
    return tuple(out)


def plot_profile(paths, out_png, granule=None, beams=None, dpi=150, gap_km=0.5):
    """h_elv along track, one line per beam of ONE granule (``granule``: name, stem or unique part;
    default the earliest found), s_elv as a band; strong/weak by line width and style. Raw granule
    points of the same granule, when given too, are drawn underneath as grey dots."""

    names = granule_names(paths)
    if not names:
        raise UsageError(f"plot: no granule in {' '.join(map(str, paths))}")
    stem = match_granule(names, granule) if granule else names[0]
    if not granule and len(names) > 1:
        log.info("plot: %d granules found; profile of %s (choose another with --granule)", len(names), stem)
    tracks, _ = load_tracks(paths, extra=True, granules={stem}, beams=set(beams) if beams else None)
    after = [t for t in tracks if t.kind != "raw"]
    before = [t for t in tracks if t.kind == "raw"] if after else []
    main = after or tracks
    if not main:
        raise UsageError(f"plot: granule {stem} has no points" + (f" in beams {' '.join(beams)}" if beams else ""))
    beam_list = [b for b in BEAMS if any(t.beam == b for t in main)]
    joined = {b: _join([t for t in main if t.beam == b]) for b in beam_list}
    raw = {b: _join([t for t in before if t.beam == b]) for b in beam_list if any(t.beam == b for t in before)}
    have_seg = all(c["segment_id"] is not None for c in list(joined.values()) + list(raw.values()))
    seg0 = min(int(c["segment_id"].min()) for c in list(joined.values()) + list(raw.values())) if have_seg else None

    fig = _figure(figsize=(12.0, 5.5), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    strengths, n_points = {}, 0
    for b, cols in raw.items():
        x = _along_track_km(cols, seg0)
        ax.scatter(x, cols["h"], s=2, color="0.7", linewidths=0, rasterized=True, zorder=1,
                   label="raw h_li, before" if b == next(iter(raw)) else None)
    for b in beam_list:
        cols = joined[b]
        x = _along_track_km(cols, seg0)
        xb, hb, sb = _with_breaks(x, cols["h"], cols["s"], gap_km=gap_km)
        strength = next(t.strength for t in main if t.beam == b)
        strengths[b] = strength
        pair = int(b[2]) - 1
        colour = ("tab:blue", "tab:orange", "tab:green")[pair] if b.endswith("l") else \
            ("navy", "saddlebrown", "darkgreen")[pair]
        if sb is not None and np.isfinite(sb).any():
            ax.fill_between(xb, hb - sb, hb + sb, color=colour, alpha=0.25, linewidth=0, zorder=2)
        # a point alone between two gaps draws no line: mark it (still one Line2D per beam)
        ok = np.isfinite(hb)
        prev_ok = np.concatenate([[False], ok[:-1]])
        next_ok = np.concatenate([ok[1:], [False]])
        lonely = np.flatnonzero(ok & ~prev_ok & ~next_ok)
        ax.plot(xb, hb, color=colour, zorder=3, label=f"{b} {strength} ({cols['h'].size:,})",
                marker="." if lonely.size else None, markersize=3, markevery=lonely.tolist() or None,
                **STRENGTH_STYLE.get(strength, STRENGTH_STYLE["unknown"]))
        n_points += int(cols["h"].size)
    if raw:
        h = np.concatenate([joined[b]["h"] for b in beam_list]).astype(np.float64)
        lo, hi = np.percentile(h, [0.5, 99.5])
        pad = max(0.05 * (hi - lo), 1.0)
        ax.set_ylim(lo - pad, hi + pad)
    units = main[0].h_units or "m"
    ax.set_xlabel("along-track distance (km" + (", segment_id × 20 m)" if have_seg else ")"))
    ax.set_ylabel(f"h_elv ({units}); band: ± s_elv")
    ax.grid(True, linewidth=0.3, alpha=0.5)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", title="beam strength (points)")
    f = _name_fields(stem)
    dirs = sorted({t.direction for t in main})
    ax.set_title(f"{stem}" + (f"   RGT {f[0]}, cycle {f[1]}, region {f[2]}" if f else "") +
                 f"   ({', '.join(dirs)})")
    _save(fig, out_png, dpi)
    return {"kind": "profile", "path": os.fspath(out_png), "granule": stem, "granules_found": names,
            "beams": beam_list, "strengths": strengths, "n_lines": len(ax.get_lines()), "n_points": n_points,
            "along_track": "segment_id" if have_seg else "geodesic", "n_background": sum(t.size for t in before),
            "figure": fig, "axes": [ax]}


# ---------------------------------------------------------------- summary
def plot_summary(manifest, out_png, dpi=150):
    """From a run's manifest (the file or the output folder): points kept per granule, points removed
    by each filter (stacked), seconds per rank. The last record of a granule wins (resumed runs)."""
    from matplotlib.patches import Patch

    recs = read_manifest(manifest)
    n = len(recs)
    x = np.arange(n)
    status = [r["status"] for r in recs]
    counts = {s: status.count(s) for s in dict.fromkeys(status)}
    fig = _figure(figsize=(max(9.0, min(18.0, 4.0 + 0.25 * n)), 10.0), dpi=dpi)
    gs = fig.add_gridspec(3, 1, height_ratios=[1.0, 1.0, 0.8])
    ax_kept = fig.add_subplot(gs[0])
    ax_rm = fig.add_subplot(gs[1], sharex=ax_kept)
    ax_rank = fig.add_subplot(gs[2])

    kept = np.array([r["points"] for r in recs])
    ax_kept.bar(x, kept, width=0.8, color=[STATUS_COLOURS.get(s, "tab:purple") for s in status])
    for s, marker in (("failed", "x"), ("empty", "o")):     # zero-height bars: mark them at 0
        at = np.flatnonzero(np.array(status) == s)
        if at.size:
            ax_kept.scatter(at, np.zeros(at.size), marker=marker, color=STATUS_COLOURS[s], zorder=3,
                            clip_on=False)
    ax_kept.legend(handles=[Patch(color=STATUS_COLOURS.get(s, "tab:purple"), label=f"{s} ({c})")
                            for s, c in counts.items()], fontsize="small", loc="upper right")
    ax_kept.set_ylabel("points kept")
    ax_kept.set_title(f"points kept per granule (total {kept.sum():,})")
    ax_kept.tick_params(labelbottom=False)

    bottom = np.zeros(n)
    removed = {}
    for k in REMOVED_KEYS:
        v = np.array([r["removed"][k] for r in recs], dtype=np.float64)
        removed[k] = int(v.sum())
        ax_rm.bar(x, v, bottom=bottom, width=0.8, color=REMOVED_COLOURS[k], label=f"{k} ({removed[k]:,})")
        bottom += v
    ax_rm.set_ylabel("points removed")
    ax_rm.set_title("points removed per granule, by filter")
    ax_rm.legend(fontsize="small", loc="upper right")
    if n <= 40:
        ax_rm.set_xticks(x, [r["stem"].replace("ATL06_", "") for r in recs], rotation=90, fontsize="x-small")
    else:
        ax_rm.set_xlabel(f"granule (1..{n}, sorted by acquisition time)")

    ranks = sorted({r["rank"] for r in recs})
    secs = [sum(r["seconds"] for r in recs if r["rank"] == k) for k in ranks]
    per = [sum(1 for r in recs if r["rank"] == k) for k in ranks]
    bars = ax_rank.bar(ranks, secs, width=0.8, color="tab:green")
    if len(ranks) <= 32:
        ax_rank.bar_label(bars, labels=[f"{c} granule{'s' if c != 1 else ''}" for c in per], fontsize="small")
        ax_rank.margins(y=0.15)
        ax_rank.set_xticks(ranks)
    ax_rank.set_xlabel("MPI rank")
    ax_rank.set_ylabel("seconds")
    ax_rank.set_title(f"time per rank (sum over its granules; {sum(secs):.1f} s in all)")

    fig.suptitle(f"{n} granules: " + ", ".join(f"{c} {s}" for s, c in counts.items()))
    _save(fig, out_png, dpi)
    return {"kind": "summary", "path": os.fspath(out_png), "n_granules": n, "status": counts,
            "points": int(kept.sum()), "removed": removed,
            "seconds_per_rank": dict(zip(ranks, secs)), "granules_per_rank": dict(zip(ranks, per)),
            "figure": fig, "axes": {"kept": ax_kept, "removed": ax_rm, "rank": ax_rank}}


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
    parser.add_argument("--max-points", type=int, default=MAX_POINTS, metavar="N",
                        help=f"map: draw at most N points, thinned evenly along the tracks (default {MAX_POINTS:,})")
    parser.add_argument("--dpi", type=int, default=150, help="resolution of raster output (default 150)")
    return parser


def run(args, comm=None):
    """Draw on rank 0 (other ranks return 0 at once). Exit status 0, 2 for bad usage, 1 for I/O errors."""
    rank = comm.Get_rank() if comm is not None else 0
    if rank != 0:
        return 0
    kind = getattr(args, "kind", "map") or "map"
    try:
        if args.max_points is not None and args.max_points < 1:
            raise UsageError("plot: --max-points must be at least 1")
        if kind == "summary":
            if len(args.paths) != 1:
                raise UsageError("plot --kind summary: give one PATH (the output folder or its manifest)")
            f = plot_summary(args.paths[0], args.output, dpi=args.dpi)
            what = f"{f['n_granules']} granules, {f['points']:,} points kept"
        elif kind == "profile":
            f = plot_profile(args.paths, args.output, granule=args.granule, beams=args.beams, dpi=args.dpi)
            what = f"{f['granule']}, {f['n_lines']} beams, {f['n_points']:,} points"
        else:
            f = plot_map(args.paths, args.output, outline=getattr(args, "outline", None), dpi=args.dpi,
                         max_points=args.max_points, granule=args.granule, beams=args.beams)
            what = f"{f['n_points']:,} points, {f['n_granules']} granules, {f['crs']}"
    except UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"plot: {exc}", file=sys.stderr)
        return 1
    print(f"plot: wrote {args.output} ({kind}: {what})")
    return 0


def plot_after_run(outdir, merged=None):
    """``reduce --plot`` (rank 0): a map of the run and its summary figure, next to the outputs."""
    src = merged if merged and os.path.exists(merged) else outdir
    out = {}
    try:
        out["map"] = plot_map([src], os.path.join(outdir, "readatl06-map.png"))
    except Exception as exc:   # a figure must never turn a finished run into a failed one
        print(f"readatl06 plot: map not drawn: {exc}", file=sys.stderr)
    try:
        out["summary"] = plot_summary(outdir, os.path.join(outdir, "readatl06-summary.png"))
    except Exception as exc:
        print(f"readatl06 plot: summary not drawn: {exc}", file=sys.stderr)
    return out
