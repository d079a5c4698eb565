"""Where the merged file's points come from and travel before the collective write (docs/merge.md).

A *source* is one track of the merge, (granule row, group, points), either held in memory by the
rank that reduced it (a ``Track``) or in a per-beam file any rank can read (``TrackFile``: its
metadata only, the points are read a slice at a time). ``HeldTracks`` is what ``reduce --merge``
keeps while it reduces: Tracks up to its share of ``--merge-memory``, TrackFiles beyond. Every rank
knows the whole source table (:func:`source_table`: one ``Allgatherv`` of 32-byte records and one of
the per-beam files' path bytes, no pickles), so every rank computes the same plan without further talk:

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

from readatl06.outputs.outdir import TrackFile

CHUNK_MAX = 1 << 14      # elements per chunk of a large merged dataset
CHUNK_MIN = 1 << 12      # never smaller (chunk index and per-chunk costs), except a dataset that small
MIN_CHUNKS = 16          # below CHUNK_MAX * MIN_CHUNKS elements the chunk halves, to give ranks work
MAX_PER_RANK = 1 << 17   # points of a group per rank and round, whatever the memory (larger: no faster)
GI = "granule_index"     # computed from the source table, never read or sent
DEFAULT_MEMORY_MB = 512  # --merge-memory
ROUND_SHARE = 0.5        # of --merge-memory: one round's buffers; the rest: tracks reduce --merge holds


def vars_of(t):
    if isinstance(t, TrackFile):
        return {name: (t.var_dtypes[name], t.var_attrs[name]) for name in t.var_dtypes}
    return {name: (np.asarray(v).dtype.str, t.var_attrs[name]) for name, v in t.data.items()}


def track_bytes(t):
    """Bytes of a track's points (in memory for a Track, on reading for a TrackFile)."""
    return sum(len(t) * np.dtype(dt).itemsize for dt, _ in vars_of(t).values())


class HeldTracks(list):
    """What a rank keeps for ``reduce --merge`` while it reduces, as ``[(index, track)]``: the Tracks
    themselves while they fit in ``1 - ROUND_SHARE`` of ``--merge-memory``, beyond that a TrackFile
    of the per-beam file just written (the merge reads it back, a slice per round). With
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
                self.append((i, TrackFile.of(t, output_path(self.outdir, t))))
                continue
            self.bytes += nb
            self.over = self.over or self.bytes > self.limit
            self.append((i, t))


def open_tracks(paths):
    """``(TrackFiles, error)``: the per-beam files ``paths`` opened for their metadata, or at the first
    that is not a readable readatl06 per-beam file (lengths of its datasets included), the one-line
    reason naming it. The caller agrees on the verdict with the other ranks before any collective
    phase (``parallel.world.first_error``), so that a bad file stops every rank alike."""
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
            out.append(t)
        except (OSError, KeyError, ValueError, TypeError, ReadATL06Error) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if isinstance(exc, KeyError):
                first = f"no attribute {first}"
            return out, f"{p}: not a readable readatl06 per-beam file ({first})"
    return out, None


SOURCE = np.dtype([("row", "<i8"), ("n", "<i8"), ("path", "<i8"), ("holder", "<i4"), ("group", "<i4")])


def source_table(comm, held, groups):
    """Per group of ``groups``: ``[(row, n, holder, path)]`` of every rank's non-empty tracks
    (``held``: this rank's ``[(row, track)]``), sorted by row; ``holder`` the rank that has the
    points in memory, -1 for a per-beam file at ``path``. Collective: the records travel as one
    ``SOURCE`` array (32 bytes a track) and the paths as bytes (``parallel.exchange``), so a rank
    sends 32 bytes per track it holds plus its files' paths."""
    from readatl06.parallel.exchange import allgather_bytes, allgatherv
    mine = [(row, t) for row, t in held if len(t)]
    local = np.zeros(len(mine), SOURCE)
    paths = []
    for j, (row, t) in enumerate(mine):
        k = groups.index((t.beam, t.direction))
        if isinstance(t, TrackFile):
            local[j] = (row, len(t), len(paths), -1, k)
            paths.append(os.fsencode(t.path))
        else:
            local[j] = (row, len(t), -1, comm.rank, k)
    table, counts = allgatherv(comm, local)
    names = [os.fsdecode(p) for p in allgather_bytes(comm, paths)]
    rank_of = np.repeat(np.arange(comm.size), counts)
    per_rank = np.bincount(rank_of[table["path"] >= 0], minlength=comm.size)
    path_base = (np.cumsum(per_rank) - per_rank)[rank_of]        # a rank's paths follow the previous ranks'
    out = [[] for _ in groups]
    order = np.lexsort((table["row"], table["group"]))
    for i in order.tolist():
        r = table[i]
        path = names[int(path_base[i] + r["path"])] if r["path"] >= 0 else None
        out[int(r["group"])].append((int(r["row"]), int(r["n"]), int(r["holder"]), path))
    return out


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


class GroupPlan:
    """The sources of one (beam, direction) group in file order, its chunk and its rounds.

    ``sources``: ``[(row, n, holder, path)]`` sorted by row, ``n > 0``; ``holder`` is the rank that
    has the points in memory, -1 for a per-beam file at ``path``. ``point_bytes``: bytes a rank
    needs per element of its run (every dataset's buffer plus the exchange's), ``budget``: bytes a
    rank may spend on one round."""

    def __init__(self, sources, nranks, point_bytes, budget):
        self.rows = np.array([s[0] for s in sources], np.int64)
        self.count = np.array([s[1] for s in sources], np.int64)
        self.holder = np.array([s[2] for s in sources], np.int64)
        self.paths = [s[3] for s in sources]
        self.end = np.cumsum(self.count)
        self.start = self.end - self.count
        self.total = int(self.end[-1]) if len(sources) else 0
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

    def overlapping(self, a, b):
        """Indices of the sources with points in ``[a, b)``."""
        lo = int(np.searchsorted(self.end, a, side="right"))
        hi = int(np.searchsorted(self.start, b, side="left"))
        return range(lo, hi)

    def any_held(self, a, b):
        r = self.overlapping(a, b)
        return bool(len(r)) and bool((self.holder[r.start:r.stop] >= 0).any())

    def any_file_in(self, a, b):
        r = self.overlapping(a, b)
        return bool(len(r)) and bool((self.holder[r.start:r.stop] < 0).any())

    def clip(self, i, a, b):
        """(first, stop) of source ``i``'s points inside ``[a, b)``, in file positions."""
        return max(int(self.start[i]), a), min(int(self.end[i]), b)


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
                    lo, hi = s - int(gp.start[i]), cut - int(gp.start[i])
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
            raise BadFileError(f"{gp.paths[i]}: cannot read it for the merge ({first})") from None


def _read_file(gp, i, a, b, outs, fills):
    """Source ``i``'s slice of the run ``[a, b)`` into ``outs``."""
    s, e = gp.clip(i, a, b)
    lo, hi = s - int(gp.start[i]), e - int(gp.start[i])
    fid = h5py.h5f.open(os.fsencode(gp.paths[i]), h5py.h5f.ACC_RDONLY)
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
