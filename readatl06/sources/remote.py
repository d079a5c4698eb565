"""What the remote SOURCEs (``ssh://``, ``s3://``, ``https://``) share: the process-wide remote
options, the protocol modules behind one small interface, retries, downloads, and reading a remote
granule in place.

A protocol module (``ssh``, ``s3``, ``https``) provides

* ``list_source(url, opts) -> [Entry]``: the granule files a SOURCE names (``https``: the URL itself,
  nothing contacted — HTTPS has no listing);
* ``open_reader(url, opts) -> Reader``: ``size``, ``checksum`` (``("md5", hex)`` or None),
  ``random_access``, ``read(start, end)`` (bytes ``[start, end)``), ``stream(offset)`` (the
  object from ``offset`` on, in pieces) and ``close()``.

Every failure is a :class:`RemoteError`: one line naming the URL and the cause, ``permanent`` when
a retry cannot help (wrong host key, bad credentials, 401/403/404, missing bucket).

In-place reading: :func:`opened` gives ``reduce`` either the local path (local files), an open
:class:`RemoteGranule` — HDF5 metadata through a block cache over ranged reads, chunks fetched one
range each by the chunk reader — or, where the server cannot serve ranges, a copy staged under
``--scratch`` and deleted after the reduction. :func:`stats` counts the bytes and requests.
"""
import contextlib
import dataclasses
import importlib
import os
import posixpath
import sys
import tempfile
import time
import urllib.parse

from readatl06.errors import GranuleError, SourceError
from readatl06.redact import redact

SCHEMES = {"ssh": "ssh", "s3": "s3", "https": "https", "http": "https"}
MiB = 1 << 20
PIECE = MiB                     # download and staging pieces
MAX_BLOCK = 8 * MiB             # metadata block cache: at most 8 MiB blocks ...
MIN_BLOCK = 64 << 10            # ... at least 64 KiB, about 1/32 of the granule in between
CACHE_BYTES = 64 * MiB          # metadata blocks held per open granule
ATTEMPTS = 4                    # tries of a transient failure (first + 3 retries)


class RemoteError(SourceError):
    """A remote operation that failed; ``str()`` is ``"URL: cause"``."""

    def __init__(self, url, cause, permanent=False):
        cause = redact(str(cause))               # user information of any URL: never shown
        self.url, self.cause, self.permanent = url, cause, permanent
        super().__init__(f"{redact(str(url))}: {cause}")


@dataclasses.dataclass(frozen=True)
class Entry:
    url: str
    size: int = None            # bytes, when the listing says
    checksum: tuple = None      # ("md5", hex) when the store gives one


@dataclasses.dataclass(frozen=True)
class Options:
    """The remote options of the command line (docs/command-line.md), the same on every rank."""

    ssh_key: str = None
    known_hosts: str = None
    ssh_accept_new: bool = False
    s3_endpoint: str = None
    s3_anon: bool = False
    scratch: str = None
    block_size: int = None      # READATL06_REMOTE_BLOCK (bytes, K/M suffix): the metadata cache's block


_options = Options()
_known = {}                     # url -> Entry, from the listings of this process
_stats = {"bytes": 0, "requests": 0, "granules": 0, "staged": 0}


def _size_text(text):
    t = text.strip().upper().rstrip("B").rstrip("I")
    mult = {"K": 1 << 10, "M": MiB, "G": 1 << 30}.get(t[-1:], 1)
    try:
        return int(float(t.rstrip("KMG")) * mult)
    except ValueError:
        raise SourceError(f"READATL06_REMOTE_BLOCK={text!r}: expected bytes, e.g. 65536, 64K or 8M") from None


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


def backend(url):
    name = scheme(url)
    if name is None:
        raise SourceError(f"{url}: not a remote URL")
    return importlib.import_module(f"readatl06.sources.{name}")


def url_name(url):
    """The file name of a URL (its path's last part, without query or fragment)."""
    return posixpath.basename(urllib.parse.unquote(urllib.parse.urlsplit(str(url)).path).rstrip("/"))


def list_source(url):
    """The URLs of the granule files one remote SOURCE names (sizes and checksums kept for later)."""
    entries = backend(url).list_source(url, _options)
    for e in entries:
        _known[e.url] = e
    return [e.url for e in entries]


def known(url):
    """The Entry a listing of this process gave for ``url``, or None (https: size unknown)."""
    return _known.get(url)


def size_of(path):
    """Bytes of a local file or of a URL this process listed (0 when unknown: https, other ranks)."""
    if not is_remote(path):
        try:
            return os.path.getsize(path)
        except OSError:
            return 0
    entry = _known.get(str(path))
    return entry.size or 0 if entry is not None else 0


def open_reader(url):
    return backend(url).open_reader(url, _options)


def close_all():
    """Close the connections and clients of every protocol module already imported."""
    for name in set(SCHEMES.values()):
        mod = sys.modules.get(f"readatl06.sources.{name}")
        if mod is not None:
            mod.close_all()


def stats():
    """Remote bytes and requests of this process so far (reading in place and staging), granules
    opened in place, granules staged."""
    return dict(_stats)


def count(nbytes, requests=1):
    _stats["bytes"] += nbytes
    _stats["requests"] += requests


# --------------------------------------------------------------------------------------- retries
def retry_delay():
    """Seconds before the first retry (doubled each time); READATL06_RETRY_DELAY overrides 0.5."""
    try:
        return float(os.environ.get("READATL06_RETRY_DELAY", "0.5"))
    except ValueError:
        return 0.5


def with_retries(fn, attempts=ATTEMPTS, on_retry=None):
    """``fn()``, tried again after transient RemoteErrors with exponential backoff."""
    delay = retry_delay()
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except RemoteError as exc:
            if exc.permanent or attempt == attempts:
                raise
            if on_retry is not None:
                on_retry(exc, attempt, delay)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")


class Reader:
    """Base of the protocol readers: ``stream`` from ``read`` in pieces."""

    url = ""
    size = 0
    checksum = None
    random_access = True

    def read(self, start, end):
        raise NotImplementedError

    def stream(self, offset=0):
        pos = offset
        while pos < self.size:
            piece = self.read(pos, min(self.size, pos + PIECE))
            if not piece:
                raise RemoteError(self.url, f"ended at byte {pos} of {self.size}")
            pos += len(piece)
            yield piece

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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
        _stats["granules"] += 1
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
    _stats["staged"] += 1
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
