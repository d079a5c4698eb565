"""``readatl06 plot --kind summary``: from a run's manifest, points kept and removed per granule, time per rank."""
import glob
import json
import os

import numpy as np

from readatl06.errors import UsageError
from readatl06.plot.data import MANIFEST_NAME, granule_stem, granule_time_key, log
from readatl06.plot.style import REMOVED_COLOURS, STATUS_COLOURS, new_figure, save_png


# ---------------------------------------------------------------- manifest (the run's records)
REMOVED_KEYS = ("fill", "quality", "subset", "invalid")     # invalid: drawn only where a run has some


def find_manifest(path):
    """A manifest file from a path to it or to the run's output folder."""
    p = os.fspath(path)
    if os.path.isdir(p):
        cand = os.path.join(p, MANIFEST_NAME)
        if os.path.isfile(cand):
            return cand
        others = sorted(glob.glob(os.path.join(glob.escape(p), "readatl06-manifest.*")))
        if others:
            return others[0]
        raise UsageError(f"plot: {p}: no {MANIFEST_NAME} in this folder (is it a reduce output folder?)")
    if not os.path.isfile(p):
        raise UsageError(f"plot: {p}: no such manifest file or folder")
    return p


def read_manifest(path):
    """Records of a run, one per granule (the last record wins: resumed runs append), sorted by the
    acquisition time in the name. Lines that are not JSON (a run killed mid-write) are skipped."""
    p = find_manifest(path)
    last = {}
    with open(p, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                log.warning("plot: %s line %d is not JSON; skipped", p, n)
                continue
            if isinstance(rec, dict) and rec.get("granule"):
                last[granule_stem(rec["granule"])] = rec
    if not last:
        raise UsageError(f"plot: {p}: the manifest has no granule records")
    out = []
    for stem in sorted(last, key=granule_time_key):
        r = last[stem]
        removed = r.get("removed") or {}
        out.append({"granule": r["granule"], "stem": stem, "status": r.get("status") or "unknown",
                    "points": int(r.get("points") or 0), "seconds": float(r.get("seconds") or 0.0),
                    "rank": int(r.get("rank") or 0), "segments": int(r.get("segments") or 0),
                    "error": r.get("error"),
                    "removed": {k: int(removed.get(k) or 0) for k in REMOVED_KEYS}})
    return out


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
    fig = new_figure(figsize=(max(9.0, min(18.0, 4.0 + 0.25 * n)), 10.0), dpi=dpi)
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
        if k == "invalid" and not v.any():
            continue
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
    save_png(fig, out_png, dpi)
    return {"kind": "summary", "path": os.fspath(out_png), "n_granules": n, "status": counts,
            "points": int(kept.sum()), "removed": removed,
            "seconds_per_rank": dict(zip(ranks, secs)), "granules_per_rank": dict(zip(ranks, per)),
            "figure": fig, "axes": {"kept": ax_kept, "removed": ax_rm, "rank": ax_rank}}
