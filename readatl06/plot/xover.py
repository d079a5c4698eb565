"""``readatl06 plot --kind xover``: crossovers (``readatl06 xover`` output, HDF5 or GeoParquet) on a
polar stereographic map, coloured by dh = h_2 - h_1 on a diverging scale centred on 0; one panel per
hemisphere present. matplotlib is imported only when drawing."""
import os

import numpy as np

from readatl06.atl06.subset import transformer
from readatl06.plot.map import HEMISPHERE_CRS, choose_crs
from readatl06.plot.style import new_figure, save_png


def _panels(cols, crs_attr):
    """``[(hemisphere, crs, x_km, y_km, dh)]``: points of each hemisphere in its polar stereographic
    plane (the file's x, y when the file has one CRS, else lon/lat projected by hemisphere)."""
    lat = np.asarray(cols["lat"], np.float64)
    single = crs_attr if crs_attr and " where lat" not in str(crs_attr) else None   # see xover.run.crs_text
    present = [(h, sel) for h, sel in (("south", lat < 0), ("north", lat >= 0)) if sel.any()]
    out = []
    for hemisphere, sel in present or [("south", lat < 0)]:      # nothing at all: one empty panel
        crs = single or (choose_crs(lat[sel]) if sel.any() else HEMISPHERE_CRS[hemisphere])
        if single:
            x, y = cols["x"][sel], cols["y"][sel]
        else:
            x, y = transformer(crs).transform(np.asarray(cols["lon"])[sel], lat[sel])
        out.append((hemisphere, crs, np.asarray(x) / 1e3, np.asarray(y) / 1e3, np.asarray(cols["dh"])[sel]))
    return out


def plot_xover(path, out_png, dpi=150):
    """Map of the crossovers in ``path`` coloured by dh. Returns facts: n_xovers, crs (per panel),
    dhlim, panels, figure."""
    from matplotlib.colors import Normalize

    from readatl06.xover.write import read
    cols, attrs = read(path)
    n = int(np.asarray(cols["x"]).size)
    panels = _panels(cols, attrs.get("crs"))
    dh_all = np.asarray(cols["dh"], np.float64)
    finite = dh_all[np.isfinite(dh_all)]
    lim = float(np.percentile(np.abs(finite), 98)) if finite.size else 1.0
    lim = lim if lim > 0 else 1.0
    norm = Normalize(vmin=-lim, vmax=lim)
    size = 18.0 if n < 2_000 else (6.0 if n < 50_000 else 2.0)
    fig = new_figure(figsize=(1.8 + 6.5 * len(panels), 7.0), dpi=dpi)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    sc = None
    for ax, (hemisphere, crs, x, y, dh) in zip(axes, panels):
        order = np.argsort(np.abs(dh), kind="stable")          # largest |dh| drawn on top
        sc = ax.scatter(x[order], y[order], c=dh[order], cmap="RdBu_r", norm=norm, s=size, linewidths=0,
                        rasterized=True)
        if not x.size:
            ax.text(0.5, 0.5, "no crossovers", transform=ax.transAxes, ha="center", va="center", color="0.4")
        ax.set_aspect("equal", adjustable="datalim")
        ax.set_title(f"{hemisphere}: {x.size:,} crossovers")
        ax.set_xlabel(f"x (km, {crs})")
        ax.set_ylabel(f"y (km, {crs})")
        ax.grid(True, linewidth=0.3, alpha=0.5)
    fig.colorbar(sc, ax=list(axes), label="dh = h_2 - h_1 (m)", shrink=0.85, extend="both")
    stats = (f", median dh {np.median(finite):+.2f} m, median |dh| {np.median(np.abs(finite)):.2f} m"
             if finite.size else "")
    fig.suptitle(f"{n:,} crossovers of {os.path.basename(str(path))}{stats}")
    save_png(fig, out_png, dpi)
    return {"kind": "xover", "path": os.fspath(out_png), "n_xovers": n, "crs": [p[1] for p in panels],
            "dhlim": (-lim, lim), "panels": [p[0] for p in panels], "figure": fig, "axes": list(axes)}
