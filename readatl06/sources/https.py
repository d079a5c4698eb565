"""``https://`` (and ``http://``) granule URLs, given directly or in ``@list.txt`` — the URL lists of
data centres' order pages and earthaccess. HTTPS has no listing: a URL names one granule and
selection applies to its file name; nothing is contacted until a granule is read or fetched.

Authentication (requests): a bearer token in ``EARTHDATA_TOKEN`` is sent to the URL's host, else
``~/.netrc`` (or ``$NETRC``) supplies basic auth for whichever host asks — also the login host a data
centre redirects to (Earthdata Login), with the session's cookies kept. Redirects are followed and
credentials are never sent on to another host (requests drops them; netrc is looked up afresh).
Reading in place uses ``Range`` requests against the final (redirected) URL; a server that answers a
range with the whole file is staged instead.
"""
import os
import re
import urllib.parse

from readatl06.sources.base import PIECE, Entry, Reader, RemoteError

TOKEN_ENV = "EARTHDATA_TOKEN"
TIMEOUT = (10, 60)              # connect, read (seconds)
_sessions = {}


class _Bearer:
    """``Authorization: Bearer TOKEN`` for the first request (requests strips it on a redirect to
    another host)."""

    def __init__(self, token):
        self.token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def session():
    """One requests.Session per process and token (connections and cookies reused)."""
    token = os.environ.get(TOKEN_ENV) or None
    if token not in _sessions:
        import requests
        s = requests.Session()
        s.headers["User-Agent"] = "readatl06"
        if token:
            s.auth = _Bearer(token)
        _sessions[token] = s
    return _sessions[token]


def close_all():
    for s in _sessions.values():
        s.close()
    _sessions.clear()


def _how():
    if os.environ.get(TOKEN_ENV):
        return f"bearer token from {TOKEN_ENV}"
    netrc = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    return f"basic auth from {netrc}" if os.path.isfile(netrc) else f"no credentials (no {TOKEN_ENV}, no {netrc})"


def _status_error(url, r):
    host = urllib.parse.urlsplit(r.url).netloc
    where = f" (at {host})" if r.url != url else ""
    code = r.status_code
    if code == 401:
        return RemoteError(url, f"401 Unauthorized{where}: credentials missing or refused ({_how()}; "
                           "put 'machine HOST login USER password PASS' in ~/.netrc or set EARTHDATA_TOKEN)",
                           permanent=True)
    if code == 403:
        return RemoteError(url, f"403 Forbidden{where}: access refused ({_how()})", permanent=True)
    if code == 404:
        return RemoteError(url, f"404 Not Found{where}", permanent=True)
    if code == 410:
        return RemoteError(url, f"410 Gone{where}", permanent=True)
    return RemoteError(url, f"HTTP {code} {r.reason}{where}", permanent=400 <= code < 500 and code not in (408, 429))


def _get(url, headers=None, stream=True):
    import requests
    try:
        return session().get(url, headers=headers or {}, stream=stream, timeout=TIMEOUT, allow_redirects=True)
    except requests.exceptions.TooManyRedirects:
        raise RemoteError(url, "too many redirects (a login loop? check the credentials)", permanent=True) from None
    except requests.exceptions.InvalidURL as exc:
        raise RemoteError(url, f"bad URL ({exc})", permanent=True) from None
    except requests.exceptions.RequestException as exc:
        host = urllib.parse.urlsplit(url).netloc
        cause = exc.__context__ or exc
        text = str(getattr(cause, "reason", None) or cause).split(": ")[-1].strip("')\"")
        if isinstance(exc, requests.exceptions.Timeout):
            text = "no answer in time"
        raise RemoteError(url, f"cannot connect to {host} ({text})") from None


def list_source(url, opts):
    if not urllib.parse.urlsplit(url).netloc:
        raise RemoteError(url, "no host in the URL", permanent=True)
    return [Entry(url)]


_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")


class HTTPReader(Reader):
    """A probe ``Range: bytes=0-0`` learns the size and whether ranges are served (206), and the
    final URL after redirects; later ranges go there directly (back to the original on 401/403,
    e.g. an expired signed URL)."""

    def __init__(self, url, opts):
        self.url = self.final = url
        r = _get(url, {"Range": "bytes=0-0"})
        try:
            if r.status_code == 206:
                m = _RANGE.match(r.headers.get("Content-Range", ""))
                if not m or m.group(3) == "*":
                    raise RemoteError(url, "206 answer without the file size (Content-Range)")
                self.size, self.random_access, self.final = int(m.group(3)), True, r.url
                r.content                # one byte: read, so that the connection is kept
            elif r.status_code == 200:
                if "Content-Length" not in r.headers:
                    raise RemoteError(url, "the server gives no size (Content-Length) and no ranges")
                self.size, self.random_access, self.final = int(r.headers["Content-Length"]), False, r.url
            elif r.status_code == 416:
                self.size, self.random_access = 0, True
            else:
                raise _status_error(url, r)
        finally:
            r.close()

    def _ranged(self, start, end=None):
        want = f"bytes={start}-{'' if end is None else end - 1}"
        r = _get(self.final, {"Range": want})
        if r.status_code in (401, 403) and self.final != self.url:
            r.close()
            r = _get(self.url, {"Range": want})
            self.final = r.url
        if r.status_code != 206:
            r.close()
            if r.status_code == 200:
                raise RemoteError(self.url, "the server stopped serving byte ranges", permanent=True)
            raise _status_error(self.url, r)
        return r

    def read(self, start, end):
        import requests
        r = self._ranged(start, end)
        try:
            data = r.content
        except requests.exceptions.RequestException as exc:
            raise RemoteError(self.url, f"read failed ({exc})") from None
        finally:
            r.close()
        if len(data) != end - start:
            raise RemoteError(self.url, f"range {start}-{end} gave {len(data)} bytes")
        return data

    def stream(self, offset=0):
        """One GET from ``offset`` on (a range when ``offset`` > 0 and ranges are served)."""
        import requests
        if offset and not self.random_access:
            raise RemoteError(self.url, "the server serves no byte ranges: cannot resume", permanent=True)
        if offset >= self.size:
            return
        if offset:
            r = self._ranged(offset)
        else:
            r = _get(self.final)
            if r.status_code in (401, 403) and self.final != self.url:
                r.close()
                r = _get(self.url)
            if r.status_code != 200:
                r.close()
                raise _status_error(self.url, r)
        try:
            yield from r.iter_content(PIECE)
        except requests.exceptions.RequestException as exc:
            raise RemoteError(self.url, f"download broke off ({exc.__class__.__name__})") from None
        finally:
            r.close()


def open_reader(url, opts):
    return HTTPReader(url, opts)
