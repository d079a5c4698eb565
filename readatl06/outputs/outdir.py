"""The one reader of an OUTDIR: the name of a per-beam file (``<granule stem>_<beam>_<A|D>.h5``),
the folder's per-beam files listed in one scan and grouped by granule (:func:`list_beam_files`),
a per-beam file's metadata (:meth:`TrackFile.open`), and the files readers take: those of granules
with a complete record of one parameter set (:func:`read_outdir`, :func:`plan_outdir`)."""
import array
import dataclasses
import os
import re
import sys

from readatl06.atl06.schema import DIRECTION_CODE

# A per-beam file's name; a name starting with "." is never one (temporary files: ``.<name>.tmp-*``).
BEAM_FILE_RE = re.compile(r"(?P<stem>[^.].*)_(?P<beam>gt[123][lr])_(?P<direction>[AD])\.h5")
BEAM_FILES_SHOWN = "*_gtNx_A|D.h5"        # the pattern as messages show it
SHARED_MAX = 4096          # distinct attribute sets kept by shared_attrs (beyond: no sharing)
_shared = {}


def _attrs_key(attrs):
    import pickle
    return tuple(sorted((k, pickle.dumps(v)) for k, v in attrs.items()))


def _interned(key, make):
    found = _shared.get(key)
    if found is None:
        found = make()
        if len(_shared) < SHARED_MAX:
            _shared[key] = found
    return found


def shared_attrs(attrs):
    """One dict per distinct set of a variable's attributes, shared by every TrackFile that has it:
    a variable's attributes are the same in every track of a run (per beam at most), and a rank that
    keeps a TrackFile per per-beam file (``reduce --merge`` past its memory share, ``merge OUTDIR``)
    would otherwise hold ~15 KB of them per track, growing with the granules. Read-only."""
    return _interned(_attrs_key(attrs), lambda: dict(attrs))


def shared_variables(dtypes, var_attrs):
    """``(dtypes, var_attrs)`` of a track's variables (name -> dtype string, name -> attributes), both
    dicts shared by every TrackFile with the same variables, dtypes and attributes (the tracks of a
    run): what a held TrackFile costs is then its path and file attributes, ~1 KB. Read-only."""
    keys = tuple((k, dtypes[k], _attrs_key(var_attrs[k])) for k in dtypes)
    return _interned(("variables",) + keys,
                     lambda: (dict(dtypes), {k: _interned(a, lambda k=k: dict(var_attrs[k])) for k, _, a in keys}))


def beam_file_name(stem, beam, direction):
    """``<granule stem>_<beam>_<A|D>.h5``, the file of one track (``direction``: ascending|descending)."""
    return f"{stem}_{beam}_{DIRECTION_CODE[direction]}.h5"


class BeamFiles:
    """One listing of a folder's per-beam files: their sizes (bytes, from the listing) by name, and
    the names of each granule stem. Kept by stem, each file as its suffix after the stem (one of 12
    shared strings) and its size: rank 0 lists a continent's OUTDIR (1.2 × 10^6 files) to plan a
    resubmission, ~55 bytes a file where a dict by name and one by stem cost ~250. ``sizes`` (a dict
    by name, in name order) is made when first asked for."""

    def __init__(self, folder, by_stem):
        """``by_stem``: {stem: (suffixes, array of their sizes)}, taken as it is (put in order)."""
        self.folder = os.fspath(folder)
        self._files = by_stem                # stem -> (suffixes in order, their sizes)
        for stem, (suffixes, sizes) in by_stem.items():
            if list(suffixes) != sorted(suffixes):
                order = sorted(range(len(suffixes)), key=suffixes.__getitem__)
                by_stem[stem] = [suffixes[i] for i in order], array.array("q", (sizes[i] for i in order))
        self._sizes = None

    @property
    def by_stem(self):
        """The stems that have files (a view: iterate, test membership)."""
        return self._files.keys()

    def __len__(self):
        return sum(len(suffixes) for suffixes, _ in self._files.values())

    @property
    def sizes(self):
        if self._sizes is None:
            self._sizes = dict(sorted((stem + f, b) for stem, (suffixes, sizes) in self._files.items()
                                      for f, b in zip(suffixes, sizes)))
        return self._sizes

    def of(self, stem):
        """``{name: bytes}`` of the per-beam files of the granule ``stem`` (by name; {} when none)."""
        suffixes, sizes = self._files.get(stem, ((), ()))
        return {stem + f: b for f, b in zip(suffixes, sizes)}

    def paths(self):
        """Every per-beam file's path, by name."""
        return [os.path.join(self.folder, name) for name in self.sizes]


def list_beam_files(folder):
    """The per-beam files in ``folder`` now (regular files, links to them included): one scan."""
    by_stem = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            m = BEAM_FILE_RE.fullmatch(entry.name)
            if m and entry.is_file():
                try:
                    size = entry.stat().st_size
                except FileNotFoundError:         # removed since the scan
                    continue
                stem = m["stem"]
                suffixes, sizes = by_stem.get(stem) or by_stem.setdefault(stem, ([], array.array("q")))
                suffixes.append(sys.intern(entry.name[len(stem):]))
                sizes.append(size)
    return BeamFiles(folder, by_stem)


@dataclasses.dataclass
class TrackFile:
    """A track in a per-beam file: its metadata, what the merge needs to plan without reading its
    points (export and xover check theirs)."""

    path: str
    granule: object        # names.GranuleName; None where the attribute is absent or no granule name
    beam: str
    direction: str
    n: int
    var_dtypes: dict       # name -> dtype string
    var_attrs: dict
    attrs: dict
    shapes: dict = dataclasses.field(default_factory=dict)     # name -> shape (opened files; of(): empty)
    values: dict = dataclasses.field(default_factory=dict)     # name -> array: the datasets read on opening

    def __len__(self):
        return self.n

    @classmethod
    def open(cls, path, variables=True, read=()):
        """The one opener of a per-beam file's metadata (OSError when it does not open): its
        attributes (decoded) and the dtype, shape and attributes of its variables — every one
        (``variables`` True), none (False) or those of the names given that it has; a netCDF
        dimension scale is no variable. The variables named in ``read`` are read too (``values``).
        Beam and direction are the attributes' text (None: absent)."""
        import h5py

        from readatl06.atl06.names import parse_name
        from readatl06.errors import ReadATL06Error
        from readatl06.hdf5.attrs import decoded, text
        from readatl06.hdf5.dimensions import DIMENSION_ATTRS, is_dimension
        dtypes, shapes, var_attrs = {}, {}, {}
        with h5py.File(path, "r") as f:
            attrs = {k: decoded(v) for k, v in f.attrs.items()}
            found = f.items() if variables is True else [(k, f.get(k)) for k in variables or ()]
            for k, obj in found:
                if not isinstance(obj, h5py.Dataset) or is_dimension(obj):
                    continue
                dtypes[k], shapes[k] = obj.dtype.str, obj.shape
                var_attrs[k] = shared_attrs({a: decoded(obj.attrs[a]) for a in obj.attrs if a not in DIMENSION_ATTRS})
            values = {k: f[k][()] for k in read if k in dtypes}
        try:
            granule = parse_name(text(attrs.get("granule")) or "")
        except (ValueError, ReadATL06Error):
            granule = None
        first = shapes[next(iter(shapes))] if shapes else ()
        return cls(path, granule, text(attrs.get("beam")), text(attrs.get("direction")),
                   int(first[0]) if first else 0, dtypes, var_attrs, attrs, shapes, values)

    @classmethod
    def of(cls, track, path):
        """The file ``track`` was just written to, with the track's own metadata (no reopening): its
        variables' dtypes and attributes shared with the run's other tracks (:func:`shared_variables`),
        ``shapes`` empty (every variable holds ``n`` values)."""
        import numpy as np
        dtypes = {k: np.asarray(v).dtype.str for k, v in track.data.items()}
        dtypes, var_attrs = shared_variables(dtypes, {k: track.var_attrs[k] for k in dtypes})
        return cls(path, track.granule, track.beam, track.direction, len(track), dtypes, var_attrs,
                   dict(track.attrs))


@dataclasses.dataclass
class OutdirView:
    """What readers take from an OUTDIR (:func:`read_outdir`): the per-beam files of the granules with
    a complete record of one parameter set, their sizes and recorded checksums."""

    folder: str
    files: list            # paths, by name
    sizes: list            # bytes, as files
    digests: dict          # path -> hex SHA-256 from its record (absent: none recorded, or no manifest)
    granules: list         # names of the granules taken, those without points (empty) included
    key: str               # the parameter set's key (None: no per-beam file and no record)
    notes: list            # one line each: no manifest, records skipped, files left out
    pending: tuple = None  # (params, any_params) while the files' attributes are still to be read
                           # (no manifest): :func:`settle`, collective, reads them spread over the ranks

    def drop(self, bad_paths):
        """Leave out every granule that has a file in ``bad_paths``; returns their names."""
        stem = {p: BEAM_FILE_RE.fullmatch(os.path.basename(p))["stem"] for p in self.files}
        gone = {stem[p] for p in bad_paths}
        keep = [i for i, p in enumerate(self.files) if stem[p] not in gone]
        self.files, self.sizes = [self.files[i] for i in keep], [self.sizes[i] for i in keep]
        names = [g for g in self.granules if _stem(g) in gone]
        self.granules = [g for g in self.granules if _stem(g) not in gone]
        return names


def _stem(name):
    from readatl06.atl06.names import parse_name
    from readatl06.errors import ReadATL06Error
    try:
        return parse_name(name).stem
    except (ValueError, ReadATL06Error):
        return None


def _in_order(names):
    """Granule names in (acquisition time, file name) order, the merged file's."""
    from readatl06.atl06.names import parse_name
    return [g.name for g in sorted(parse_name(n) for n in names)]


def _choose(outdir, by_key, params, what):
    """The parameter set to take: ``params``, or the only one; UsageError for a mixture."""
    from readatl06.errors import UsageError
    if params is None and len(by_key) > 1:
        sets = "; ".join(f"{k}: {len(v)} {what}" for k, v in sorted(by_key.items()))
        raise UsageError(f"{outdir} mixes per-beam files of {len(by_key)} parameter sets ({sets}); "
                         "choose one with --parameters KEY")
    if params is not None and params not in by_key:
        raise UsageError(f"--parameters {params}: no per-beam file in {outdir} has it "
                         f"(found: {', '.join(sorted(by_key)) or 'none'})")
    return params if params is not None else next(iter(by_key), None)


def _left_out(outdir, listed, taken, other_key):
    """One note naming the per-beam files of ``listed`` not in ``taken``, with their count."""
    out = [n for n in listed.sizes if n not in taken]
    if not out:
        return []
    stems = sorted({BEAM_FILE_RE.fullmatch(n)["stem"] for n in out})
    other = sum(s in other_key for s in stems)
    why = (f"{len(stems) - other} without a complete record (interrupted, failed or leftovers)"
           + (f", {other} of another parameter set" if other else ""))
    return [f"{outdir}: {len(out)} per-beam files of {len(stems)} granules left out ({why}): "
            f"{' '.join(stems[:3])}{' ...' if len(stems) > 3 else ''}"]


def read_outdir(outdir, params=None, any_params=False, listed=None, defer=False):
    """Rank 0: the per-beam files an OUTDIR's readers (merge, export, xover, plot) take. With a run
    manifest: only the granules whose last record is complete (done or empty, its files exactly the
    recorded ones at the recorded sizes, :func:`manifest.complete`), of one parameter set
    (``params``, or the only one; a mixture is a UsageError unless ``any_params``); the others are
    named in one note with their count. Without a manifest: every per-beam file, grouped by its
    ``parameters`` attribute, with a note: the files' attributes are read by :func:`settle` (on every
    rank, a share each, when ``defer``: the caller calls it, or :func:`verify_all` does; else here,
    serially). ``listed``: the folder's listing when the caller has it. Checksums are checked by the
    reader (:func:`verify`)."""
    from readatl06.outputs import manifest
    listed = list_beam_files(outdir) if listed is None else listed
    notes = []
    if not manifest.has_manifest(outdir):
        notes.append(f"{outdir}: no run manifest ({manifest.MAIN}): every per-beam file is taken as it is, "
                     "unchecked")
        view = OutdirView(outdir, listed.paths(), list(listed.sizes.values()), {}, [], None, notes,
                          pending=(params, any_params))
        if not defer:
            from readatl06.parallel.world import SerialComm
            settle(SerialComm(), view)
        return view
    records = manifest.read_briefs(outdir, notes)
    by_key, other_key = {}, set()
    for name, r in sorted(records.items()):
        stem = _stem(name)
        if stem is not None and manifest.complete(r, listed.of(stem)):
            by_key.setdefault(r.get("params"), []).append(r)
    key = None if any_params else _choose(outdir, by_key, params, "granules")
    taken, files, digests, granules = set(), [], {}, []
    for k, rs in by_key.items():
        if not any_params and k != key:
            other_key.update(_stem(r["granule"]) for r in rs)
            continue
        for r in rs:
            granules.append(r["granule"])
            outs = r.get("outputs", [])
            for o, digest in zip(outs, manifest.digests_of(r, outs)):
                taken.add(o)
                path = os.path.join(outdir, o)
                files.append(path)
                if digest:
                    digests[path] = digest
    files.sort()
    notes += _left_out(outdir, listed, taken, other_key)
    return OutdirView(outdir, files, [listed.sizes[os.path.basename(p)] for p in files], digests,
                      _in_order(granules), key, notes)


def _attributes(path):
    """(parameter set key, granule name) of a per-beam file, from its attributes; UsageError naming it."""
    from readatl06.atl06.names import parse_name
    from readatl06.errors import ReadATL06Error, UsageError
    from readatl06.hdf5.attrs import text
    from readatl06.outputs import manifest
    try:
        attrs = TrackFile.open(path, variables=False).attrs
    except OSError as exc:
        raise UsageError(f"{path}: not a readable HDF5 file ({str(exc).splitlines()[0]}); "
                         "expected a readatl06 per-beam file") from None
    if attrs.get("granule") is None:
        raise UsageError(f"{path}: not a readatl06 per-beam file (no attribute granule)")
    try:
        granule = parse_name(text(attrs["granule"])).name
    except (ValueError, ReadATL06Error) as exc:
        raise UsageError(f"{path}: attribute granule is not an ATL06 granule name ({exc})") from None
    return (0,), (manifest.params_key(str(attrs.get("parameters", "{}"))), granule)


def settle(comm, view):
    """Collective, ``view`` the same on every rank: a view read without a manifest gets its files (one
    parameter set, or every one) and granules from the files' attributes, each file opened by one rank
    (``parallel.spread.spread_records``: a byte per file and each distinct (key, granule) travel).
    UsageError on every rank alike: a file that is no readatl06 per-beam file, or a mixture of
    parameter sets without ``--parameters``."""
    if view.pending is None:
        return
    import numpy as np

    from readatl06.errors import UsageError
    from readatl06.parallel.spread import spread_records
    params, any_params = view.pending
    _, objs, which = spread_records(comm, view.files, _attributes, np.dtype([("ok", "i1")]), catch=UsageError)
    by_key = {}
    for i, w in enumerate(which.tolist()):
        by_key.setdefault(objs[w][0], []).append(i)
    key = None if any_params else _choose(view.folder, by_key, params, "files")
    keep = sorted(i for k, v in by_key.items() if any_params or k == key for i in v)
    view.granules = _in_order({objs[which[i]][1] for i in keep})
    view.files, view.sizes = [view.files[i] for i in keep], [view.sizes[i] for i in keep]
    view.key, view.pending = key, None


def verify(view, paths=None):
    """One line per file of ``paths`` (default: all of ``view``) whose bytes are not the recorded
    ones: ``[(path, line)]``."""
    from readatl06.outputs import manifest
    out = []
    for p in view.files if paths is None else paths:
        bad = manifest.damaged(p, view.digests.get(p))
        if bad:
            out.append((p, bad))
    return out


def plan_outdir(outdir, output, overwrite, params, held, command="merge"):
    """Rank 0, under the folder's lock: the OutdirView to merge or export (:func:`read_outdir`, its
    files' attributes read later by :func:`verify_all` when there is no manifest), the target checked
    and reserved (``held`` receives the reservation); UsageError when the target is
    not allowed or the folder mixes parameter sets and ``params`` does not say which."""
    from readatl06.outputs import locks
    listed = list_beam_files(outdir)
    view = read_outdir(outdir, params, listed=listed, defer=True)
    held.append(locks.reserve("-o", output, listed.paths(), overwrite, command))
    return view


def verify_all(comm, view):
    """Collective, ``view`` the same on every rank: every file checked against its recorded checksum,
    the files spread over the ranks; the granules of damaged files are left out of ``view`` on every
    rank. Returns one line per damaged file (for rank 0 to print). A view read without a manifest is
    settled first (:func:`settle`; UsageError on every rank alike)."""
    from readatl06.outputs import manifest
    settle(comm, view)
    mine = []                           # only damaged files travel: the gather stays small at 10^6 files
    for i in range(comm.rank, len(view.files), comm.size):
        line = manifest.damaged(view.files[i], view.digests.get(view.files[i]))
        if line:
            mine.append((i, line))
    every = sorted(x for part in (comm.allgather(mine) if comm.size > 1 else [mine]) for x in part)
    bad = [(view.files[i], m) for i, m in every]
    view.drop([p for p, _ in bad])
    return [f"{m}; its granule is left out (see: readatl06 verify {view.folder})" for _, m in bad]
