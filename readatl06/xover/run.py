"""``readatl06 xover MERGED.h5|OUTDIR -o XOVERS.h5|.parquet`` (docs/crossovers.md) across ranks.

1. Rank 0 lists the tracks' groups (merged file) or per-beam files (OUTDIR) and every rank reads an
   equal share of their rows, plus two rows past its end so the lines across the share boundary and
   their ``closed`` flags are the same as in one piece. Points are projected (EPSG:3031 where
   lat < 0, EPSG:3413 where lat >= 0, or ``--crs`` for all) and joined into lines
   (:func:`readatl06.xover.crossings.make_lines`); a line never joins points of two hemispheres.
2. With more than one rank the crossings are found tile by tile (:mod:`readatl06.xover.tiles`).
   Every value is computed from the two lines alone: the rows are the same for any number of
   ranks, including one without mpirun. With ``--since`` only crossings with a line of a new
   granule are found (:mod:`readatl06.xover.since`).
3. Rank 0 gathers the rows as compact ``ROW_DTYPE`` arrays (``Gatherv``, no pickles), adds the
   kept rows of the table ``--append`` extends, sorts them by (orbit_1, orbit_2, x, y) and writes
   the file (:mod:`readatl06.xover.write`; HDF5 or GeoParquet by suffix).

Points whose lat, lon, h_elv, t_year or t_sec is not finite or is the fill value are not used.
"""
import os
import sys
import time

import h5py
import numpy as np

from readatl06.outputs import locks
from readatl06.xover import crossings as xover
from readatl06.xover import write as xover_write
from readatl06.errors import BadFileError, ReadATL06Error, UsageError, one_line
from readatl06.atl06.schema import BEAMS, DIRECTIONS
from readatl06.atl06.subset import transformer
from readatl06.outputs.outdir import BEAM_FILES_SHOWN, TrackFile, list_beam_files, read_outdir, verify_all
from readatl06.parallel.exchange import allreduce_array, bcast_object, gatherv
from readatl06.parallel.spread import spread_records
from readatl06.xover import since as since_mod
from readatl06.xover.tiles import concat, pair_crossings, tiled_crossings

HEMISPHERE_CRS = ("EPSG:3031", "EPSG:3413")      # plane 0: lat < 0 (south), plane 1: lat >= 0 (north)
READ = ("lat", "lon", "h_elv", "t_year", "t_sec", "orbit")
# One crossing as rank 0 gathers it: 107 bytes (11 f8, 2 i8 track ids, 2 i1 beam codes, 1 i1 plane).
ROW_DTYPE = np.dtype([(n, "i8" if n.startswith("orbit") else "i1" if n.startswith("beam") else "f8")
                      for n in xover.COLUMNS] + [("plane", "i1")])


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
    from readatl06.errors import BadFileError
    from readatl06.outputs.merged import open_merged
    try:
        with open_merged(path) as f:          # every part of an appended product present
            if "granules" not in f:
                raise UsageError(f"xover: {path}: not a readatl06 merged file (no /granules)")
            for b in BEAMS:
                for d in DIRECTIONS:
                    if f"{b}/{d}" in f:
                        shapes = {k: f[b][d][k].shape for k in READ if k in f[b][d]}
                        out.append((path, f"/{b}/{d}", b, d, _rows(f"{path}:/{b}/{d}", shapes)))
    except OSError as exc:
        raise UsageError(f"xover: {path}: not an HDF5 file ({exc})") from None
    except BadFileError as exc:
        raise UsageError(f"xover: {exc}") from None
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


# ---------------------------------------------------------------- the command
def run_xover(comm, source, output, crs=None, max_gap=100.0, dt_max=None, overwrite=False, params=None,
              since=None, append=False):
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
        since: ``--since T`` (ISO date or date-time, UTC): only the crossings in which at least one
            track's granule starts at or after T (the time in its name); None for all.
        append: ``--append``: add the rows to the existing table ``output`` (made with the same
            options from this product), each crossing once: the result is a full run's table.

    An OUTDIR is read as merge reads it: under its shared lock, only the granules with a complete
    record of one parameter set, every file checked against its recorded checksum.

    Returns:
        int: the exit status, the same on every rank: 0 when the file was written, 1 when it was
        written without the granules of damaged per-beam files, 2 for bad usage found before any
        work (rank 0 printed the one-line reason).
    """
    t0 = time.perf_counter()
    held = locks.Held()
    opts = {"crs": crs, "max_gap": max_gap, "dt_max": dt_max, "since": since, "append": append}
    try:
        plan, damaged, table = _plan(comm, source, output, opts, overwrite, params, held)
        if plan is None:
            return 2
        return _run(comm, plan, source, output, opts, t0, damaged, table)
    finally:
        held.release()


def _check_options(output, opts):
    """Rank 0: UsageError for a bad option; ``--since`` parsed in ``opts``."""
    xover_write.format_of(output)
    if opts["crs"]:
        check_crs(opts["crs"])
    if not opts["max_gap"] > 0:
        raise UsageError(f"xover --max-gap {opts['max_gap']}: must be more than 0 m")
    if opts["dt_max"] is not None and not opts["dt_max"] >= 0:
        raise UsageError(f"xover --dt-max {opts['dt_max']}: must be 0 days or more")
    if isinstance(opts["since"], str):
        opts["since"] = since_mod.since_time(opts["since"])
    if opts["append"] and not os.path.isfile(output):
        raise UsageError(f"xover --append: {output}: no such crossover table (run once without --append)")


def _plan(comm, source, output, opts, overwrite, params, held):
    """((tracks, new granule keys, parameters key), damaged lines, appended table) on every rank
    (the table on rank 0 only), or (None, [], None) after rank 0 printed the usage error. Rank 0
    checks the options, takes an OUTDIR's shared lock and reads it as merge does (granules with a
    complete record of one parameter set), reserves the output; every file is checked against its
    recorded checksum (spread over the ranks); rank 0 lists the tracks and, with ``--since`` or
    ``--append``, the new granules."""
    view = None
    if comm.rank == 0:
        try:
            _check_options(output, opts)
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
            held.append(locks.reserve("-o", output, inputs, overwrite or opts["append"], "xover"))
        except UsageError as exc:
            print(f"readatl06 xover: error: {exc}", file=sys.stderr)
            view = 2
    view = bcast_object(comm, view)          # the file list: bytes in pieces below 2^31
    if view == 2:
        return None, [], None
    try:
        damaged = verify_all(comm, view) if view is not None else []
    except UsageError as exc:          # no manifest: a file not readatl06's, mixed parameter sets (every rank)
        if comm.rank == 0:
            print(f"readatl06 xover: error: {exc}", file=sys.stderr)
        return None, [], None
    tracks = None
    if view is not None and view.files:          # an OUTDIR: its files opened a share per rank
        try:
            tracks = spread_tracks(comm, view.files)
        except UsageError as exc:
            if comm.rank == 0:
                print(f"readatl06 xover: error: {exc}", file=sys.stderr)
            return None, [], None
    plan, table = None, None
    if comm.rank == 0:
        try:
            for line in damaged:
                print(f"readatl06 xover: error: {line}", file=sys.stderr)
            if view is not None and not view.files:
                raise UsageError(f"xover: {source}: no per-beam files ({BEAM_FILES_SHOWN}) to cross in this folder")
            listed = list_tracks(source) if tracks is None else None     # a merged file: checked here first
            key = view.key if view is not None else _parameters_key(source)
            keys = None
            if opts["since"] is not None or opts["append"]:
                keys, table = _new_granules(source, output, view, key, opts)
            plan = (listed, keys, key)
        except (UsageError, BadFileError) as exc:
            print(f"readatl06 xover: error: {exc}", file=sys.stderr)
    plan = bcast_object(comm, plan)              # bytes in pieces below 2^31
    if plan is not None and tracks is not None:
        plan = (tracks,) + plan[1:]
    return plan, damaged, table


def _parameters_key(path):
    """The key of a merged file's reduction parameters (its root attribute ``parameters``), or None."""
    from readatl06.hdf5.attrs import text
    from readatl06.outputs.manifest import params_key
    from readatl06.outputs.merged import open_merged
    with open_merged(path) as f:
        par = text(f.attrs.get("parameters"))
    return params_key(par) if par else None


def _new_granules(source, output, view, key, opts):
    """Rank 0: (keys of the new granules, the appended table or None); prints what is new."""
    from readatl06.atl06.names import parse_name
    from readatl06.outputs.merged import product_granules
    granules = [parse_name(n) for n in view.granules] if view is not None else product_granules(source)[0]
    table, cols = None, None
    if opts["append"]:
        try:
            cols, attrs = xover_write.read(output)
            cols = since_mod.table_columns(cols)
        except (OSError, KeyError, ValueError, TypeError) as exc:        # not a table, or not ours
            raise UsageError(f"xover --append: {output}: not a readatl06 crossover table ({one_line(exc)})") from None
        held = since_mod.held_keys(granules)
        since_mod.check_table(output, attrs, cols, _meta(source, opts, key, set()), held)
        table = (cols, held, attrs.get("since"))
    new, replacing = since_mod.new_granules(granules, opts["since"], cols)
    what = f"since {opts['since'].isoformat()}" if opts["since"] is not None else "(no --since: all)"
    print(f"readatl06 xover: {new.size} of {len(granules)} granules new {what}"
          + (f", {replacing} of them replacing another release or revision in {output}" if replacing else ""),
          file=sys.stderr)
    return new, table


def _meta(source, opts, key, planes):
    """The table's metadata (docs/crossovers.md); ``planes``: the hemispheres of the lines."""
    crs, dt_max = opts["crs"], opts["dt_max"]
    return {"source": os.path.abspath(source), "crs": crs or crs_text(planes),
            "crs_rule": crs or crs_text({0, 1}), "max_gap": float(opts["max_gap"]),
            "dt_max": None if dt_max is None else float(dt_max), "parameters_key": key,
            "since": None if opts["since"] is None else opts["since"].isoformat()}


def _run(comm, plan, source, output, opts, t0, damaged, table):
    tracks, keys, key = plan
    crs, max_gap, dt_max = opts["crs"], opts["max_gap"], opts["dt_max"]
    new = None if keys is None else since_mod.is_new(keys)
    mine = {direction: [np.zeros(0, xover.LINE_DTYPE)] for direction in DIRECTIONS}
    for i, lo, hi in shares([t[4] for t in tracks], comm.size, comm.rank):
        mine[tracks[i][3]].append(read_lines(tracks[i], lo, hi, max_gap, crs))
    a, d = (np.concatenate(mine[direction]) for direction in DIRECTIONS)
    if comm.size == 1:
        parts = [pair_crossings(a, d, dt_max, new=new)]
    else:
        parts = tiled_crossings(comm, a, d, dt_max, new)
    cols = concat(parts)
    for plane in np.unique(cols["plane"]):
        sel = cols["plane"] == plane
        c = crs or HEMISPHERE_CRS[plane]
        cols["lon"][sel], cols["lat"][sel] = transformer("EPSG:4326", c).transform(cols["x"][sel], cols["y"][sel])
    counts = allreduce_array(comm, np.array([a.size, d.size] + [np.any(a["plane"] == p) or np.any(d["plane"] == p)
                                                                for p in (0, 1)], np.int64), "sum")
    rows = gatherv(comm, to_rows(cols))          # compact rows, ROW_DTYPE.itemsize bytes each, in pieces below 2^31
    if comm.rank != 0:
        return 1 if damaged else 0
    cols = {n: rows[n] for n in ROW_DTYPE.names if n != "plane"}
    meta = _meta(source, opts, key, {p for p in (0, 1) if counts[2 + p]})
    note = ""
    if table is not None:
        old, held, old_since = table
        added = cols["x"].size
        cols, kept = since_mod.append(old, cols, keys, held)
        meta["since"] = since_mod.since_of(old_since, opts["since"])
        note = f", {kept} of {old['x'].size} rows kept, {added} added"
    cols = xover.sort_rows(cols)
    xover_write.write(output, cols, meta)
    what = f"{len(tracks)} per-beam files" if os.path.isdir(source) else f"{len(tracks)} groups"
    print(f"readatl06 xover: {cols['x'].size} crossings of {counts[0]} ascending x {counts[1]} descending lines "
          f"({what}, {meta['crs']}{note}) -> {output} in {time.perf_counter() - t0:.1f} s on {comm.size} rank(s)")
    return 1 if damaged else 0


def to_rows(cols):
    """Columns (:func:`readatl06.xover.tiles.concat`) as one compact ``ROW_DTYPE`` array (what rank 0 gathers)."""
    rows = np.empty(cols["x"].size, ROW_DTYPE)
    for n in ROW_DTYPE.names:
        rows[n] = cols[n]
    return rows


def crs_text(planes):
    """The ``crs`` attribute: one EPSG code when the lines lie in one hemisphere, else both with their rule."""
    if len(planes) == 1:
        return HEMISPHERE_CRS[int(next(iter(planes)))]
    return f"{HEMISPHERE_CRS[0]} where lat < 0, {HEMISPHERE_CRS[1]} where lat >= 0"
