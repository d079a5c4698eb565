"""Local SOURCEs: a file, a folder (recursive ``*.h5``), a glob, or ``@list.txt``.

Remote schemes (``ssh://``, ``s3://``) are recognised and refused with a clear message until
their listing back-ends exist.
"""
import glob
import os

from readatl06.errors import SourceError

REMOTE_SCHEMES = ("ssh://", "s3://", "http://", "https://")
EXTENSIONS = (".h5", ".hdf5", ".he5")


def _walk(folder):
    out = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs.sort()
        out.extend(os.path.join(root, f) for f in sorted(files) if f.lower().endswith(EXTENSIONS))
    return out


def _list_file(listing, depth):
    path = listing[1:]
    try:
        with open(path, encoding="utf-8") as fh:
            lines = [ln.strip() for ln in fh]
    except OSError as exc:
        raise SourceError(f"list file {path}: cannot be read ({exc.strerror})") from exc
    base = os.path.dirname(os.path.abspath(path))
    out = []
    for line in lines:
        if not line or line.startswith("#"):
            continue
        if not line.startswith(REMOTE_SCHEMES) and not os.path.isabs(line) and not line.startswith("@"):
            line = os.path.join(base, line)       # relative entries are relative to the list file
        out.extend(list_source(line, depth + 1))
    return out


def list_source(source, depth=0):
    """Paths (strings) of candidate granules named by one SOURCE, in a stable order."""
    source = str(source)
    if depth > 8:
        raise SourceError(f"{source}: list files nest more than 8 deep")
    if source.startswith("@"):
        return _list_file(source, depth)
    if source.startswith(REMOTE_SCHEMES):
        scheme = source.split("://", 1)[0]
        raise SourceError(f"{source}: {scheme}:// sources are not supported by this version of "
                          "readatl06; use 'readatl06 fetch' or copy the granules to a local folder")
    if os.path.isdir(source):
        return _walk(source)
    if os.path.isfile(source):
        return [source]
    if glob.has_magic(source):
        out = []
        for p in sorted(glob.glob(source, recursive=True)):
            out.extend(_walk(p) if os.path.isdir(p) else [p])
        return out
    raise SourceError(f"{source}: no such file or folder")


def list_sources(sources):
    """All paths from all SOURCEs, each path once, in the order found."""
    out = []
    for s in sources:
        out.extend(list_source(s))
    return list(dict.fromkeys(out))
