"""Crossings found tile by tile across the ranks (docs/crossovers.md, "How it is computed").

The area of each hemisphere is split into square tiles (about ``TILES_PER_RANK`` per rank, spread by
line count, largest first); every line goes to each tile its box meets, and a tile keeps the
crossings whose point lies inside it (half-open bounds), so a crossing on a tile edge is counted
once. Every value is computed from the two lines alone: the rows are the same for any tiling.

With ``new`` (a function of lines: which are tracks of granules new since ``--since``) only the
crossings with at least one new line are found, and tiles without a new line are not sent at all.

Collectives: the extents and the per-tile loads are ``Allreduce`` of NumPy arrays (O(tiles) =
O(P) per rank, never an allgather of P arrays), the lines travel once (``Alltoallv``).
"""
import math

import numpy as np

from readatl06.xover import crossings as xover
from readatl06.parallel.exchange import allreduce_array, exchange
from readatl06.parallel.schedule import assign

TILES_PER_RANK = 8
EXCHANGE_DTYPE = np.dtype([("line", xover.LINE_DTYPE), ("tile", "i8"), ("ascending", "?")])


def pair_crossings(a, d, dt_max, keep=None, new=None):
    """Columns of the crossings of lines ``a`` x ``d`` (``keep(x, y)``: which points are ours), plus
    plane. ``new(lines)`` (a boolean per line): only the crossings with at least one new line,
    found as (new a x every d) + (old a x new d), so each once."""
    if new is not None:
        na, nd = new(a), new(d)
        return concat([pair_crossings(a[na], d, dt_max, keep), pair_crossings(a[~na], d[nd], dt_max, keep)])
    ia, jd, s, u, x, y = xover.find_crossings(a, d)
    if keep is not None:
        k = keep(x, y)
        ia, jd, s, u, x, y = ia[k], jd[k], s[k], u[k], x[k], y[k]
    cols = xover.crossover_columns(a, d, ia, jd, s, u, x, y)
    cols["plane"] = a["plane"][ia]
    if dt_max is not None:
        k = cols["dt"] <= dt_max
        cols = {n: v[k] for n, v in cols.items()}
    return cols


def concat(parts):
    """One set of columns from several; lon and lat are NaN where the parts have none yet."""
    out = {}
    for name in xover.COLUMNS + ("plane",):
        got = [p[name] for p in parts if name in p]
        out[name] = np.concatenate(got) if got else np.zeros(0)
    for name in ("lon", "lat"):
        if out[name].size != out["x"].size:
            out[name] = np.full(out["x"].size, np.nan)
    for name, dtype in (("orbit_1", np.int64), ("orbit_2", np.int64), ("beam_1", np.int8), ("beam_2", np.int8),
                        ("plane", np.int8)):
        out[name] = out[name].astype(dtype)
    return out


def tile_grid(extents, nranks, per_rank=TILES_PER_RANK):
    """``{plane: (origin_x, origin_y, side, nx, ny, first tile id)}`` from ``{plane: (xmin, xmax,
    ymin, ymax)}``: about ``per_rank * nranks`` square tiles per plane, 1 m margins."""
    grid, first = {}, 0
    for plane in sorted(extents):
        xmin, xmax, ymin, ymax = extents[plane]
        w, h = xmax - xmin + 2.0, ymax - ymin + 2.0
        side = max(math.sqrt(w * h / (per_rank * nranks)), 1.0)
        nx, ny = math.ceil(w / side), math.ceil(h / side)
        grid[plane] = (xmin - 1.0, ymin - 1.0, side, nx, ny, first)
        first += nx * ny
    return grid


def line_tiles(lines, grid):
    """(line index, tile id) for every tile whose half-open square meets a line's widened box."""
    idx, tiles = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for plane, (ox, oy, side, nx, _ny, first) in grid.items():
        sel = np.flatnonzero(lines["plane"] == plane)
        li, ix, iy = xover.covered_cells(lines[sel], ox, oy, side)
        idx.append(sel[li])
        tiles.append(first + iy * nx + ix)
    return np.concatenate(idx), np.concatenate(tiles)


def extents(comm, a, d):
    """``{plane: (xmin, xmax, ymin, ymax)}`` of every rank's lines (collective: one ``Allreduce``
    (max) of 8 numbers; minima travel negated)."""
    box = np.full(8, -np.inf)
    for plane in (0, 1):
        sel = [v[v["plane"] == plane] for v in (a, d)]
        xs = np.concatenate([v[n] for v in sel for n in ("x0", "x1")])
        ys = np.concatenate([v[n] for v in sel for n in ("y0", "y1")])
        if xs.size:
            box[4 * plane:4 * plane + 4] = -xs.min(), xs.max(), -ys.min(), ys.max()
    box = allreduce_array(comm, box, "max")
    return {plane: (-box[4 * plane], box[4 * plane + 1], -box[4 * plane + 2], box[4 * plane + 3])
            for plane in (0, 1) if box[4 * plane + 1] > -np.inf}


def tile_records(a, d, grid):
    """One ``EXCHANGE_DTYPE`` record per (line, tile its widened box meets); ascending lines first."""
    both = np.concatenate([a, d])
    li, tile = line_tiles(both, grid)
    rec = np.empty(li.size, EXCHANGE_DTYPE)
    rec["line"], rec["tile"], rec["ascending"] = both[li], tile, li < a.size
    return rec


def crossings_by_tile(rec, grid, dt_max, new=None):
    """Columns of the crossings of each tile's records whose point lies in that tile (half-open)."""
    plane_of = np.concatenate([np.full(g[3] * g[4], p, np.int64) for p, g in grid.items()] + [np.zeros(0, np.int64)])
    rec = rec[np.argsort(rec["tile"], kind="stable")]
    ids, starts = np.unique(rec["tile"], return_index=True)
    out = []
    for t, lo, hi in zip(ids, starts, np.append(starts[1:], rec.size)):
        part, asc = rec["line"][lo:hi], rec["ascending"][lo:hi]
        ox, oy, side, nx, _ny, first = grid[int(plane_of[t])]

        def ours(x, y, t=t, ox=ox, oy=oy, side=side, nx=nx, first=first):
            return first + xover.tile_of(x, y, (ox, oy), side, nx) == t
        out.append(pair_crossings(part[asc], part[~asc], dt_max, ours, new))
    return out


def tile_owners(load, nranks):
    """The rank of each tile from the loads summed over the ranks: ``assign`` of the tiles with any
    load (largest first onto the least loaded rank); -1 for a tile without work."""
    owner = np.full(load.size, -1, np.int64)
    busy = np.flatnonzero(load)
    for r, tiles in enumerate(assign([int(v) for v in load[busy]], nranks)):
        owner[busy[tiles]] = r
    return owner


def tiled_crossings(comm, a, d, dt_max, new=None):
    """Crossings found tile by tile across the ranks (collective): this rank's list of columns.
    Tiles go to ranks by their line counts; with ``new``, only tiles holding a new line count."""
    grid = tile_grid(extents(comm, a, d), comm.size)
    ntiles = sum(g[3] * g[4] for g in grid.values())
    rec = tile_records(a, d, grid)
    count = np.bincount(rec["tile"], minlength=ntiles)
    if new is not None:
        fresh = np.bincount(rec["tile"][new(rec["line"])], minlength=ntiles)
        both = allreduce_array(comm, np.concatenate([count, fresh]), "sum")
        load = np.where(both[ntiles:] > 0, both[:ntiles], 0)
    else:
        load = allreduce_array(comm, count, "sum")
    owner = tile_owners(load, comm.size)
    dest = owner[rec["tile"]]
    sent = dest >= 0
    return crossings_by_tile(exchange(comm, rec[sent], dest[sent]), grid, dt_max, new)
