"""User information in URLs kept out of every line and record readatl06 writes.

A URL may carry credentials before its host (``https://user:password@host/...``). Wherever a URL is
shown — error lines, notes, ``list`` output, the manifest's ``path`` — its user information is
replaced: a password always (``user:***@``), and for every scheme but ``ssh://`` the user name too
(``***@``: an HTTPS or S3 "user name" is often a token). An ``ssh://user@host`` keeps its user name,
which is the login and no secret. Pure string functions; nothing is contacted.
"""
import re

MASK = "***"
# scheme://userinfo@ — userinfo without '/', '@' or whitespace (RFC 3986: it ends at the last '@' before
# the host; a password holding '@' must be percent-encoded)
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/?#@\s]*)@")


def _masked(scheme, userinfo):
    user, sep, _password = userinfo.partition(":")
    if scheme.lower().startswith("ssh") or scheme.lower().startswith("sftp"):
        return f"{user}:{MASK}" if sep else user
    return MASK


def redact(text):
    """``text`` (a URL, or a line holding URLs) with the user information of each URL masked."""
    if not isinstance(text, str) or "@" not in text:
        return text
    return _USERINFO.sub(lambda m: f"{m[1]}{_masked(m[1], m[2])}@", text)


def host_port(url_parts):
    """``host`` or ``host:port`` of a urllib.parse.SplitResult, never its user information."""
    host = url_parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = url_parts.port
    except ValueError:
        port = None
    return f"{host}:{port}" if port else host
