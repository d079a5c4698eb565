"""Local SOURCEs: a file, a folder (recursive ``*.h5``), a glob, or ``@list.txt``.

Only regular files are candidates: FIFOs, sockets, devices, broken links and folders named like a
granule (``*.h5``) are refused by name, with one line each, and never opened (opening a FIFO blocks
forever). Folders are walked following symbolic links, but a link back into a folder being walked (a
loop) or to a folder already walked is noted once and not followed. Folders given in ``exclude``
(the run's OUTDIR) are never listed, so a re-run does not pick up its own outputs.

Remote SOURCEs (``ssh://``, ``s3://``, ``https://``, also as lines of a list file) are listed by
their protocol modules (:mod:`readatl06.sources.remote`); their URLs join ``Listing.paths``.
"""
import dataclasses
import errno
import glob
import os
import stat

from readatl06.errors import SourceError

REMOTE_SCHEMES = ("ssh://", "s3://", "http://", "https://")
EXTENSIONS = (".h5", ".hdf5", ".he5")
MAX_LIST_DEPTH = 8
_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISDIR, "a folder"))


@dataclasses.dataclass
class Listing:
    """What a set of SOURCEs names.

    ``paths``: candidate granule files (regular files), each once, in the order found.
    ``refused``: one line per path that is not a regular file (named, never opened).
    ``notes``: one line per symbolic-link loop or repeated folder not followed, per SOURCE that
    lies inside an excluded (output) folder, per folder that holds no ``*.h5`` file.
    ``sizes``: bytes of each local path, from the stat that listed it (the plan stats no granule again).
    """

    paths: list = dataclasses.field(default_factory=list)
    sizes: dict = dataclasses.field(default_factory=dict)
    refused: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)

    def messages(self):
        """``refused`` and ``notes`` as the lines a command prints (``refused: ...`` / ``note: ...``)."""
        return [f"refused: {m}" for m in self.refused] + [f"note: {m}" for m in self.notes]


def _kind(mode):
    for test, what in _KINDS:
        if test(mode):
            return what
    return "not a regular file"


def _stat_problem(path, exc):
    """Why ``os.stat`` failed, in words: a link loop, a broken link, or the OS's reason."""
    if exc.errno == errno.ELOOP:
        return "a symbolic link loop"
    if os.path.islink(path):
        return f"a broken symbolic link ({exc.strerror})"
    return f"cannot be read ({exc.strerror})"


def _is_hdf5_name(name):
    return name.lower().endswith(EXTENSIONS)


class _Lister:
    """One listing: the folders already walked and the excluded folders, by (device, inode)."""

    def __init__(self, exclude=()):
        self.out = Listing()
        self.walked = {}          # (dev, ino) -> the path it was walked under
        self.excluded = {}        # (dev, ino) -> the excluded folder as given
        self._inside = {}         # real folder path -> None: known to be outside every excluded folder
        for folder in exclude or ():
            try:
                st = os.stat(folder)
            except OSError:
                continue          # an OUTDIR that does not exist yet holds nothing to exclude
            if stat.S_ISDIR(st.st_mode):
                self.excluded[(st.st_dev, st.st_ino)] = os.fspath(folder)

    # ---------------------------------------------------------------- one path
    def _inside_excluded(self, path):
        """The excluded folder that ``path`` (a file or folder) lies in, or None."""
        if not self.excluded:
            return None
        p = os.path.realpath(path)
        seen = []
        hit = None
        while True:
            if p in self._inside:
                hit = self._inside[p]
                break
            seen.append(p)
            try:
                st = os.stat(p)
                hit = self.excluded.get((st.st_dev, st.st_ino))
            except OSError:
                hit = None
            parent = os.path.dirname(p)
            if hit is not None or parent == p:
                break
            p = parent
        for q in seen[1:] if hit is None else []:
            self._inside[q] = None            # folders known to lie outside every excluded one
        return hit

    def file(self, path, named=False):
        """A path found by a glob or a list, or named on the command line: keep it if it is a regular file."""
        try:
            st = os.stat(path)
        except OSError as exc:
            self.out.refused.append(f"{path}: {_stat_problem(path, exc)}, not read")
            return
        if stat.S_ISDIR(st.st_mode):
            if _is_hdf5_name(path.rstrip("/")):
                self.out.refused.append(f"{path}: a folder named like a granule file, not read")
            else:
                self.folder(path, named=named)
            return
        if not stat.S_ISREG(st.st_mode):
            self.out.refused.append(f"{path}: {_kind(st.st_mode)}, not a regular file; not read")
            return
        hit = self._inside_excluded(path)
        if hit is not None:
            self.out.refused.append(f"{path}: inside the output folder {hit}, not read as a source")
            return
        self.out.paths.append(path)
        self.out.sizes[path] = st.st_size

    # ---------------------------------------------------------------- folders
    def folder(self, top, named=False):
        """Walk a folder: its files in name order, then its sub-folders in name order (depth first)."""
        try:
            st = os.stat(top)
        except OSError as exc:
            raise SourceError(f"{top}: cannot be read ({exc.strerror})") from exc
        hit = self._inside_excluded(top)
        if hit is not None:
            self.out.notes.append(f"{top}: inside the output folder {hit}, not listed")
            return
        key = (st.st_dev, st.st_ino)
        if key in self.walked:
            self.out.notes.append(f"{top}: same folder as {self.walked[key]}, listed once")
            return
        found_before = len(self.out.paths)
        self.walked[key] = top
        # explicit stack of (folder, its ancestors' keys) so deep trees need no recursion
        stack = [(top, frozenset([key]))]
        while stack:
            folder, chain = stack.pop()
            subdirs = self._scan(folder, chain)
            for path, sub_key in reversed(subdirs):
                stack.append((path, chain | {sub_key}))
        if named and len(self.out.paths) == found_before:
            self.out.notes.append(f"{top}: no {'/'.join('*' + e for e in EXTENSIONS)} files in this folder")

    def _scan(self, folder, chain):
        """Keep the regular ``*.h5`` files of one folder; return its sub-folders to walk."""
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            self.out.refused.append(f"{folder}: folder cannot be read ({exc.strerror}), not listed")
            return []
        subdirs = []
        for e in entries:
            path = os.path.join(folder, e.name)
            try:
                st = e.stat(follow_symlinks=True)
            except OSError as exc:
                if _is_hdf5_name(e.name):
                    self.out.refused.append(f"{path}: {_stat_problem(path, exc)}, not read")
                continue
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if _is_hdf5_name(e.name):
                    self.out.refused.append(f"{path}: a folder named like a granule file, not read")
                elif key in self.excluded:
                    continue                       # the run's output folder: never listed
                elif key in chain:
                    self.out.notes.append(f"{path}: symbolic link loop (back to {self.walked.get(key, '?')}), "
                                          "not followed")
                elif key in self.walked:
                    self.out.notes.append(f"{path}: same folder as {self.walked[key]}, listed once")
                else:
                    self.walked[key] = path
                    subdirs.append((path, key))
                continue
            if not _is_hdf5_name(e.name):
                continue
            if stat.S_ISREG(st.st_mode):
                self.out.paths.append(path)
                self.out.sizes[path] = st.st_size
            else:
                self.out.refused.append(f"{path}: {_kind(st.st_mode)}, not a regular file; not read")
        return subdirs

    # ---------------------------------------------------------------- one SOURCE
    def source(self, source, depth=0):
        source = os.fspath(source)
        if depth > MAX_LIST_DEPTH:
            raise SourceError(f"{source}: list files nest more than {MAX_LIST_DEPTH} deep")
        if source.startswith("@"):
            return self._list_file(source, depth)
        if source.startswith(REMOTE_SCHEMES):
            from readatl06.sources import remote          # paramiko, s3fs, requests only when used
            self.out.paths.extend(remote.list_source(source))
            return None
        if os.path.lexists(source):
            return self.file(source, named=True)
        if glob.has_magic(source):
            hits = sorted(glob.glob(source, recursive=True))
            if not hits:
                raise SourceError(f"{source}: matches nothing")
            for p in hits:
                self.file(p, named=False)
            return None
        raise SourceError(f"{source}: no such file or folder")

    def _list_file(self, listing, depth):
        path = listing[1:]
        try:
            with open(path, encoding="utf-8-sig") as fh:    # a byte-order mark (Windows editors) is no path
                lines = [ln.strip() for ln in fh]
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise SourceError(f"list file {path}: cannot be read ({why})") from exc
        base = os.path.dirname(os.path.abspath(path))
        for line in lines:
            if not line or line.startswith("#"):
                continue
            if line.startswith("@"):                  # a nested list: relative to this list too
                if not os.path.isabs(line[1:]):
                    line = "@" + os.path.join(base, line[1:])
            elif not line.startswith(REMOTE_SCHEMES) and not os.path.isabs(line):
                line = os.path.join(base, line)       # relative entries are relative to the list file
            self.source(line, depth + 1)


def discover(sources, exclude=()):
    """A :class:`Listing` of all SOURCEs: regular files, each once, in the order found, plus the
    refused paths and notes. ``exclude``: folders (the run's OUTDIR) whose contents are never listed.
    Raises SourceError for a SOURCE that does not exist, a glob that matches nothing, an unreadable
    list file or a remote SOURCE that cannot be listed (RemoteError: one line, URL and cause)."""
    lister = _Lister(exclude)
    for s in sources:
        lister.source(s)
    out = lister.out
    out.paths = list(dict.fromkeys(out.paths))
    out.refused = list(dict.fromkeys(out.refused))
    out.notes = list(dict.fromkeys(out.notes))
    return out


def all_inside(sources, folder):
    """True when every SOURCE is a local path, folder or glob that lies inside ``folder`` (or is it):
    nothing could be read, since an output folder is never listed (list files and remote SOURCEs:
    False)."""
    top = os.path.realpath(folder)

    def inside(p):
        p = os.path.realpath(p)
        return p == top or p.startswith(top.rstrip(os.sep) + os.sep)

    for s in map(os.fspath, sources):
        if s.startswith(("@",) + REMOTE_SCHEMES):
            return False
        hits = [s] if os.path.lexists(s) or not glob.has_magic(s) else glob.glob(s, recursive=True)
        if not hits or not all(inside(p) for p in hits):
            return False
    return bool(sources)


def list_source(source, depth=0, exclude=()):
    """Paths (strings) of candidate granules named by one SOURCE, in a stable order."""
    lister = _Lister(exclude)
    lister.source(source, depth)
    return lister.out.paths


def list_sources(sources, exclude=()):
    """All paths from all SOURCEs, each path once, in the order found (refused paths left out:
    :func:`discover` says which and why)."""
    return discover(sources, exclude).paths
