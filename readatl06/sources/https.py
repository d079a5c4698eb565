"""``https://`` (and ``http://``) granule URLs, given directly or in ``@list.txt`` — the URL lists of
data centres' order pages and earthaccess. HTTPS has no listing: a URL names one granule and
selection applies to its file name; nothing is contacted until a granule is read or fetched.

Credentials go only to their own host, on every request (the first probe, each redirect, every range
read, the download): redirects are followed here, one hop at a time, and each request carries what
:func:`credentials` allows for its own URL —

* the bearer token in ``EARTHDATA_TOKEN``, or user information in the URL (``https://user:pw@host/``),
  only to the URL's origin (its scheme, host and port; ``http`` upgraded to ``https`` on the same host
  counts as the same) — never to the host a data centre redirects to, e.g. a pre-signed S3 URL, which
  would also refuse a second ``Authorization``;
* ``~/.netrc`` (or ``$NETRC``) basic auth to each host that has a ``machine`` line of its own (a
  ``default`` line is not used) — the data host, or the login host it redirects to (Earthdata Login);
  the session's cookies are kept.

Nothing is sent over plain ``http://`` except to this machine (``localhost``, ``127.0.0.0/8``,
``::1``): a 401 there says so. Reading in place uses ``Range`` requests against the final (redirected)
URL; a server that answers a range with the whole file is staged instead. URLs in messages never show
their user information (:mod:`readatl06.redact`).
"""
import ipaddress
import os
import re
import urllib.parse

from readatl06.redact import host_port
from readatl06.sources.base import PIECE, Entry, Reader, RemoteError

TOKEN_ENV = "EARTHDATA_TOKEN"
TIMEOUT = (10, 60)              # connect, read (seconds)
MAX_REDIRECTS = 30              # as requests
_sessions = {}
_netrc_cache = {}


class _Bearer:
    """``Authorization: Bearer TOKEN`` on one request."""

    def __init__(self, token):
        self.token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


class _Nothing:
    """No credentials on this request (and none that requests would add itself: netrc, URL)."""

    def __call__(self, request):
        request.headers.pop("Authorization", None)
        return request


def session():
    """One requests.Session per process (connections and cookies reused); credentials are given per
    request (:func:`credentials`), never set on the session."""
    if None not in _sessions:
        import requests
        s = requests.Session()
        s.headers["User-Agent"] = "readatl06"
        s.max_redirects = MAX_REDIRECTS
        _sessions[None] = s
    return _sessions[None]


def close_all():
    for s in _sessions.values():
        s.close()
    _sessions.clear()


def _netrc_path():
    return os.environ.get("NETRC") or os.path.expanduser("~/.netrc")


def _netrc_entry(host):
    """(login, password) of ``machine HOST`` in the netrc file, or None (``default`` is not used);
    the file is read again when it changes."""
    import netrc
    path = _netrc_path()
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (path, st.st_mtime_ns, st.st_size)
    if key not in _netrc_cache:
        _netrc_cache.clear()
        try:
            hosts = netrc.netrc(path).hosts
        except (OSError, netrc.NetrcParseError):
            hosts = {}
        _netrc_cache[key] = {h.lower(): (login, password) for h, (login, _acct, password) in hosts.items()}
    entry = _netrc_cache[key].get(host.lower())
    return entry if entry and entry[0] is not None else None


def _loopback(host):
    host = (host or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _origin(parts):
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def same_origin(url, origin):
    """Whether ``url`` is at the origin of ``origin`` (scheme, host, port; http -> https on the same
    host and default ports counts as the same)."""
    a, b = _origin(urllib.parse.urlsplit(origin)), _origin(urllib.parse.urlsplit(url))
    return a == b or (a[0] == "http" and a[2] == 80 and b == ("https", a[1], 443))


def credentials(url, origin):
    """What a request to ``url`` may carry, for a granule the user named as ``origin``: a requests
    auth object, or None."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "http" and not _loopback(parts.hostname):
        return None                               # never in clear text over the network
    if same_origin(url, origin):
        token = os.environ.get(TOKEN_ENV)
        if token:
            return _Bearer(token)
        user = urllib.parse.urlsplit(origin)
        if user.username is not None:
            import requests
            return requests.auth.HTTPBasicAuth(urllib.parse.unquote(user.username),
                                               urllib.parse.unquote(user.password or ""))
    entry = _netrc_entry(parts.hostname or "")
    if entry is not None:
        import requests
        return requests.auth.HTTPBasicAuth(entry[0], entry[1] or "")
    return None


def _how(url):
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "http" and not _loopback(parts.hostname):
        return f"credentials are never sent over plain http:// to {host_port(parts)}; use https://"
    if os.environ.get(TOKEN_ENV):
        return f"bearer token from {TOKEN_ENV}"
    netrc = _netrc_path()
    return f"basic auth from {netrc}" if os.path.isfile(netrc) else f"no credentials (no {TOKEN_ENV}, no {netrc})"


def _status_error(url, r):
    where = f" (at {host_port(urllib.parse.urlsplit(r.url))})" if r.url != url else ""
    code = r.status_code
    if code == 401:
        return RemoteError(url, f"401 Unauthorized{where}: credentials missing or refused ({_how(r.url)}; "
                           "put 'machine HOST login USER password PASS' in ~/.netrc or set EARTHDATA_TOKEN)",
                           permanent=True)
    if code == 403:
        return RemoteError(url, f"403 Forbidden{where}: access refused ({_how(r.url)})", permanent=True)
    if code == 404:
        return RemoteError(url, f"404 Not Found{where}", permanent=True)
    if code == 410:
        return RemoteError(url, f"410 Gone{where}", permanent=True)
    return RemoteError(url, f"HTTP {code} {r.reason}{where}", permanent=400 <= code < 500 and code not in (408, 429))


def _get(url, headers=None, stream=True, origin=None):
    """GET ``url``, following redirects one hop at a time, each hop with the credentials
    :func:`credentials` allows for it (``origin``: the URL the user named, default ``url``)."""
    import requests
    origin = origin or url
    s = session()
    for _ in range(MAX_REDIRECTS + 1):
        try:
            r = s.get(url, headers=headers or {}, stream=stream, timeout=TIMEOUT, allow_redirects=False,
                      auth=credentials(url, origin) or _Nothing())
        except requests.exceptions.InvalidURL as exc:
            raise RemoteError(url, f"bad URL ({exc})", permanent=True) from None
        except requests.exceptions.RequestException as exc:
            host = host_port(urllib.parse.urlsplit(url))
            cause = exc.__context__ or exc
            text = str(getattr(cause, "reason", None) or cause).split(": ")[-1].strip("')\"")
            if isinstance(exc, requests.exceptions.Timeout):
                text = "no answer in time"
            raise RemoteError(url, f"cannot connect to {host} ({text})") from None
        target = s.get_redirect_target(r) if r.is_redirect else None
        if target is None:
            return r
        try:
            r.content                      # a redirect's small body: read, so the connection is reused
        except requests.exceptions.RequestException:
            pass
        r.close()
        url = urllib.parse.urljoin(r.url, target)
    raise RemoteError(origin, "too many redirects (a login loop? check the credentials)", permanent=True)


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
        r = _get(url, {"Range": "bytes=0-0"})           # credentials: only to the origin of url
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
        r = _get(self.final, {"Range": want}, origin=self.url)
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
            r = _get(self.final, origin=self.url)
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
