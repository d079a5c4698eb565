"""``readatl06 xover MERGED.h5|OUTDIR -o XOVERS.h5|.parquet`` (docs/crossovers.md) across ranks.

1. Rank 0 lists the tracks' groups (merged file) or per-beam files (OUTDIR) and every rank reads an
   equal share of their rows, plus two rows past its end so the lines across the share boundary and
   their ``closed`` flags are the same as in one piece. Points are projected (EPSG:3031 where
   lat < 0, EPSG:3413 where lat >= 0, or ``--crs`` for all) and joined into lines
   (:func:`readatl06.xover.crossings.make_lines`); a line never joins points of two hemispheres.
2. With more than one rank the area of each hemisphere is split into square tiles (about
   ``TILES_PER_RANK`` per rank, spread by line count, largest first); every line goes to each tile its
   box meets, and a tile keeps the crossings whose point lies inside it (half-open bounds), so a
   crossing on a tile edge is counted once. Every value is computed from the two lines alone: the
   rows are the same for any number of ranks, including one without mpirun.
3. Rank 0 gathers the rows, sorts them by (orbit_1, orbit_2, x, y) and writes the file
   (:mod:`readatl06.xover.write`; HDF5 or GeoParquet by suffix).

Points whose lat, lon, h_elv, t_year or t_sec is not finite or is the fill value are not used.
"""
import math
import os
import sys
import time

import h5py
import numpy as np

from readatl06.outputs import locks
from readatl06.xover import crossings as xover
from readatl06.xover import write as xover_write
from readatl06.errors import ReadATL06Error, UsageError, one_line
from readatl06.parallel.schedule import assign
from readatl06.atl06.schema import BEAMS, DIRECTIONS
from readatl06.atl06.subset import transformer
from readatl06.outputs.outdir import BEAM_FILES_SHOWN, TrackFile, list_beam_files, read_outdir, verify_all
from readatl06.parallel.exchange import allreduce_sum, bcast_object, exchange, gather_objects
from readatl06.parallel.spread import spread_records

HEMISPHERE_CRS = ("EPSG:3031", "EPSG:3413")      # plane 0: lat < 0 (south), plane 1: lat >= 0 (north)
READ = ("lat", "lon", "h_elv", "t_year", "t_sec", "orbit")
TILES_PER_RANK = 8
EXCHANGE_DTYPE = np.dtype([("line", xover.LINE_DTYPE), ("tile", "i8"), ("ascending", "?")])


# ---------------------------------------------------------------- options and inputs (rank 0)
def check_crs(crs):
    """``crs`` when it is a projected CRS in metres; UsageError otherwise (``--max-gap`` is metres)."""
    import pyproj
    try:
        parsed = pyproj.CRS.from_user_input(crs)
    except pyproj.exceptions.CRSError as exc:
        raise UsageError(f"xover --crs {crs}: unknown coordinate reference system ({exc})") from None
    units = {a.unit_name for a in parsed.axis_info}
    if not parsed.is_projected or not units <= {"metre", "meter"}:
        raise UsageError(f"xover --crs {crs}: not a projected CRS in metres (found {sorted(units)}); "
                         "use e.g. EPSG:3031 (Antarctic) or EPSG:3413 (Arctic)")
    return crs


def list_tracks(path, files=None):
    """Rank 0: ``[(file, group, beam, direction, rows)]`` of a merged file's ``/<beam>/<direction>``
    groups or an OUTDIR's per-beam files (``*_gtNx_A|D.h5``; ``files``: those to take, by default
    every one), in a fixed order."""
    out = []
    if os.path.isdir(path):
        for p in list_beam_files(path).paths() if files is None else files:
            out.append(_file_track(p))
        if not out:
            raise UsageError(f"xover: {path}: no per-beam files ({BEAM_FILES_SHOWN}) in this folder")
        return out
    if not os.path.isfile(path):
        raise UsageError(f"xover: {path}: no such file or folder")
    try:
        with h5py.File(path, "r") as f:
            if "granules" not in f:
                raise UsageError(f"xover: {path}: not a readatl06 merged file (no /granules)")
            for b in BEAMS:
                for d in DIRECTIONS:
                    if f"{b}/{d}" in f:
                        shapes = {k: f[b][d][k].shape for k in READ if k in f[b][d]}
                        out.append((path, f"/{b}/{d}", b, d, _rows(f"{path}:/{b}/{d}", shapes)))
    except OSError as exc:
        raise UsageError(f"xover: {path}: not an HDF5 file ({exc})") from None
    return out


def _file_track(p):
    """``(file, "/", beam, direction, rows)`` of a per-beam file; UsageError naming it."""
    try:
        t = TrackFile.open(p, variables=READ)
    except (OSError, RuntimeError) as exc:          # truncated, not HDF5
        raise UsageError(f"xover: {p}: cannot be read ({one_line(exc)})") from None
    if t.beam not in BEAMS or t.direction not in DIRECTIONS:
        raise UsageError(f"xover: {p}: not a readatl06 per-beam file (attributes beam, direction)")
    return (p, "/", t.beam, t.direction, _rows(p, t.shapes))


TRACK_ROW = np.dtype([("rows", "<i8"), ("beam", "i1"), ("direction", "i1")])


def spread_tracks(comm, files):
    """:func:`list_tracks` of an OUTDIR's ``files`` (collective): each file opened by one rank, a
    10-byte row per file travels (``parallel.spread.spread_records``); UsageError on every rank."""
    def one(p):
        _, _, beam, direction, rows = _file_track(p)
        return (rows, BEAMS.index(beam), DIRECTIONS.index(direction)), None
    rows, _, _ = spread_records(comm, files, one, TRACK_ROW, catch=UsageError)
    return [(p, "/", BEAMS[int(r["beam"])], DIRECTIONS[int(r["direction"])], int(r["rows"]))
            for p, r in zip(files, rows)]


def _rows(where, shapes):
    """The common length of the datasets xover reads (``shapes``: name -> shape); UsageError naming
    what is missing or uneven."""
    missing = [k for k in READ if k not in shapes]
    if missing:
        raise UsageError(f"xover: {where}: missing {', '.join(missing)}")
    sizes = {k: shapes[k][0] for k in READ}
    if len(set(sizes.values())) != 1:
        raise UsageError(f"xover: {where}: datasets of different lengths {sizes}")
    return int(sizes["lat"])


def shares(rows, nranks, rank):
    """This rank's ``[(track list index, lo, hi)]``: rows ``[R*rank/n, R*(rank+1)/n)`` of all the
    groups laid end to end (a pure function, like :func:`readatl06.parallel.schedule.assign`)."""
    total = int(sum(rows))
    lo, hi = total * rank // nranks, total * (rank + 1) // nranks
    out, start = [], 0
    for i, n in enumerate(rows):
        a, b = max(lo, start), min(hi, start + n)
        if a < b:
            out.append((i, a - start, b - start))
        start += n
    return out


# ---------------------------------------------------------------- points -> lines (every rank)
def _usable(ds, a):
    ok = np.isfinite(a) if a.dtype.kind == "f" else np.ones(a.shape, bool)
    fill = ds.attrs.get("_FillValue")
    if fill is not None:
        ok &= a != np.asarray(fill).ravel()[0].astype(a.dtype)
    return ok


def read_lines(track, lo, hi, max_gap, crs=None):
    """Lines (``LINE_DTYPE``) of rows ``[lo, hi)`` of one group: read two rows more, project, join."""
    path, group, beam, _direction, n = track
    stop = min(hi + 2, n)
    try:
        with h5py.File(path, "r") as f:
            g = f[group]
            data, ok = {}, np.ones(stop - lo, bool)
            for k in READ:
                data[k] = g[k][lo:stop]
                ok &= _usable(g[k], data[k])
    except (OSError, RuntimeError, KeyError, ValueError, ReadATL06Error) as exc:   # a corrupt chunk, a file cut short
        from readatl06.errors import BadFileError
        raise BadFileError(f"{path}:{group}: rows {lo}..{stop} cannot be read ({one_line(exc)})") from None
    planes = [(0, crs, ok)] if crs else [(p, c, ok & ((data["lat"] >= 0) == bool(p)))
                                        for p, c in enumerate(HEMISPHERE_CRS)]
    out = []
    for plane, c, mask in planes:
        if not mask.any():
            continue
        x, y = transformer(c).transform(data["lon"], data["lat"])
        lines, start = xover.make_lines(x, y, data["h_elv"], data["t_year"], data["t_sec"], data["orbit"],
                                        BEAMS.index(beam) + 1, max_gap, ok=mask, plane=plane)
        out.append(lines[start < hi - lo])
    return np.concatenate(out) if out else np.zeros(0, xover.LINE_DTYPE)


# ---------------------------------------------------------------- tiles (more than one rank)
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


def _crossings(a, d, dt_max, keep=None):
    """Columns of the crossings of lines ``a`` x ``d`` (``keep(x, y)``: which points are ours), plus plane."""
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


def _extents(comm, a, d):
    """``{plane: (xmin, xmax, ymin, ymax)}`` of every rank's lines (collective)."""
    ext = {}
    for plane in (0, 1):
        sel = [v[v["plane"] == plane] for v in (a, d)]
        xs = np.concatenate([v[n] for v in sel for n in ("x0", "x1")])
        ys = np.concatenate([v[n] for v in sel for n in ("y0", "y1")])
        every = [e for e in comm.allgather((xs.min(), xs.max(), ys.min(), ys.max()) if xs.size else None)
                 if e is not None]
        if every:
            e = np.array(every)
            ext[plane] = (e[:, 0].min(), e[:, 1].max(), e[:, 2].min(), e[:, 3].max())
    return ext


def tile_records(a, d, grid):
    """One ``EXCHANGE_DTYPE`` record per (line, tile its widened box meets); ascending lines first."""
    both = np.concatenate([a, d])
    li, tile = line_tiles(both, grid)
    rec = np.empty(li.size, EXCHANGE_DTYPE)
    rec["line"], rec["tile"], rec["ascending"] = both[li], tile, li < a.size
    return rec


def crossings_by_tile(rec, grid, dt_max):
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
        out.append(_crossings(part[asc], part[~asc], dt_max, ours))
    return out


def tiled_crossings(comm, a, d, dt_max):
    """Crossings found tile by tile across the ranks (collective): this rank's list of columns.
    Tiles go to ranks by their line counts (largest first onto the least loaded rank)."""
    grid = tile_grid(_extents(comm, a, d), comm.size)
    ntiles = sum(g[3] * g[4] for g in grid.values())
    rec = tile_records(a, d, grid)
    load = allreduce_sum(comm, np.bincount(rec["tile"], minlength=ntiles).astype(np.int64))   # O(tiles), not O(tiles x P)
    owner = np.zeros(ntiles, np.int64)
    for r, tiles in enumerate(assign([int(v) for v in load], comm.size)):
        owner[tiles] = r
    return crossings_by_tile(exchange(comm, rec, owner[rec["tile"]]), grid, dt_max)


# ---------------------------------------------------------------- the command
def run_xover(comm, source, output, crs=None, max_gap=100.0, dt_max=None, overwrite=False, params=None):
    """The whole ``readatl06 xover`` command (docs/crossovers.md), called on every rank alike.

    Rank 0 checks the options and lists the tracks; every rank reads its share of their lines;
    with more than one rank the crossings are found tile by tile; rank 0 gathers and sorts the
    rows and writes the file (the same rows for any number of ranks).

    Args:
        comm: the communicator (mpi4py, or the one-rank stand-in of
            ``readatl06.parallel.world.world()``).
        source: a merged file (``MERGED.h5``) or an OUTDIR of per-beam files.
        output: the crossover file; HDF5 (``.h5``, ``.hdf5``, ``.he5``, ``.nc``) or GeoParquet
            (``.parquet``, ``.geoparquet``, ``.pq``) by its suffix.
        crs: a projected CRS in metres for every track, e.g. ``"EPSG:3031"`` (``--crs``); None:
            EPSG:3031 where lat < 0, EPSG:3413 where lat >= 0.
        max_gap: lines whose two points are more than this many metres apart are skipped
            (``--max-gap``, more than 0).
        dt_max: keep only crossings at most this many days apart in time (``--dt-max``, 0 or
            more), or None for all.
        overwrite: replace an existing ``output`` (``--overwrite``); never an input.
        params: the parameter-set key (``--parameters KEY``) of the per-beam files to cross when an
            OUTDIR mixes several; None otherwise.

    An OUTDIR is read as merge reads it: under its shared lock, only the granules with a complete
    record of one parameter set, every file checked against its recorded checksum.

    Returns:
        int: the exit status, the same on every rank: 0 when the file was written, 1 when it was
        written without the granules of damaged per-beam files, 2 for bad usage found before any
        work (rank 0 printed the one-line reason).
    """
    t0 = time.perf_counter()
    held = locks.Held()
    try:
        plan, damaged = _plan(comm, source, output, crs, max_gap, dt_max, overwrite, params, held)
        if plan is None:
            return 2
        return _run(comm, plan, source, output, crs, max_gap, dt_max, t0, damaged)
    finally:
        held.release()


def _plan(comm, source, output, crs, max_gap, dt_max, overwrite, params, held):
    """(tracks, damaged lines) on every rank, or (None, []) after rank 0 printed the usage error.
    Rank 0 checks the options, takes an OUTDIR's shared lock and reads it as merge does (granules
    with a complete record of one parameter set), reserves the output; every file is checked
    against its recorded checksum (spread over the ranks); rank 0 lists the tracks."""
    view = None
    if comm.rank == 0:
        try:
            xover_write.format_of(output)
            if crs:
                check_crs(crs)
            if not max_gap > 0:
                raise UsageError(f"xover --max-gap {max_gap}: must be more than 0 m")
            if dt_max is not None and not dt_max >= 0:
                raise UsageError(f"xover --dt-max {dt_max}: must be 0 days or more")
            inputs = [source]
            if os.path.isdir(source):
                held.append(locks.Lock(source, "xover", shared=True))
                listed = list_beam_files(source)
                view = read_outdir(source, params, listed=listed, defer=True)    # settled by verify_all
                inputs = listed.paths()
                for note in ([held[0].note] if held[0].note else []) + view.notes:
                    print(f"readatl06 xover: note: {note}", file=sys.stderr)
            elif params is not None:
                raise UsageError("xover --parameters: applies to an OUTDIR only")
            held.append(locks.reserve("-o", output, inputs, overwrite, "xover"))
        except UsageError as exc:
            print(f"readatl06 xover: error: {exc}", file=sys.stderr)
            view = 2
    view = bcast_object(comm, view)          # the file list: bytes in pieces below 2^31
    if view == 2:
        return None, []
    try:
        damaged = verify_all(comm, view) if view is not None else []
    except UsageError as exc:          # no manifest: a file not readatl06's, mixed parameter sets (every rank)
        if comm.rank == 0:
            print(f"readatl06 xover: error: {exc}", file=sys.stderr)
        return None, []
    if comm.rank == 0:
        for line in damaged:
            print(f"readatl06 xover: error: {line}", file=sys.stderr)
    if view is not None and view.files:          # an OUTDIR: its files opened a share per rank
        try:
            return spread_tracks(comm, view.files), damaged
        except UsageError as exc:
            if comm.rank == 0:
                print(f"readatl06 xover: error: {exc}", file=sys.stderr)
            return None, []
    plan = None
    if comm.rank == 0:
        try:
            if view is not None:
                raise UsageError(f"xover: {source}: no per-beam files ({BEAM_FILES_SHOWN}) to cross in this folder")
            plan = list_tracks(source)
        except UsageError as exc:
            print(f"readatl06 xover: error: {exc}", file=sys.stderr)
    return bcast_object(comm, plan), damaged


def _run(comm, plan, source, output, crs, max_gap, dt_max, t0, damaged):
    mine = {direction: [np.zeros(0, xover.LINE_DTYPE)] for direction in DIRECTIONS}
    for i, lo, hi in shares([t[4] for t in plan], comm.size, comm.rank):
        mine[plan[i][3]].append(read_lines(plan[i], lo, hi, max_gap, crs))
    a, d = (np.concatenate(mine[direction]) for direction in DIRECTIONS)
    if comm.size == 1:
        parts = [_crossings(a, d, dt_max)]
    else:
        parts = tiled_crossings(comm, a, d, dt_max)
    cols = _concat(parts)
    for plane in np.unique(cols["plane"]):
        sel = cols["plane"] == plane
        c = crs or HEMISPHERE_CRS[plane]
        cols["lon"][sel], cols["lat"][sel] = transformer("EPSG:4326", c).transform(cols["x"][sel], cols["y"][sel])
    counts = comm.allgather((a.size, d.size, set(np.unique(a["plane"])) | set(np.unique(d["plane"]))))
    every = gather_objects(comm, cols)        # bytes in pieces below 2^31: every crossing to rank 0
    if comm.rank != 0:
        return 1 if damaged else 0
    cols = xover.sort_rows(_concat(every))
    del cols["plane"]
    planes = set().union(*(c[2] for c in counts))
    meta = {"source": os.path.abspath(source), "crs": crs or crs_text(planes), "max_gap": float(max_gap),
            "dt_max": None if dt_max is None else float(dt_max)}
    xover_write.write(output, cols, meta)
    n_a, n_d = (sum(c[k] for c in counts) for k in (0, 1))
    what = f"{len(plan)} per-beam files" if os.path.isdir(source) else f"{len(plan)} groups"
    print(f"readatl06 xover: {cols['x'].size} crossings of {n_a} ascending x {n_d} descending lines "
          f"({what}, {meta['crs']}) -> {output} in {time.perf_counter() - t0:.1f} s on {comm.size} rank(s)")
    return 1 if damaged else 0


def crs_text(planes):
    """The ``crs`` attribute: one EPSG code when the lines lie in one hemisphere, else both with their rule."""
    if len(planes) == 1:
        return HEMISPHERE_CRS[int(next(iter(planes)))]
    return f"{HEMISPHERE_CRS[0]} where lat < 0, {HEMISPHERE_CRS[1]} where lat >= 0"


def _concat(parts):
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
