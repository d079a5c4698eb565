"""Where the merged file's points come from and travel before the collective write (docs/merge.md).

A *source* is one track of the merge, (granule row, group, points), either held in memory by the
rank that reduced it (a ``Track``) or in a per-beam file any rank can read (its metadata only, the
points are read a slice at a time); a rank keeps them as :class:`~readatl06.merge.sources.Sources`.
``HeldTracks`` is what ``reduce --merge`` keeps while it reduces: Tracks up to its share of
``--merge-memory``, their files beyond. Every rank knows the whole source table (:func:`source_table`:
one ``Allgatherv`` of 29-byte records, and each rank's folders and non-standard paths; a file with the
standard name is found from its folder and its granule), so every rank computes the same plan without
further talk:

* ``chunk_for(n)``: elements per chunk of a dataset of ``n`` elements, a function of ``n`` alone
  (the file's layout does not depend on the number of ranks);
* rounds: a group's points ``[0, n)`` are cut into rounds of ``ranks x per_rank`` elements, where
  ``per_rank`` is a whole number of chunks that fits the rank's share of ``--merge-memory``;
* within a round each rank owns one contiguous run of whole chunks (the round's chunks split
  evenly), so in the collective write every chunk is compressed by exactly one rank;
* a rank fills its run itself from the per-beam files that overlap it (reading that slice only),
  and receives the points other ranks hold in memory with one ``Alltoallv`` per dataset.

The HDF5 file itself is written in :mod:`readatl06.merge.writer`. A source's values go into the
merged dtype with NumPy's cast (exact: the dtype is the promotion of every source's) and its own
``_FillValue`` becomes the dataset's where the two differ (:func:`put`).
"""
import dataclasses
import os

import h5py
import numpy as np

from readatl06.merge.sources import GROUPS, Sources, track_bytes
from readatl06.outputs.outdir import TrackFile, beam_file_name

CHUNK_MAX = 1 << 14      # elements per chunk of a large merged dataset
CHUNK_MIN = 1 << 12      # never smaller (chunk index and per-chunk costs), except a dataset that small
MIN_CHUNKS = 16          # below CHUNK_MAX * MIN_CHUNKS elements the chunk halves, to give ranks work
MAX_PER_RANK = 1 << 17   # points of a group per rank and round, whatever the memory (larger: no faster)
GI = "granule_index"     # computed from the source table, never read or sent
DEFAULT_MEMORY_MB = 512  # --merge-memory
ROUND_SHARE = 0.5        # of --merge-memory: one round's buffers; the rest: tracks reduce --merge holds


class HeldTracks(Sources):
    """What a rank keeps for ``reduce --merge`` while it reduces (:class:`~readatl06.merge.sources.Sources`):
    the Tracks themselves while they fit in ``1 - ROUND_SHARE`` of ``--merge-memory``, beyond that
    the per-beam file just written (~30 bytes: the merge reads it back, a slice per round). With
    ``--no-per-beam`` there is nothing to read back: every Track stays in memory (``over`` says
    whether that went past the limit)."""

    def __init__(self, outdir, files=True, memory=None):
        super().__init__()
        self.outdir, self.files = outdir, files
        self.limit = memory_bytes(memory) * (1 - ROUND_SHARE)
        self.bytes, self.over = 0, False

    def extend(self, items):
        from readatl06.outputs.trackfile import output_path
        for i, t in items:
            nb = track_bytes(t)
            if self.files and self.bytes + nb > self.limit:
                self.add(i, t, output_path(self.outdir, t))
                continue
            self.bytes += nb
            self.over = self.over or self.bytes > self.limit
            self.add(i, t)


def open_tracks(paths, keep=None):
    """``(TrackFiles, error)``: the per-beam files ``paths`` opened for their metadata, or at the first
    that is not a readable readatl06 per-beam file (lengths of its datasets included), the one-line
    reason naming it. With ``keep`` (a function) each TrackFile is given to it instead of listed
    (``Sources.add``: what a continent's files cost is then their ~30 bytes each). The caller agrees
    on the verdict with the other ranks before any collective phase (``parallel.world.first_error``),
    so that a bad file stops every rank alike."""
    from readatl06.errors import ReadATL06Error
    out = []
    for p in paths:
        try:
            t = TrackFile.open(p)
            if t.granule is None:
                raise ValueError(f"attribute granule {t.attrs.get('granule')!r} is no ATL06 granule name")
            if len(set(t.shapes.values())) > 1:
                ref = "lat" if "lat" in t.shapes else next(iter(t.shapes))
                odd = ", ".join(f"{k} {v}" for k, v in t.shapes.items() if v != t.shapes[ref])
                raise ValueError(f"datasets of different lengths: {odd} against {ref} {t.shapes[ref]}")
        except (OSError, KeyError, ValueError, TypeError, ReadATL06Error) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if isinstance(exc, KeyError):
                first = f"no attribute {first}"
            return out, f"{p}: not a readable readatl06 per-beam file ({first})"
        if keep is None:
            out.append(t)
        else:
            keep(t)
    return out, None


SOURCE = np.dtype([("row", "<i8"), ("n", "<i8"), ("name", "<i4"), ("holder", "<i4"), ("group", "<i1"),
                   ("folder", "<i4")])


def source_table(comm, held, granules):
    """Per group of ``sources.GROUPS``: ``(rows, counts, holders, path_of)`` of every rank's non-empty
    tracks, sorted by row; ``holders[i]`` the rank that has the points in memory, -1 for a per-beam
    file at ``path_of(i)``. ``held``: this rank's sources (``Sources`` or ``[(row, track)]``),
    ``granules`` the merge's, by row. Collective: the records travel as one ``SOURCE`` array (29
    bytes a track) and each rank's folders and non-standard paths as one object; a file with the
    standard name is found from its folder and its granule's stem, so no path travels for it. What
    stays on every rank is ~28 bytes a track of the whole merge (its table, split by group)."""
    from readatl06.parallel.exchange import allgather_objects, allgatherv
    held = Sources.of(held)
    rows, points, group, _, folder, name = held.file_columns()
    files = np.flatnonzero(points > 0)
    mine = [(row, t) for row, t in held.tracks if len(t)]
    local = np.zeros(len(mine) + len(files), SOURCE)
    local["row"][:len(mine)] = [row for row, _ in mine]
    local["n"][:len(mine)] = [len(t) for _, t in mine]
    local["group"][:len(mine)] = [GROUPS.index((t.beam, t.direction)) for _, t in mine]
    local["holder"][:len(mine)], local["name"][:len(mine)], local["folder"][:len(mine)] = comm.rank, -1, -1
    for field, column in (("row", rows), ("n", points), ("group", group), ("folder", folder), ("name", name)):
        local[field][len(mine):] = column[files]
    local["holder"][len(mine):] = -1
    del files
    table, counts = allgatherv(comm, local)
    del local
    places = allgather_objects(comm, [(held.folders, held.names)])
    folders = [f for fs, _ in places for f in fs]
    names = [n for _, ns in places for n in ns]
    ends, n_folders, n_names = np.cumsum(counts), 0, 0
    for r, (fs, ns) in enumerate(places):          # a rank's folders and names follow the previous ranks'
        part = table[int(ends[r] - counts[r]):int(ends[r])]
        for field, base in (("folder", n_folders), ("name", n_names)):
            column = part[field]
            column[column >= 0] += base
        n_folders, n_names = n_folders + len(fs), n_names + len(ns)
    order = np.lexsort((table["row"], table["group"]))
    edges = np.searchsorted(table["group"][order], np.arange(len(GROUPS) + 1))
    out = []
    for k in range(len(GROUPS)):
        at = order[edges[k]:edges[k + 1]]
        rows_k = _narrow(table["row"][at])     # one array for the plan and the paths
        out.append((rows_k, table["n"][at], table["holder"][at],
                    FilePaths(folders, names, granules, k, table["folder"][at], table["name"][at], rows_k)))
    return out


class FilePaths:
    """``path_of(i)`` of a group's source table: the path of its source ``i`` (a per-beam file)."""

    def __init__(self, folders, names, granules, group, folder, name, rows):
        self.folders, self.names, self.granules = folders, names, granules
        self.beam, self.direction = GROUPS[group]
        self.folder, self.name, self.rows = folder, name, rows

    def __call__(self, i):
        if self.name[i] >= 0:
            return self.names[int(self.name[i])]
        if self.folder[i] < 0:
            return None
        stem = self.granules[int(self.rows[i])].stem
        return os.path.join(self.folders[int(self.folder[i])], beam_file_name(stem, self.beam, self.direction))


def memory_bytes(memory):
    return int(float(DEFAULT_MEMORY_MB if memory is None else memory) * 2 ** 20)


def chunk_for(n):
    """Elements per chunk of a merged dataset of ``n`` elements."""
    n = int(n)
    if n <= CHUNK_MIN:
        return max(n, 1)
    c = CHUNK_MAX
    while c > CHUNK_MIN and n < c * MIN_CHUNKS:
        c //= 2
    return c


def _narrow(values):
    """``values`` as int32 where every one fits, else int64."""
    values = np.asarray(values)
    if values.dtype == np.int32:
        return values
    values = values.astype(np.int64, copy=False)
    if values.size and (values.min() < -2 ** 31 or values.max() >= 2 ** 31):
        return values
    return values.astype(np.int32)


class GroupPlan:
    """The sources of one (beam, direction) group in file order, its chunk and its rounds.

    ``rows``, ``count``, ``holder``: per source, sorted by row, ``count > 0``; ``holder`` the rank
    that has the points in memory, -1 for a per-beam file at ``path(i)`` (``path_of``).
    ``point_bytes``: bytes a rank needs per element of its run (every dataset's buffer plus the
    exchange's), ``budget``: bytes a rank may spend on one round."""

    def __init__(self, rows, count, holder, nranks, point_bytes, budget, path_of=None):
        self.rows = _narrow(rows)                  # held by every rank for the whole merge: no wider
        self.count = _narrow(count)                # than the values need, no start array (end - count)
        self.holder = np.asarray(holder)
        self.path = path_of
        self.end = np.cumsum(self.count, dtype=np.int64)
        self.total = int(self.end[-1]) if len(self.end) else 0
        self.nranks = nranks
        self.chunk = chunk_for(self.total)
        fit = min(int(budget) // max(int(point_bytes), 1), MAX_PER_RANK)
        self.per_rank = max(fit // self.chunk, 1) * self.chunk

    def rounds(self, writers):
        """``[(A, B)]``: the rounds, each at most ``writers x per_rank`` elements, chunk aligned."""
        step = self.per_rank * max(writers, 1)
        return [(a, min(a + step, self.total)) for a in range(0, self.total, step)]

    def bounds(self, a, b):
        """``nranks + 1`` boundaries: rank r owns ``[bounds[r], bounds[r + 1])`` of the round ``[a, b)``,
        whole chunks, as evenly as the chunks allow (``a`` is chunk aligned)."""
        nch = -(-(b - a) // self.chunk)
        cuts = (np.arange(self.nranks + 1, dtype=np.int64) * nch) // self.nranks
        return np.minimum(a + cuts * self.chunk, b)

    def first(self, i):
        """File position of source ``i``'s first point."""
        return int(self.end[i]) - int(self.count[i])

    def overlapping(self, a, b):
        """Indices of the sources with points in ``[a, b)``: those that end after ``a`` and start
        before ``b`` (source ``i > 0`` starts where ``i - 1`` ends, source 0 at 0)."""
        lo = int(np.searchsorted(self.end, a, side="right"))
        n = len(self.end)
        hi = 0 if b <= 0 or not n else min(int(np.searchsorted(self.end, b, side="left")) + 1, n)
        return range(lo, hi)

    def any_held(self, a, b):
        r = self.overlapping(a, b)
        return bool(len(r)) and bool((self.holder[r.start:r.stop] >= 0).any())

    def any_file_in(self, a, b):
        r = self.overlapping(a, b)
        return bool(len(r)) and bool((self.holder[r.start:r.stop] < 0).any())

    def clip(self, i, a, b):
        """(first, stop) of source ``i``'s points inside ``[a, b)``, in file positions."""
        return max(self.first(i), a), min(int(self.end[i]), b)


@dataclasses.dataclass
class Exchange:
    """One rank's part of a round's ``Alltoallv`` (the same for every dataset of the group)."""

    local: list           # [(source index, first, stop, offset in my run)]: my own points, no MPI
    send: list            # [(source index, first, stop)] inside the track, in file order
    scounts: np.ndarray   # elements to each rank (0 to myself)
    rcounts: np.ndarray   # elements from each rank
    runs: list            # [(offset in the received buffer, offset in my run, length)]
    needed: bool          # some rank sends something to another (the same on every rank)


def plan_exchange(gp, bounds, me, a_round, b_round):
    """What rank ``me`` sends of the points it holds in ``[a_round, b_round)`` and where the points it
    receives go in its run ``[bounds[me], bounds[me + 1])``; its points that stay with it are copied."""
    p = gp.nranks
    scounts = np.zeros(p, np.int64)
    local, send, needed = [], [], False
    for i in gp.overlapping(a_round, b_round):
        h = int(gp.holder[i])
        if h < 0:
            continue
        s, e = gp.clip(i, a_round, b_round)
        d = int(np.searchsorted(bounds, s, side="right")) - 1
        while s < e:
            cut = min(e, int(bounds[d + 1]))
            if cut > s:
                needed = needed or d != h
                if h == me:
                    lo, hi = s - gp.first(i), cut - gp.first(i)
                    if d == me:
                        local.append((i, lo, hi, s - int(bounds[me])))
                    else:
                        send.append((i, lo, hi))
                        scounts[d] += cut - s
            s, d = cut, d + 1
    a, b = int(bounds[me]), int(bounds[me + 1])
    pieces = []
    for i in gp.overlapping(a, b):
        if gp.holder[i] >= 0 and gp.holder[i] != me:
            s, e = gp.clip(i, a, b)
            pieces.append((int(gp.holder[i]), s - a, e - s))
    rcounts = np.zeros(p, np.int64)
    for h, _, n in pieces:
        rcounts[h] += n
    at = np.concatenate([[0], np.cumsum(rcounts)[:-1]])
    runs = []
    for h, pos, n in sorted(pieces, key=lambda x: (x[0], x[1])):    # the received order
        r = int(at[h])
        at[h] += n
        if runs and runs[-1][0] + runs[-1][2] == r and runs[-1][1] + runs[-1][2] == pos:
            runs[-1][2] += n
        else:
            runs.append([r, pos, n])
    return Exchange(local, send, scounts, rcounts, runs, needed)


def refill(dst, own, fill):
    """Where ``dst`` (a source's values, in the merged dtype) holds the source's own fill value
    ``own``, the dataset's ``fill`` instead; nothing when they are the same (or either is None)."""
    if own is None or fill is None:
        return
    own = np.asarray(own).ravel()
    if own.size != 1:
        return
    own, fill = own.astype(dst.dtype)[0], np.asarray(fill, dst.dtype)[()]
    nan = dst.dtype.kind == "f" and bool(np.isnan(own))
    if own == fill or (nan and np.isnan(fill)):
        return
    dst[np.isnan(dst) if nan else dst == own] = fill


def put(dst, values, own, fill):
    """``dst[...] = values`` (NumPy's cast), the source's fill ``own`` made the dataset's ``fill``;
    ``fill`` everywhere when the source lacks the variable (``values`` None)."""
    if values is None:
        dst[...] = fill
        return
    dst[...] = values
    refill(dst, own, fill)


def own_fill(track, name):
    return track.var_attrs.get(name, {}).get("_FillValue")


def copy_local(ex, tracks, name, fill, out):
    """This rank's own points of dataset ``name`` that stay in its run."""
    for i, lo, hi, pos in ex.local:
        values = tracks[i].data.get(name)
        put(out[pos:pos + hi - lo], None if values is None else values[lo:hi], own_fill(tracks[i], name), fill)


def send_buffer(ex, gp, tracks, name, dtype, fill):
    """This rank's points of dataset ``name`` for the exchange, in file order (``fill`` where a
    track lacks the variable). ``tracks``: source index -> Track."""
    buf = np.empty(int(ex.scounts.sum()), dtype)
    pos = 0
    for i, lo, hi in ex.send:
        values = tracks[i].data.get(name)
        put(buf[pos:pos + hi - lo], None if values is None else values[lo:hi], own_fill(tracks[i], name), fill)
        pos += hi - lo
    return buf


def place(ex, received, out):
    for r, pos, n in ex.runs:
        out[pos:pos + n] = received[r:r + n]


def fill_index(gp, a, b, out):
    """``granule_index`` of the run ``[a, b)``: the row of each point's source."""
    for i in gp.overlapping(a, b):
        s, e = gp.clip(i, a, b)
        out[s - a:e - a] = gp.rows[i]


def _attr(did, name):
    """The attribute ``name`` of the DatasetID ``did`` as an array, or None."""
    if not h5py.h5a.exists(did, name):
        return None
    attr = h5py.h5a.open(did, name)
    out = np.empty(attr.shape, attr.dtype)
    attr.read(out)
    return out


def read_files(gp, a, b, outs, fills):
    """The run ``[a, b)``'s points that live in per-beam files, read into ``outs`` (name -> buffer of
    the run), each file opened once and only its slice read; ``fills`` where a file lacks a variable
    (and for the file's own fill value where it differs). h5py's low-level calls: ``File.close``
    walks every object open in the process, 5 ms a file. A file that cannot be read is a
    BadFileError naming it (the rank that reads it stops the job with that one line)."""
    from readatl06.errors import BadFileError
    for i in gp.overlapping(a, b):
        if gp.holder[i] >= 0:
            continue
        try:
            _read_file(gp, i, a, b, outs, fills)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise BadFileError(f"{gp.path(i)}: cannot read it for the merge ({first})") from None


def _read_file(gp, i, a, b, outs, fills):
    """Source ``i``'s slice of the run ``[a, b)`` into ``outs``."""
    s, e = gp.clip(i, a, b)
    lo, hi = s - gp.first(i), e - gp.first(i)
    fid = h5py.h5f.open(os.fsencode(gp.path(i)), h5py.h5f.ACC_RDONLY)
    try:
        root = h5py.h5g.open(fid, b"/")
        for name, out in outs.items():
            dst = out[s - a:e - a]
            if name == GI:
                continue
            if not root.links.exists(name.encode()):
                dst[...] = fills[name]
                continue
            did = h5py.h5d.open(root, name.encode())
            fspace = did.get_space()
            if fspace.shape != (gp.count[i],):
                raise ValueError(f"{name} has shape {fspace.shape}, the file {int(gp.count[i])} points")
            fspace.select_hyperslab((lo,), (hi - lo,))
            mspace = h5py.h5s.create_simple((hi - lo,))
            if did.dtype == out.dtype:
                did.read(mspace, fspace, dst)
            else:                       # numpy's conversion, as a concatenation would do it
                tmp = np.empty(hi - lo, did.dtype)
                did.read(mspace, fspace, tmp)
                dst[...] = tmp
            refill(dst, _attr(did, b"_FillValue"), fills[name])
            did.close()
        root.close()
    finally:
        fid.close()
