"""``readatl06 plot --kind profile``: h_elv along track per beam of one granule, s_elv as a band."""
import os

import numpy as np

from readatl06.errors import UsageError
from readatl06.plot.data import BEAMS, granule_names, granule_stem, load_tracks, log, match_granule, require_tracks
from readatl06.plot.style import SEGMENT_LENGTH_KM, STRENGTH_STYLE, new_figure, save_png


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
    tracks, skipped = load_tracks(paths, extra=True, granules={stem}, beams=set(beams) if beams else None,
                                  warn=False)
    if tracks or skipped:
        require_tracks(tracks, skipped, paths)    # logs what was skipped, or one line when nothing is left
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

    fig = new_figure(figsize=(12.0, 5.5), dpi=dpi)
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
    save_png(fig, out_png, dpi)
    return {"kind": "profile", "path": os.fspath(out_png), "granule": stem, "granules_found": names,
            "beams": beam_list, "strengths": strengths, "n_lines": len(ax.get_lines()), "n_points": n_points,
            "along_track": "segment_id" if have_seg else "geodesic", "n_background": sum(t.size for t in before),
            "figure": fig, "axes": [ax]}
