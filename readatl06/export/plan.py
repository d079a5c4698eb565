"""What ``readatl06 export`` reads (docs/export.md): a merged file's ``/<beam>/<direction>`` groups or an
OUTDIR's per-beam files, seen as ONE stream of points in merged-file order: granules in the merged
file's order (docs/merge.md), then beam gt1l..gt3r, then direction ascending/descending, then along
track. A *piece* is the points of one (granule, group): a slice of a merged group (located by
``granule_index``) or one per-beam file.

:func:`make_plan` (collective) checks the input and the target, counts the points of every piece and
settles the columns and the extent of the points (for the ``geo`` metadata, needed before the
writer opens), the same on every rank; :class:`Stream` (pure) maps stream rows to pieces,
splits the stream into contiguous granule ranges of balanced point counts, one per rank, and cuts a
rank's range into batches at every multiple of ``ROW_GROUP`` (so a batch never straddles a row group).
The groups, the column order and the checks of a piece's variables are :mod:`.table`'s.
"""
import dataclasses
import os
import sys

import numpy as np

from readatl06.outputs import folder, locks
from readatl06.errors import ReadATL06Error, UsageError
from readatl06.outputs.geoparquet import ROW_GROUP, bounds, union
from readatl06.parallel.exchange import bcast_object
from readatl06.parallel.spread import spread, spread_records
from readatl06.atl06.schema import BEAMS, DIRECTIONS
from readatl06.hdf5.attrs import granule_names, text
from readatl06.export.batch import Source
from readatl06.export.table import GI, GROUPS, TIME, file_variables, group_variables, table_order, variables
from readatl06.outputs.outdir import BEAM_FILES_SHOWN, TrackFile, list_beam_files, plan_outdir, verify_all

SCAN_BLOCK = 1 << 20                # rows of granule_index, lon, lat read at once by the plan's scan


@dataclasses.dataclass
class Column:
    name: str
    dtype: str
    attrs: dict          # units, long_name (field metadata)
    fills: list          # per group: the value of a point whose piece lacks the variable


@dataclasses.dataclass
class Plan:
    kind: str            # "merged" or "outdir"
    source: str
    granules: list       # file names, in (acquisition time, file name) order
    counts: np.ndarray   # (granules, groups) points per piece
    files: dict          # (granule row, group) -> per-beam file (outdir)
    columns: list        # Column, table order (time excluded: always a column of its own)
    parameters: str
    box: list            # [xmin, ymin, xmax, ymax] of every point (None: no point)
    refill: dict = dataclasses.field(default_factory=dict)   # (granule, group) -> {column: the piece's own fill}
    notes: list = dataclasses.field(default_factory=list)    # columns whose pieces have several dtypes
    damaged: list = dataclasses.field(default_factory=list)   # lines: damaged files, granules left out


class Stream:
    """Rows of the export in order; piece p = (granule, group) with counts[granule, group] > 0."""

    def __init__(self, counts):
        self.counts = np.asarray(counts, np.int64).reshape(-1, len(GROUPS))
        self.piece_g, self.piece_k = np.nonzero(self.counts)           # row-major: granule, then group
        self.piece_start = np.concatenate([[0], np.cumsum(self.counts[self.piece_g, self.piece_k])])
        self.group_start = np.cumsum(self.counts, axis=0) - self.counts  # row of (g, k) in group k
        self.granule_start = np.concatenate([[0], np.cumsum(self.counts.sum(axis=1))])
        self.total = int(self.granule_start[-1])

    def rank_rows(self, nranks, rank):
        """Stream rows ``[lo, hi)`` of ``rank``: whole granules, contiguous, about total/nranks points."""
        b = split_granules(self.granule_start, nranks)
        return int(self.granule_start[b[rank]]), int(self.granule_start[b[rank + 1]])

    def pieces(self, s, e):
        """``[(piece, lo, hi)]``: rows ``[lo, hi)`` of each piece that stream rows ``[s, e)`` cover."""
        first = int(np.searchsorted(self.piece_start, s, side="right")) - 1
        out = []
        for p in range(max(first, 0), self.piece_g.size):
            a, b = int(self.piece_start[p]), int(self.piece_start[p + 1])
            if a >= e:
                break
            out.append((p, max(s, a) - a, min(e, b) - a))
        return out


def split_granules(granule_start, nranks):
    """Granule boundaries ``b[0..nranks]`` (b[0] = 0, b[-1] = granules): rank r converts granules
    ``[b[r], b[r+1])``, each boundary the granule start nearest to r/nranks of the points. Pure."""
    starts = np.asarray(granule_start, np.int64)
    total, ng = int(starts[-1]), starts.size - 1
    out = [0]
    for r in range(1, nranks):
        target = total * r / nranks
        i = int(np.searchsorted(starts, target))
        if i > 0 and (i > ng or target - starts[i - 1] <= starts[i] - target):
            i -= 1
        out.append(min(max(i, out[-1]), ng))
    return out + [ng]


def batches(lo, hi, size=ROW_GROUP):
    """``[(s, e)]`` covering stream rows ``[lo, hi)``, cut at every multiple of ``size``."""
    cuts = [lo] + list(range((lo // size + 1) * size, hi, size)) + [hi]
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


# ------------------------------------------------------------------ the plan (collective)
def _scan(comm, items, fn):
    """``fn(item)`` for every item, the items spread over the ranks; every rank gets the results in
    item order, or every rank raises the first UsageError raised anywhere."""
    return spread(comm, items, fn, catch=UsageError)


def merged_head(path):
    """Rank 0: the granule names and parameters of a merged file; UsageError for anything else."""
    from readatl06.errors import BadFileError
    from readatl06.outputs.merged import open_merged
    try:
        f = open_merged(path)           # every part of an appended product present
    except OSError as exc:
        raise UsageError(f"{path}: not an HDF5 file ({str(exc).splitlines()[0]}); "
                         "expected a readatl06 merged file or an output folder") from None
    except BadFileError as exc:
        raise UsageError(str(exc)) from None
    with f:
        if "granules/name" not in f:
            what = ("a readatl06 per-beam file (give its folder)" if "beam" in f.attrs and "granule" in f.attrs
                    else f"an HDF5 file with {sorted(f)[:8]}")
            raise UsageError(f"{path}: not a readatl06 merged file: found {what}; expected /granules/name "
                             "(a file of readatl06 merge) or an output folder")
        names = granule_names(f["granules/name"], path)
        return names, text(f.attrs.get("parameters")) or "{}"


def _scan_group(path, k, ngranules):
    """One merged group: (points per granule, variables, box of its points), read ``SCAN_BLOCK``
    rows at a time; the index must be sorted and in range."""
    beam, direction = GROUPS[k]
    where = f"{path}:/{beam}/{direction}"
    src = Source(path)
    try:
        if f"{beam}/{direction}" not in src.file:
            return np.zeros(ngranules, np.int64), {}, None
        g = src.file[beam][direction]
        if GI not in g:
            raise UsageError(f"{where}: no {GI}; expected a readatl06 merged file")
        n, vars_ = variables(where, group_variables(g, skip=(GI,))) if len(g) > 1 else (0, {})  # only GI: nothing merged
        if g[GI].shape != (n,):
            raise UsageError(f"{where}: {GI} has {g[GI].shape[0]} rows, the variables {n}")
        rows = src.group(g.name)[0]
        counts, last, box = np.zeros(ngranules, np.int64), 0, None
        for a in range(0, n, SCAN_BLOCK):
            block = {v: np.empty(min(SCAN_BLOCK, n - a), g[v].dtype.newbyteorder("=")) for v in (GI, "lon", "lat")}
            for name, out in block.items():
                rows[name].into(out, a)
            gi = block[GI].astype(np.int64)
            if gi[0] < last or np.any(np.diff(gi) < 0) or gi[-1] >= ngranules:
                raise UsageError(f"{where}: {GI} is not sorted within 0..{ngranules - 1}; "
                                 "expected points in granule order (docs/merge.md)")
            counts += np.bincount(gi, minlength=ngranules)
            last = int(gi[-1])
            box = union(box, bounds(block["lon"], block["lat"]))
    finally:
        src.close()
    return counts, vars_, box


def _scan_file(path, row_of):
    """One per-beam file: (granule row, group, points, variables, box of its points, parameters)."""
    try:
        t = TrackFile.open(path, read=("lon", "lat"))
    except OSError as exc:
        raise UsageError(f"{path}: not a readable HDF5 file ({str(exc).splitlines()[0]})") from None
    attrs = {k: text(t.attrs.get(k)) for k in ("granule", "beam", "direction", "parameters")}
    if attrs["beam"] not in BEAMS or attrs["direction"] not in DIRECTIONS or attrs["granule"] not in row_of:
        raise UsageError(f"{path}: not a readatl06 per-beam file (attributes granule, beam, direction: "
                         f"found {attrs['granule']!r}, {attrs['beam']!r}, {attrs['direction']!r})")
    n, vars_ = variables(path, file_variables(t))
    box = bounds(t.values["lon"], t.values["lat"])
    k = GROUPS.index((attrs["beam"], attrs["direction"]))
    return row_of[attrs["granule"]], k, n, vars_, box, attrs["parameters"]


FILE_ROW = np.dtype([("granule", "<i8"), ("group", "<i4"), ("n", "<i8"), ("box", "<f8", (4,))])


def _scan_files(comm, paths, row_of):
    """:func:`_scan_file` of every path, spread over the ranks, in path order on every rank. What
    travels is a ``FILE_ROW`` (44 bytes) per file and each rank's distinct (variables, parameters)
    once (``parallel.spread.spread_records``), not a dict per file."""
    def one(path):
        g, k, n, vars_, box, par = _scan_file(path, row_of)
        return (g, k, n, [np.nan] * 4 if box is None else box), (vars_, par)
    rows, objs, which = spread_records(comm, paths, one, FILE_ROW, catch=UsageError)
    out = []
    for r, w in zip(rows, which.tolist()):
        box = r["box"].tolist()
        out.append((int(r["granule"]), int(r["group"]), int(r["n"]), objs[w][0],
                    box if np.isfinite(box).all() else None, objs[w][1]))
    return out


def _culprit(outdir):
    """The first per-beam file name in ``outdir`` that merge's listing cannot take, with the reason."""
    from readatl06.atl06.names import parse_name
    for p in list_beam_files(outdir).paths():
        try:
            granule = TrackFile.open(p, variables=False).attrs.get("granule")
            if granule is None:
                return f"{p}: not a readatl06 per-beam file (no attribute granule)"
            parse_name(text(granule))
        except OSError as exc:
            return f"{p}: not a readable HDF5 file ({str(exc).splitlines()[0]}); expected a readatl06 per-beam file"
        except (ValueError, ReadATL06Error) as exc:
            return f"{p}: attribute granule is not an ATL06 granule name ({exc})"
    return None


def _outdir_head(outdir, output, overwrite, params, held):
    """Rank 0, under the folder's lock: merge's own view of an OUTDIR (:func:`plan_outdir`)."""
    try:
        view = plan_outdir(outdir, output, overwrite, params, held, "export")
    except UsageError:
        raise
    except (KeyError, OSError, ValueError, ReadATL06Error) as exc:
        raise UsageError(_culprit(outdir) or f"{outdir}: a per-beam file is not readatl06's ({exc!r})") from None
    if not view.files:
        raise UsageError(f"{outdir}: no per-beam files ({BEAM_FILES_SHOWN}) in this folder; "
                         "expected the OUTDIR of readatl06 reduce")
    return view


def _columns(found, labels):
    """``(columns, refill, notes)`` from ``found`` = [(piece, group, {name: (dtype, attrs)})] in stream
    order (piece: an index into ``labels``, what a note names): table order, then other variables
    by name. A column's dtype is NumPy's promotion of every piece's (int32 + float32 -> float64:
    every value exactly; ``notes`` say so); its metadata come from the first piece that has the
    variable, the fill of a group from its first piece that has it, else the first piece anywhere
    (as merge fills). ``refill``: {piece: {name: own fill}} of the pieces whose own ``_FillValue``
    is not their column's fill for their group (replaced while reading)."""
    from readatl06.merge.layout import DTYPES, dtype_notes, fill_for, promote
    first, per_group, census = {}, {}, {}
    for piece, k, vars_ in found:
        for name, (dtype, attrs) in vars_.items():
            first.setdefault(name, (dtype, attrs))
            per_group.setdefault((k, name), (dtype, attrs))
            row, n = census.setdefault(name, {}).get(np.dtype(dtype).newbyteorder("<").str, (piece, 0))
            census[name][np.dtype(dtype).newbyteorder("<").str] = (row, n + 1)
    order = [n for n in table_order() if n in first and n != TIME] + sorted(set(first) - set(table_order()))
    cols = []
    for name in order:
        dtype, attrs = promote(census[name]), first[name][1]
        fills = [fill_for(dtype, per_group.get((k, name), first[name])[1]) for k in range(len(GROUPS))]
        cols.append(Column(name, dtype, {k: v for k, v in attrs.items() if k != "_FillValue"}, fills))
    refill = {}
    for piece, k, vars_ in found:
        for c in cols:
            own = vars_.get(c.name, (None, {}))[1].get("_FillValue")
            if own is not None and fill_for(c.dtype, {"_FillValue": own}) != c.fills[k]:
                refill.setdefault(piece, {})[c.name] = own
    return cols, refill, dtype_notes({DTYPES: census}, labels)


def make_plan(comm, source, output, overwrite=False, params=None):
    """Collective: ``(Plan, held)`` (rank 0: the OUTDIR's shared lock and the target's reservation,
    to release at the end; empty elsewhere), the same Plan on every rank; every rank raises
    UsageError (one line naming the file) for a bad input or target. Rank 0 prints the notes of the
    OUTDIR and one error line per damaged per-beam file (its granule left out: ``Plan.damaged``)."""
    head, held = None, locks.Held()
    if comm.rank == 0:
        try:
            if os.path.isdir(source):
                held.append(locks.Lock(source, "export", shared=True))
                head = ("outdir", _outdir_head(source, output, overwrite, params, held))
                for note in ([held[0].note] if held[0].note else []) + head[1].notes:
                    print(f"readatl06 export: note: {note}", file=sys.stderr)
            elif os.path.isfile(source):
                held.append(locks.reserve("-o", output, [source], overwrite, "export"))
                head = ("merged", [source]) + merged_head(source)
            else:
                raise UsageError(f"{source}: no such file or folder; expected a merged file or an output folder")
            need = sum(head[1].sizes) if head[0] == "outdir" else os.path.getsize(source)
            folder.check_space("-o", output, need // folder.SPACE_SHARE)
        except UsageError as exc:
            head = str(exc)
            held.release()
    head = bcast_object(comm, head)           # the OUTDIR's file list: bytes in pieces below 2^31
    if isinstance(head, str):
        raise UsageError(head)
    try:
        damaged = []
        if head[0] == "outdir":
            view = head[1]
            damaged = verify_all(comm, view)
            if comm.rank == 0:
                for line in damaged:
                    print(f"readatl06 export: error: {line}", file=sys.stderr)
            if not view.files:
                raise UsageError(f"{source}: no undamaged per-beam file left to export")
            head = ("outdir", view.files, view.granules)
        plan = _plan(comm, source, head)
        plan.damaged = damaged
        return plan, held
    except BaseException:
        held.release()
        raise


def _plan(comm, source, head):
    kind, paths, names = head[0], head[1], head[2]
    counts = np.zeros((len(names), len(GROUPS)), np.int64)
    files, found = {}, []
    if kind == "merged":
        groups = _scan(comm, list(range(len(GROUPS))), lambda k: _scan_group(source, k, len(names)))
        for k, (c, vars_, _box) in enumerate(groups):
            counts[:, k] = c
            found.append((k, k, vars_))
        labels = [f"/{b}/{d} of {source}" for b, d in GROUPS]
        parameters = head[3]
    else:
        row_of = {n: i for i, n in enumerate(names)}
        groups = _scan_files(comm, paths, row_of)
        by_piece = {}
        for path, (g, k, n, vars_, _box, _par) in zip(paths, groups):
            if (g, k) in by_piece:
                raise UsageError(f"{path}: a second file of granule {names[g]} {'/'.join(GROUPS[k])} "
                                 f"(the first: {by_piece[(g, k)][0]})")
            by_piece[(g, k)] = (path, n, vars_)
        labels = {}
        for (g, k) in sorted(by_piece):
            path, n, vars_ = by_piece[(g, k)]
            counts[g, k], files[(g, k)] = n, path
            labels[(g, k)] = os.path.basename(path)
            found.append(((g, k), k, vars_))
        parameters = next((p for *_, p in groups if p), "{}")
    box = union(*(item[-2 if kind == "outdir" else -1] for item in groups))
    columns, refill, notes = _columns(found, labels)
    if kind == "merged":
        refill = {}         # a merged group holds one fill value per variable: its own (merge makes it so)
    return Plan(kind, os.path.abspath(source), names, counts, files, columns, parameters, box, refill, notes)
