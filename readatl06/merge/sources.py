"""A rank's sources of the merge, in the form that costs least memory (docs/continent.md, "Memory").

A source is one track: a ``Track`` in memory, or a per-beam file any rank can read. ``reduce --merge``
keeps one per track it reduced and ``merge OUTDIR`` one per file it opened, so a continent's 10^5
granules are ~10^6 sources: as objects (a ``TrackFile`` with its path and attributes, ~1 KB) they
made memory per rank grow with the granules. :class:`Sources` keeps the Tracks in a list (their
points are bounded by ``--merge-memory``) and the files as columns of NumPy-compatible arrays: granule
row, group, points, and which of a few shared variable sets (dtypes and attributes) and folders it
has, ~30 bytes a file. A file whose name is the standard one (``<granule stem>_<beam>_<A|D>.h5``) is
found from its folder and its granule; any other keeps its path.
"""
import array
import os

import numpy as np

from readatl06.atl06.schema import BEAMS, DIRECTIONS
from readatl06.outputs.outdir import TrackFile, beam_file_name, shared_variables

GROUPS = [(b, d) for b in BEAMS for d in DIRECTIONS]


def vars_of(t):
    """``{name: (dtype string, attributes)}`` of a Track's or a TrackFile's variables."""
    if isinstance(t, TrackFile):
        return {name: (t.var_dtypes[name], t.var_attrs[name]) for name in t.var_dtypes}
    return {name: (np.asarray(v).dtype.str, t.var_attrs[name]) for name, v in t.data.items()}


def track_bytes(t):
    """Bytes of a track's points (in memory for a Track, on reading for a TrackFile)."""
    return sum(len(t) * np.dtype(dt).itemsize for dt, _ in vars_of(t).values())


class Sources:
    """One rank's sources: ``tracks`` ``[(row, Track)]`` in memory, and per-beam files as columns.
    ``row`` is the granule's row in the merge (or any number the caller renumbers later,
    :meth:`renumber`). Iterating gives ``(row, Track or TrackFile)``, a TrackFile made on the fly."""

    def __init__(self):
        self.tracks = []
        self.rows, self.points = array.array("q"), array.array("q")
        self.group, self.variables = array.array("b"), array.array("i")
        self.folder, self.name = array.array("i"), array.array("i")
        self.sets, self.folders, self.names = [], [], []   # variable sets, folders, non-standard paths
        self.stems = {}                                     # row -> its granule's stem (standard names)
        self._set_of, self._folder_of = {}, {}

    @classmethod
    def of(cls, held):
        """``held`` as Sources (itself when it is one; a list of ``(row, track)`` converted)."""
        if isinstance(held, Sources):
            return held
        out = cls()
        for row, t in held:
            out.add(row, t)
        return out

    def add(self, row, t, path=None):
        """Keep ``t`` (a Track: in memory, unless ``path`` names the per-beam file it was written to;
        a TrackFile: its file)."""
        if path is None and not isinstance(t, TrackFile):
            self.tracks.append((row, t))
            return
        path = os.fspath(t.path if path is None else path)
        variables = vars_of(t)        # shared with the run's other tracks, then told apart by identity
        dtypes, var_attrs = shared_variables({k: dt for k, (dt, _) in variables.items()},
                                             {k: a for k, (_, a) in variables.items()})
        key = tuple((k, dt, id(var_attrs[k])) for k, dt in dtypes.items())
        if key not in self._set_of:
            self._set_of[key] = len(self.sets)
            self.sets.append((dtypes, var_attrs))
        folder, name = os.path.split(os.path.abspath(path))
        standard = t.granule is not None and name == beam_file_name(t.granule.stem, t.beam, t.direction)
        if standard:
            if folder not in self._folder_of:
                self._folder_of[folder] = len(self.folders)
                self.folders.append(folder)
            self.folder.append(self._folder_of[folder])
            self.name.append(-1)
            self.stems.setdefault(row, t.granule.stem)
        else:
            self.folder.append(-1)
            self.name.append(len(self.names))
            self.names.append(os.path.abspath(path))
        self.rows.append(row)
        self.points.append(len(t))
        self.group.append(GROUPS.index((t.beam, t.direction)))
        self.variables.append(self._set_of[key])

    def extend(self, items):
        for row, t in items:
            self.add(row, t)

    def __len__(self):
        return len(self.tracks) + len(self.rows)

    def path(self, j):
        """The path of file ``j``."""
        if self.name[j] >= 0:
            return self.names[self.name[j]]
        beam, direction = GROUPS[self.group[j]]
        return os.path.join(self.folders[self.folder[j]],
                            beam_file_name(self.stems[self.rows[j]], beam, direction))

    def file(self, j):
        """File ``j`` as a TrackFile (no attributes; ``granule`` known for a standard name)."""
        from readatl06.atl06.names import parse_name
        beam, direction = GROUPS[self.group[j]]
        dtypes, var_attrs = self.sets[self.variables[j]]
        stem = self.stems.get(self.rows[j])
        return TrackFile(self.path(j), None if stem is None else parse_name(stem + ".h5"), beam, direction,
                         self.points[j], dtypes, var_attrs, {})

    def __iter__(self):
        yield from self.tracks
        for j in range(len(self.rows)):
            yield self.rows[j], self.file(j)

    def renumber(self, new):
        """Every row ``r`` becomes ``new[r]`` (an array or a mapping)."""
        self.tracks = [(int(new[r]), t) for r, t in self.tracks]
        self.rows = array.array("q", (int(new[r]) for r in self.rows))
        self.stems = {int(new[r]): stem for r, stem in self.stems.items()}

    def file_columns(self):
        """``(rows, points, group, variables, folder, name)`` of the files, as NumPy arrays."""
        return tuple(np.frombuffer(c, c.typecode) if len(c) else np.zeros(0, c.typecode)
                     for c in (self.rows, self.points, self.group, self.variables, self.folder, self.name))

    def point_bytes(self, k):
        """Bytes per point of variable set ``k``."""
        return sum(np.dtype(dt).itemsize for dt in self.sets[k][0].values())

    def file_bytes(self):
        """Bytes of every file's points, on reading."""
        rows, points, _, variables, _, _ = self.file_columns()
        per = np.array([self.point_bytes(k) for k in range(len(self.sets))], np.int64)
        return int((points * per[variables]).sum()) if len(rows) else 0

    def nbytes(self):
        """Bytes of every source's points (in memory and on reading)."""
        return sum(track_bytes(t) for _, t in self.tracks) + self.file_bytes()

    def kinds(self):
        """``(lowest row, (beam, direction), vars_of, tracks)`` of every distinct kind of source: each
        Track alone, the files grouped by (group, variable set)."""
        for row, t in self.tracks:
            yield row, (t.beam, t.direction), vars_of(t), 1
        rows, _, group, variables, _, _ = self.file_columns()
        if not len(rows):
            return
        kind = group.astype(np.int64) * len(self.sets) + variables
        for k in np.unique(kind).tolist():
            mine = kind == k
            dtypes, var_attrs = self.sets[k % len(self.sets)]
            yield (int(rows[mine].min()), GROUPS[k // len(self.sets)],
                   {n: (dt, var_attrs[n]) for n, dt in dtypes.items()}, int(mine.sum()))
