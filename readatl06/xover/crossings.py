"""Crossovers (docs/crossovers.md), the science core: where a line of an ascending track crosses a line of a
descending track, and h and t interpolated there along both. Pure numpy; no MPI, no files, no pyproj.

A *line* joins two consecutive points of one track in a plane (polar stereographic metres). Lines
are rows of a structured array of ``LINE_DTYPE``: both end points, h, t_year and t_sec at both
ends, the track's orbit id and beam, and ``closed`` (see below). :func:`make_lines` builds them.

**What counts as a crossing** (the same rule for the spatial index and :func:`brute_force`): lines
``a0 -> a1`` (ascending) and ``d0 -> d1`` (descending) cross where the side of ``a0`` and ``a1``
relative to the line through ``d0, d1`` differ or one of them lies on it, and likewise for ``d0, d1``
relative to ``a0, a1`` (closed segments; signs of orientation determinants in float64, whose
coordinate differences are exact for points metres apart, and the same number for a shared point
whichever line asks). Then

- each line owns its start point and not its end point, except the last line of a run of lines
  (the end of a track, or before a gap longer than ``max_gap``), which is ``closed`` and owns both:
  a track passing exactly through a vertex of the other, or two tracks sharing a vertex, give one
  crossing, not two; a track that ends (or starts) exactly on the other one, or touches it at a
  vertex and turns back, meets it once and gives one crossing;
- collinear lines (overlapping or not), parallel lines and zero-length lines give no crossing;
- lines longer than ``max_gap`` (plane distance between their points) are not lines.

**Spatial index.** Lines are binned into square cells (sides a few line lengths); only pairs that
share a cell are tested, and a crossing is kept in the one cell that contains its point (half-open
cell bounds), so the cost grows with the crossings and near misses, not with the product of track
lengths. The same point rule assigns crossings to MPI tiles (:func:`tile_of`), which is why the
result is the same for any tiling: every value is computed from the two lines alone.
"""
import numpy as np

LINE_DTYPE = np.dtype([("x0", "f8"), ("y0", "f8"), ("x1", "f8"), ("y1", "f8"),
                       ("h0", "f8"), ("h1", "f8"), ("ty0", "f8"), ("ty1", "f8"), ("ts0", "f8"), ("ts1", "f8"),
                       ("orbit", "i8"), ("beam", "i1"), ("closed", "?"), ("plane", "i1")])
EPS = 1e-3                 # m: line boxes are widened by this much, far above the rounding of a crossing point
MAX_PAIRS = 2_000_000      # candidate pairs tested at once (memory ~ 200 bytes each)
DAYS_PER_YEAR = 365.25     # dhdt is per Julian year
_GEOMETRY = ("x0", "y0", "x1", "y1", "closed")     # the fields the crossing test reads
COLUMNS = ("x", "y", "lon", "lat", "h_1", "h_2", "t_1", "t_2", "dh", "dt", "dhdt",
           "orbit_1", "orbit_2", "beam_1", "beam_2")


# ---------------------------------------------------------------- lines from points
def make_lines(x, y, h, t_year, t_sec, orbit, beam, max_gap, ok=None, plane=0):
    """Lines joining consecutive points of the same track (equal ``orbit``), both points usable
    (``ok``, default all) and at most ``max_gap`` apart in the plane. Returns ``(lines, start)``:
    the ``LINE_DTYPE`` rows and the index of each line's first point."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    orbit = np.asarray(orbit, np.int64)
    n = x.size
    ok = np.ones(n, bool) if ok is None else np.asarray(ok, bool)
    if n < 2:
        return np.zeros(0, LINE_DTYPE), np.zeros(0, np.int64)
    good = (orbit[1:] == orbit[:-1]) & ok[1:] & ok[:-1]
    good &= np.hypot(x[1:] - x[:-1], y[1:] - y[:-1]) <= max_gap
    start = np.flatnonzero(good)
    nxt = np.append(good[1:], False)           # does the line after this one exist?
    out = np.zeros(start.size, LINE_DTYPE)
    for (n0, n1), v in ((("x0", "x1"), x), (("y0", "y1"), y), (("h0", "h1"), h),
                        (("ty0", "ty1"), t_year), (("ts0", "ts1"), t_sec)):
        v = np.asarray(v, np.float64)
        out[n0], out[n1] = v[start], v[start + 1]
    out["orbit"] = orbit[start]
    out["beam"] = np.broadcast_to(np.asarray(beam, np.int8), (n,))[start]
    out["closed"] = ~nxt[start]
    out["plane"] = plane
    return out, start


# ---------------------------------------------------------------- the crossing predicate
def _orient(ax, ay, bx, by, cx, cy):
    """Twice the signed area of (a, b, c): > 0 when c lies left of the line a -> b."""
    return (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)


def intersect(a, d):
    """Element-wise test of line pairs ``a[i]`` x ``d[i]`` (``LINE_DTYPE`` rows of equal length).
    Returns ``(hit, s, u, x, y)``: whether they cross (module rule), the fraction along each line
    and the crossing point (from ``a``); s, u, x, y are meaningful where ``hit``."""
    oa0 = _orient(d["x0"], d["y0"], d["x1"], d["y1"], a["x0"], a["y0"])
    oa1 = _orient(d["x0"], d["y0"], d["x1"], d["y1"], a["x1"], a["y1"])
    od0 = _orient(a["x0"], a["y0"], a["x1"], a["y1"], d["x0"], d["y0"])
    od1 = _orient(a["x0"], a["y0"], a["x1"], a["y1"], d["x1"], d["y1"])
    sa0, sa1, sd0, sd1 = np.sign(oa0), np.sign(oa1), np.sign(od0), np.sign(od1)
    hit = (sa0 * sa1 <= 0) & (sd0 * sd1 <= 0)
    hit &= (sa0 != 0) | (sa1 != 0)             # a on d's line: collinear (or a has zero length)
    hit &= (sd0 != 0) | (sd1 != 0)
    hit &= (sa1 != 0) | a["closed"]            # d passes through a's end point: the next line's start
    hit &= (sd1 != 0) | d["closed"]
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(hit, oa0 / (oa0 - oa1), 0.0)
        u = np.where(hit, od0 / (od0 - od1), 0.0)
    x = a["x0"] + s * (a["x1"] - a["x0"])
    y = a["y0"] + s * (a["y1"] - a["y0"])
    return hit, s, u, x, y


# ---------------------------------------------------------------- spatial index
def cell_size(a, d):
    """A cell side of about four typical line lengths, doubled while the lines would be registered in
    more than ~8 cells each on average (a few very long lines with a large ``max_gap``). Any positive
    value gives the same crossings; this one keeps the candidate pairs few."""
    length = np.concatenate([np.hypot(v["x1"] - v["x0"], v["y1"] - v["y0"]) for v in (a, d)])
    size = max(4.0 * float(np.median(length)) if length.size else 1.0, 1.0)
    extent = [np.abs(np.concatenate([v[k + "1"] - v[k + "0"] for v in (a, d)])) + 2 * EPS for k in "xy"]
    while np.sum((extent[0] / size + 2) * (extent[1] / size + 2)) > 8 * length.size + 1_000_000:
        size *= 2.0
    return size


def grid_index(v, origin, size):
    """``floor((v - origin) / size)`` as int64: the half-open cell (or tile) of a coordinate."""
    return np.floor((np.asarray(v, np.float64) - origin) / size).astype(np.int64)


def covered_cells(lines, ox, oy, size, eps=EPS):
    """Every (line, ix, iy) whose cell meets the line's bounding box widened by ``eps``."""
    ix0 = grid_index(np.minimum(lines["x0"], lines["x1"]) - eps, ox, size)
    ix1 = grid_index(np.maximum(lines["x0"], lines["x1"]) + eps, ox, size)
    iy0 = grid_index(np.minimum(lines["y0"], lines["y1"]) - eps, oy, size)
    iy1 = grid_index(np.maximum(lines["y0"], lines["y1"]) + eps, oy, size)
    ny = iy1 - iy0 + 1
    count = (ix1 - ix0 + 1) * ny
    line = np.repeat(np.arange(lines.size), count)
    k = np.arange(line.size) - np.repeat(np.cumsum(count) - count, count)
    return line, ix0[line] + k // ny[line], iy0[line] + k % ny[line]


def _candidate_chunks(a, d, ox, oy, size, max_pairs):
    """(ia, jd, ix, iy) for every pair of an a-line and a d-line registered in the same cell, in
    chunks of about ``max_pairs`` pairs."""
    la, ixa, iya = covered_cells(a, ox, oy, size)
    ld, ixd, iyd = covered_cells(d, ox, oy, size)
    if not la.size or not ld.size:
        return
    x_lo = min(ixa.min(), ixd.min())
    y_lo, y_n = min(iya.min(), iyd.min()), max(iya.max(), iyd.max()) - min(iya.min(), iyd.min()) + 1
    keys = [(ix - x_lo) * y_n + (iy - y_lo) for ix, iy in ((ixa, iya), (ixd, iyd))]
    order = [np.argsort(k, kind="stable") for k in keys]
    ua, sa, na = np.unique(keys[0][order[0]], return_index=True, return_counts=True)
    ud, sd, nd = np.unique(keys[1][order[1]], return_index=True, return_counts=True)
    common, pa, pd = np.intersect1d(ua, ud, assume_unique=True, return_indices=True)
    sa, na, sd, nd = sa[pa], na[pa], sd[pd], nd[pd]
    pairs = na * nd
    bounds = np.searchsorted(np.cumsum(pairs), np.arange(0, pairs.sum(), max_pairs), side="right")
    for lo, hi in zip(bounds, np.append(bounds[1:], common.size)):
        if hi <= lo:
            continue
        c = slice(lo, hi)
        p = pairs[c]
        cell = np.repeat(np.arange(hi - lo), p)
        k = np.arange(cell.size) - np.repeat(np.cumsum(p) - p, p)
        ia = la[order[0][sa[c][cell] + k // nd[c][cell]]]
        jd = ld[order[1][sd[c][cell] + k % nd[c][cell]]]
        key = common[c][cell]
        yield ia, jd, key // y_n + x_lo, key % y_n + y_lo


def find_crossings(a, d, size=None, max_pairs=MAX_PAIRS):
    """Every crossing of an ``a`` line with a ``d`` line, each once. Returns
    ``(ia, jd, s, u, x, y)`` (line indices, fractions along each line, crossing point). ``a`` and
    ``d``: structured arrays with (at least) the fields of ``LINE_DTYPE``."""
    out = []
    if a.size and d.size:
        size = cell_size(a, d) if size is None else float(size)
        ox = float(min(a["x0"].min(), a["x1"].min(), d["x0"].min(), d["x1"].min()))
        oy = float(min(a["y0"].min(), a["y1"].min(), d["y0"].min(), d["y1"].min()))
        for ia, jd, ix, iy in _candidate_chunks(a, d, ox, oy, size, max_pairs):
            hit, s, u, x, y = intersect({k: a[k][ia] for k in _GEOMETRY}, {k: d[k][jd] for k in _GEOMETRY})
            hit &= (grid_index(x, ox, size) == ix) & (grid_index(y, oy, size) == iy)   # once: its own cell
            out.append((ia[hit], jd[hit], s[hit], u[hit], x[hit], y[hit]))
    if not out:
        return (np.zeros(0, np.int64), np.zeros(0, np.int64)) + tuple(np.zeros(0) for _ in range(4))
    return tuple(np.concatenate(c) for c in zip(*out))


def brute_force(a, d, max_pairs=MAX_PAIRS):
    """The reference: every a line against every d line (no index), same rule, same tuple as
    :func:`find_crossings`. Cost: len(a) * len(d)."""
    out = []
    dd = {k: d[k][None, :] for k in _GEOMETRY}
    step = max(1, max_pairs // max(d.size, 1))
    for lo in range(0, a.size, step):
        aa = {k: a[k][lo:lo + step, None] for k in _GEOMETRY}
        hit, s, u, x, y = intersect(aa, dd)
        ia, jd = np.nonzero(hit)
        out.append((ia + lo, jd, s[ia, jd], u[ia, jd], x[ia, jd], y[ia, jd]))
    if not out:
        return (np.zeros(0, np.int64), np.zeros(0, np.int64)) + tuple(np.zeros(0) for _ in range(4))
    return tuple(np.concatenate(c) for c in zip(*out))


# ---------------------------------------------------------------- crossings -> table rows
def _along(lines, f, name):
    return lines[name + "0"] + f * (lines[name + "1"] - lines[name + "0"])


def crossover_columns(a, d, ia, jd, s, u, x, y, dt_max=None):
    """The columns of docs/crossovers.md (all but lon, lat) of crossings found by :func:`find_crossings`: h and t
    interpolated linearly along both lines, track 2 the later (equal times: the larger orbit id).
    ``dt`` is elapsed days from the GPS seconds, ``dhdt`` m per Julian year (NaN where dt = 0).
    ``dt_max`` (days) keeps only crossings with ``dt <= dt_max``."""
    la, ld = a[ia], d[jd]
    ha, hd = _along(la, s, "h"), _along(ld, u, "h")
    ta, td = _along(la, s, "ty"), _along(ld, u, "ty")
    sa, sd = _along(la, s, "ts"), _along(ld, u, "ts")
    swap = (sa > sd) | ((sa == sd) & (la["orbit"] > ld["orbit"]))
    pick = lambda p, q: np.where(swap, q, p)    # noqa: E731  (value of track 1, given a's and d's)
    cols = {"x": x, "y": y,
            "h_1": pick(ha, hd), "h_2": pick(hd, ha), "t_1": pick(ta, td), "t_2": pick(td, ta),
            "orbit_1": pick(la["orbit"], ld["orbit"]), "orbit_2": pick(ld["orbit"], la["orbit"]),
            "beam_1": pick(la["beam"], ld["beam"]).astype(np.int8),
            "beam_2": pick(ld["beam"], la["beam"]).astype(np.int8)}
    cols["dh"] = cols["h_2"] - cols["h_1"]
    cols["dt"] = np.abs(sd - sa) / 86400.0
    with np.errstate(divide="ignore", invalid="ignore"):
        cols["dhdt"] = np.where(cols["dt"] > 0, cols["dh"] / (cols["dt"] / DAYS_PER_YEAR), np.nan)
    if dt_max is not None:
        keep = cols["dt"] <= dt_max
        cols = {k: v[keep] for k, v in cols.items()}
    return cols


def sort_rows(cols):
    """Rows ordered by (orbit_1, orbit_2, x, y) (then h_1, h_2: total, whatever order they came in)."""
    order = np.lexsort(tuple(cols[k] for k in ("h_2", "h_1", "y", "x", "orbit_2", "orbit_1")))
    return {k: np.asarray(v)[order] for k, v in cols.items()}


def tile_of(x, y, origin, size, nx):
    """The tile number of points (half-open tiles of side ``size`` from ``origin``, ``nx`` per row)."""
    return grid_index(y, origin[1], size) * nx + grid_index(x, origin[0], size)
