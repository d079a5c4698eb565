"""The one reader of an OUTDIR: the name of a per-beam file (``<granule stem>_<beam>_<A|D>.h5``),
the folder's per-beam files listed in one scan and grouped by granule (:func:`list_beam_files`),
a per-beam file's metadata (:meth:`TrackFile.open`), and the files merge and export take
(:func:`plan_outdir`)."""
import dataclasses
import os
import re

from readatl06.atl06.schema import DIRECTION_CODE

# A per-beam file's name; a name starting with "." is never one (temporary files: ``.<name>.tmp-*``).
BEAM_FILE_RE = re.compile(r"(?P<stem>[^.].*)_(?P<beam>gt[123][lr])_(?P<direction>[AD])\.h5")
BEAM_FILES_SHOWN = "*_gtNx_A|D.h5"        # the pattern as messages show it


def beam_file_name(stem, beam, direction):
    """``<granule stem>_<beam>_<A|D>.h5``, the file of one track (``direction``: ascending|descending)."""
    return f"{stem}_{beam}_{DIRECTION_CODE[direction]}.h5"


class BeamFiles:
    """One listing of a folder's per-beam files: their sizes (bytes, from the listing) by name, and
    the names of each granule stem."""

    def __init__(self, folder, sizes):
        self.folder = os.fspath(folder)
        self.sizes = dict(sorted(sizes.items()))
        self.by_stem = {}
        for name in self.sizes:
            self.by_stem.setdefault(BEAM_FILE_RE.fullmatch(name)["stem"], {})[name] = self.sizes[name]

    def __len__(self):
        return len(self.sizes)

    def of(self, stem):
        """``{name: bytes}`` of the per-beam files of the granule ``stem`` (by name; {} when none)."""
        return self.by_stem.get(stem, {})

    def paths(self):
        """Every per-beam file's path, by name."""
        return [os.path.join(self.folder, name) for name in self.sizes]


def list_beam_files(folder):
    """The per-beam files in ``folder`` now (regular files, links to them included): one scan."""
    sizes = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if BEAM_FILE_RE.fullmatch(entry.name) and entry.is_file():
                try:
                    sizes[entry.name] = entry.stat().st_size
                except FileNotFoundError:         # removed since the scan
                    pass
    return BeamFiles(folder, sizes)


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
    shapes: dict = dataclasses.field(default_factory=dict)     # name -> shape
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
                var_attrs[k] = {a: decoded(obj.attrs[a]) for a in obj.attrs if a not in DIMENSION_ATTRS}
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
        """The file ``track`` was just written to, with the track's own metadata (no reopening)."""
        import numpy as np
        data = {k: np.asarray(v) for k, v in track.data.items()}
        return cls(path, track.granule, track.beam, track.direction, len(track),
                   {k: v.dtype.str for k, v in data.items()},
                   {k: dict(v) for k, v in track.var_attrs.items()}, dict(track.attrs),
                   {k: v.shape for k, v in data.items()})


def plan_outdir(outdir, output, overwrite, params):
    """Rank 0, under the folder's lock: (files, granules, sizes) to merge; UsageError when the target
    is not allowed or the folder mixes parameter sets and ``params`` does not say which."""
    from readatl06.atl06.names import parse_name
    from readatl06.errors import UsageError
    from readatl06.outputs import folder as outdir_mod
    from readatl06.outputs import manifest
    listed = list_beam_files(outdir)
    files = listed.paths()
    outdir_mod.check_file_target("-o", output, files, overwrite)
    outdir_mod.remove_leftovers(os.path.dirname(os.path.abspath(output)), [os.path.basename(output)])
    by_key, granule_of = {}, {}
    for p in files:
        attrs = TrackFile.open(p, variables=False).attrs
        g, par = attrs["granule"], attrs.get("parameters", "{}")
        g, par = (str(v) for v in (g, par))
        granule_of[p] = g
        by_key.setdefault(manifest.params_key(par), []).append(p)
    if params is None and len(by_key) > 1:
        sets = "; ".join(f"{k}: {len(v)} files" for k, v in sorted(by_key.items()))
        raise UsageError(f"{outdir} mixes per-beam files of {len(by_key)} parameter sets ({sets}); "
                         "choose one with --parameters KEY")
    if params is not None and params not in by_key:
        raise UsageError(f"--parameters {params}: no per-beam file in {outdir} has it "
                         f"(found: {', '.join(sorted(by_key)) or 'none'})")
    key = params if params is not None else next(iter(by_key), None)
    files = by_key.get(key, [])
    names = {granule_of[p] for p in files}
    for r in manifest.latest(manifest.read_records(outdir)).values():   # reduced granules without points
        if r.get("status") == "empty" and r.get("params") == key:
            names.add(r["granule"])
    return files, sorted(parse_name(n) for n in names), [listed.sizes[os.path.basename(p)] for p in files]
