"""What every remote module shares, importing none of its siblings: the constants, the error of a
remote operation (:class:`RemoteError`), a listing's :class:`Entry` (kept per process, see
:func:`known`), the remote :class:`Options`, the protocol readers' base :class:`Reader`, retries,
and the byte and request counters (:func:`stats`)."""
import dataclasses
import os
import posixpath
import time
import urllib.parse

from readatl06.errors import SourceError
from readatl06.redact import redact

MiB = 1 << 20
PIECE = MiB                     # download and staging pieces
MAX_BLOCK = 8 * MiB             # metadata block cache: at most 8 MiB blocks ...
MIN_BLOCK = 64 << 10            # ... at least 64 KiB, about 1/32 of the granule in between
CACHE_BYTES = 64 * MiB          # metadata blocks held per open granule
ATTEMPTS = 4                    # tries of a transient failure (first + 3 retries)
MAX_RETRY_DELAY = 600.0         # READATL06_RETRY_DELAY beyond this (or inf, NaN, negative) is ignored


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


_known = {}                     # url -> Entry, from the listings of this process
_stats = {"bytes": 0, "requests": 0, "granules": 0, "staged": 0}


def url_name(url):
    """The file name of a URL (its path's last part, without query or fragment)."""
    return posixpath.basename(urllib.parse.unquote(urllib.parse.urlsplit(str(url)).path).rstrip("/"))


def remember(entries):
    """Keep the Entries of a listing of this process (sizes and checksums, for later)."""
    for e in entries:
        _known[e.url] = e


def known(url):
    """The Entry a listing of this process gave for ``url``, or None (https: size unknown)."""
    return _known.get(url)


# ------------------------------------------------------------------------------------- counters
def stats():
    """Remote bytes and requests of this process so far (reading in place and staging), granules
    opened in place, granules staged."""
    return dict(_stats)


def count(nbytes, requests=1):
    _stats["bytes"] += nbytes
    _stats["requests"] += requests


def count_granule(how):
    """One more granule read remotely: ``how`` is ``granules`` (in place) or ``staged``."""
    _stats[how] += 1


# --------------------------------------------------------------------------------------- retries
def retry_delay():
    """Seconds before the first retry (doubled each time); READATL06_RETRY_DELAY overrides 0.5 (a
    value that is no number of seconds, negative or not finite: 0.5)."""
    try:
        value = float(os.environ.get("READATL06_RETRY_DELAY", "0.5"))
    except ValueError:
        return 0.5
    return value if 0 <= value <= MAX_RETRY_DELAY else 0.5


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

    def checksum_applies(self):
        """False when ``checksum`` turns out not to be the object's MD5 (an S3 ETag of an object
        encrypted with SSE-KMS or SSE-C): asked only after a download's MD5 differs from it."""
        return True

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
