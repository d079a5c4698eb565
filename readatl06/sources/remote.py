"""What the remote SOURCEs (``ssh://``, ``s3://``, ``https://``) share: the process-wide remote
options, the protocol modules behind one small interface, retries, downloads, and reading a remote
granule in place.

A protocol module (``ssh``, ``s3``, ``https``) provides

* ``list_source(url, opts) -> [Entry]``: the granule files a SOURCE names (``https``: the URL itself,
  nothing contacted — HTTPS has no listing);
* ``open_reader(url, opts) -> Reader``: ``size``, ``checksum`` (``("md5", hex)`` or None),
  ``random_access``, ``read(start, end)`` (bytes ``[start, end)``), ``stream(offset)`` (the
  object from ``offset`` on, in pieces) and ``close()`` (``ssh://``: in the module ``sftp``);
* ``close_all()``: its connections and clients closed.

This module dispatches to them and imports them, never they it: what they share (RemoteError,
Entry, Options, Reader, retries, counters, constants) is :mod:`readatl06.sources.base`.

Every failure is a :class:`RemoteError`: one line naming the URL and the cause, ``permanent`` when
a retry cannot help (wrong host key, bad credentials, 401/403/404, missing bucket).

In-place reading: :func:`opened` gives ``reduce`` either the local path (local files), an open
:class:`RemoteGranule` — HDF5 metadata through a block cache over ranged reads, chunks fetched one
range each by the chunk reader — or, where the server cannot serve ranges, a copy staged under
``--scratch`` and deleted after the reduction. :func:`readatl06.sources.base.stats` counts the
bytes and requests.
"""
import contextlib
import dataclasses
import importlib
import os
import sys
import tempfile

from readatl06.errors import GranuleError, SourceError
from readatl06.sources.base import (MiB, Options, RemoteError, count, count_granule, known, remember, url_name,
                                    with_retries)

SCHEMES = {"ssh": "ssh", "s3": "s3", "https": "https", "http": "https"}   # URL scheme -> protocol module
READERS = {"ssh": "sftp"}       # protocol module -> the module of its open_reader, where another

_options = Options()


def _size_text(text):
    t = text.strip().upper().rstrip("B").rstrip("I")
    mult = {"K": 1 << 10, "M": MiB, "G": 1 << 30}.get(t[-1:], 1)
    try:
        value = float(t.rstrip("KMG")) * mult
        if not 1 <= value <= 1 << 40:                  # negative, zero, NaN, inf: no block size
            raise ValueError(text)
        return int(value)
    except ValueError:
        raise SourceError(f"READATL06_REMOTE_BLOCK={text!r}: expected a positive number of bytes, e.g. 65536, "
                          "64K or 8M") from None


def configure(args=None, **values):
    """Set the process-wide remote options from an argparse namespace (attributes that a
    subcommand lacks keep their defaults) and/or keywords; closes connections made under other options."""
    names = [f.name for f in dataclasses.fields(Options) if f.name != "block_size"]
    new = {n: getattr(args, n, None) for n in names} if args is not None else {}
    new.update(values)
    new = {k: v for k, v in new.items() if v is not None}
    block = os.environ.get("READATL06_REMOTE_BLOCK")
    if block and "block_size" not in new:
        new["block_size"] = _size_text(block)
    global _options
    opts = Options(**new)
    if opts != _options:
        close_all()
    _options = opts
    return opts


def options():
    return _options


def scheme(path):
    """The protocol module's name (``ssh``, ``s3``, ``https``) of a URL, None for a local path."""
    head, sep, _ = str(path).partition("://")
    return SCHEMES.get(head.lower()) if sep else None


def is_remote(path):
    return scheme(path) is not None


def backend(url, reading=False):
    """The protocol module of ``url`` (``reading``: the module of its reader)."""
    name = scheme(url)
    if name is None:
        raise SourceError(f"{url}: not a remote URL")
    return importlib.import_module(f"readatl06.sources.{READERS.get(name, name) if reading else name}")


def list_source(url):
    """The URLs of the granule files one remote SOURCE names (sizes and checksums kept for later)."""
    entries = backend(url).list_source(url, _options)
    remember(entries)
    return [e.url for e in entries]


def size_of(path):
    """Bytes of a local file or of a URL this process listed (0 when unknown: https, other ranks)."""
    if not is_remote(path):
        try:
            return os.path.getsize(path)
        except OSError:
            return 0
    entry = known(str(path))
    return entry.size or 0 if entry is not None else 0


def open_reader(url):
    return backend(url, reading=True).open_reader(url, _options)


def close_all():
    """Close the connections and clients of every protocol module already imported."""
    for name in set(SCHEMES.values()):
        mod = sys.modules.get(f"readatl06.sources.{name}")
        if mod is not None:
            mod.close_all()


@contextlib.contextmanager
def opened(path):
    """What ``reduce_granule`` reads for ``path``: the path itself when it is local; for a URL an open
    RemoteGranule (read in place), or — where the server serves no byte ranges — a local copy under
    ``--scratch`` (default: the system's temporary folder), deleted afterwards. GranuleError when the
    granule cannot be reached."""
    if not is_remote(path):
        yield path
        return
    name = url_name(path)
    try:
        reader = with_retries(lambda: open_reader(path))
    except RemoteError as exc:
        raise GranuleError(name, exc.cause) from exc
    if reader.random_access:
        count_granule("granules")
        from readatl06.sources.inplace import RemoteFile, RemoteGranule
        g = RemoteGranule(RemoteFile(path, reader, _options.block_size))
        try:
            yield g
        finally:
            g.close()
        return
    try:
        local = stage(reader, _options.scratch)
    except RemoteError as exc:
        raise GranuleError(name, exc.cause) from exc
    finally:
        reader.close()
    try:
        yield local
    finally:
        with contextlib.suppress(OSError):
            os.remove(local)
            os.rmdir(os.path.dirname(local))


def stage(reader, scratch=None):
    """Download a whole object into a new folder under ``scratch``; returns the local path."""
    try:
        folder = tempfile.mkdtemp(prefix="readatl06-", dir=scratch)
    except OSError as exc:
        raise RemoteError(reader.url, f"cannot stage under --scratch {scratch} ({exc.strerror})",
                          permanent=True) from exc
    local = os.path.join(folder, url_name(reader.url))
    try:
        with open(local, "wb") as fh:
            download(reader, fh, 0)
    except OSError as exc:
        os.remove(local)
        os.rmdir(folder)
        raise RemoteError(reader.url, f"cannot stage under {folder} ({exc.strerror or exc})",
                          permanent=True) from exc
    except BaseException:
        os.remove(local)
        os.rmdir(folder)
        raise
    count_granule("staged")
    return local


def download(reader, fh, offset=0, piece_done=None):
    """Write the object from ``offset`` on to the open file ``fh``; returns the bytes written.
    RemoteError (transient) when it ends early."""
    done = 0
    count(0)
    for piece in reader.stream(offset):
        fh.write(piece)
        done += len(piece)
        count(len(piece), 0)
        if piece_done is not None:
            piece_done(done)
    if offset + done != reader.size:
        raise RemoteError(reader.url, f"download ended at byte {offset + done} of {reader.size}")
    return done
