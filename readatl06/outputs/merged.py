"""Opening a merged product for reading (docs/merge.md "Appending"): a plain merged file, or the
index file of an appended product, whose datasets are HDF5 virtual datasets over the part files in
the folder beside it (``M.h5.parts/``). HDF5 returns fill values where a source of a virtual dataset
is missing, so every reader of a merged file opens it here (:func:`open_merged`), which refuses with
one line naming the first missing part. :func:`read_product` is what ``merge --append`` and
``list M.h5`` take from it: the granules, the parts and which part holds which granule."""
import dataclasses
import os

from readatl06.errors import BadFileError

PARTS_SUFFIX = ".parts"          # M.h5 -> M.h5.parts/
PART_NAME = "part-{:04d}.h5"     # the part files in it (numbered, never reused)
PARTS = "parts"                  # /parts/file: the part files (relative to the index's folder)
MEMBERS = "members"              # /members: every granule a part holds, its part, row and points
GI = "granule_index"             # per point: its row in /granules (merge.layout.GI)


def parts_folder(path):
    """The folder of the parts of the product ``path`` (beside it, the product's name + ``.parts``)."""
    return os.path.abspath(path) + PARTS_SUFFIX


def count_name(beam, direction):
    """/members/<this>: the points of each member granule in the group (beam, direction)."""
    return f"n_{beam}_{direction}"


def sources_of(f):
    """The source file names of every virtual dataset in the open h5py File ``f`` (as stored)."""
    import h5py
    found = []

    def visit(_, obj):
        if isinstance(obj, h5py.Dataset) and obj.is_virtual:
            found.extend(m.file_name for m in obj.virtual_sources())
    f.visititems(visit)
    return list(dict.fromkeys(found))


def missing_parts(f, path):
    """The part files the virtual datasets of ``f`` (the product ``path``) read that are not there
    (a relative name is resolved from the product's folder, as HDF5 does first)."""
    folder = os.path.dirname(os.path.abspath(path))
    return [name for name in sources_of(f) if not os.path.isfile(os.path.join(folder, name))]


def check_parts(f, path):
    """BadFileError naming the first missing part of the product ``path`` (open as ``f``)."""
    gone = missing_parts(f, path)
    if gone:
        more = f" and {len(gone) - 1} more" if len(gone) > 1 else ""
        raise BadFileError(f"{path}: its part {gone[0]}{more} is missing (moved or deleted); expected every "
                           f"part of the product in {os.path.basename(path)}{PARTS_SUFFIX}/ beside it "
                           "(HDF5 would read fill values in its place)")


def open_merged(path):
    """The merged product ``path`` open read-only as an h5py File, every part checked present."""
    import h5py
    f = h5py.File(path, "r")
    try:
        check_parts(f, path)
    except BaseException:
        f.close()
        raise
    return f


@dataclasses.dataclass
class Product:
    """What a merged product holds: ``granules`` (names, in /granules order), ``parts`` (part file
    names relative to the product's folder; a plain file: ``[None]``, itself), ``members`` (per part,
    ``[(name, row, counts)]`` in the part's own order: row in /granules, -1 when superseded and no
    longer shown; counts the points per group of merge.layout.GROUPS), ``parameters`` (the root attribute)."""

    path: str
    granules: list
    parts: list
    members: list
    parameters: str

    @property
    def plain(self):
        return self.parts == [None]

    def part_of(self):
        """{granule name: part file (None: the plain file itself)} of the granules shown."""
        return {name: self.parts[p] for p, ms in enumerate(self.members) for name, row, _ in ms if row >= 0}


def _names(dset, where):
    from readatl06.hdf5.attrs import granule_names
    return list(granule_names(dset, where))


def read_product(path, counts=True):
    """The :class:`Product` ``path`` (rank 0). For a plain merged file with ``counts`` the points of
    every granule per group are counted from its ``granule_index`` (read once, when it becomes the
    first part); the index file records them in /members. BadFileError when it is not a merged file
    or a part is missing."""
    import numpy as np
    from readatl06.hdf5.attrs import text
    from readatl06.atl06.schema import BEAMS, DIRECTIONS
    groups = [(b, d) for b in BEAMS for d in DIRECTIONS]     # merge.layout.GROUPS
    try:
        f = open_merged(path)
    except OSError as exc:
        raise BadFileError(f"{path}: not a readable HDF5 file ({str(exc).splitlines()[0]}); expected a "
                           "merged file of readatl06") from None
    with f:
        if "granules/name" not in f:
            raise BadFileError(f"{path}: no /granules/name; expected a merged file of readatl06")
        granules = _names(f["granules/name"], path)
        parameters = text(f.attrs.get("parameters")) or "{}"
        if PARTS not in f:
            n = np.zeros((len(granules), len(groups)), np.int64)
            for k, (beam, direction) in enumerate(groups):
                key = f"{beam}/{direction}/{GI}"
                if counts and key in f and f[key].shape[0]:
                    n[:, k] = np.bincount(f[key][()], minlength=len(granules))[:len(granules)]
            return Product(path, granules, [None], [[(g, i, n[i]) for i, g in enumerate(granules)]],
                           parameters)
        parts = _names(f[PARTS]["file"], path)
        m = f[MEMBERS]
        names, part, row = _names(m["name"], path), m["part"][()], m["row"][()]
        n = np.stack([m[count_name(b, d)][()] for b, d in groups], axis=1) if len(names) else \
            np.zeros((0, len(groups)), np.int64)
    members = [[] for _ in parts]
    for i, name in enumerate(names):
        members[int(part[i])].append((name, int(row[i]), n[i]))
    return Product(path, granules, parts, members, parameters)


def product_granules(path):
    """``([GranuleName] in /granules order, {name: the file holding it})`` of the merged product
    ``path``: the product itself, or for an appended one its part. BadFileError when it is not one."""
    from readatl06.atl06.names import parse_name
    product = read_product(path, counts=False)
    try:
        granules = [parse_name(n) for n in product.granules]
    except ValueError as exc:
        raise BadFileError(f"{path}: /granules/name holds {exc}; expected ATL06 granule names") from None
    part, folder = product.part_of(), os.path.dirname(path)
    return granules, {g.name: os.path.join(folder, part[g.name]) if part.get(g.name) else path for g in granules}
