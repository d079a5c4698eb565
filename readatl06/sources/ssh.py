"""``ssh://[user@]host[:port]/path/glob`` SOURCEs through SFTP (paramiko): listing by directory
reads only, never a command in a remote shell.

Host keys are checked against known_hosts (``--known-hosts FILE``, default ``~/.ssh/known_hosts``
plus ``/etc/ssh/ssh_known_hosts``) and never accepted silently: an unknown host is refused unless
``--ssh-accept-new`` is given, which records the key seen at that first contact; a key that differs
from the recorded one is always refused. Authentication: ``--ssh-key FILE``, else the ssh agent and
the usual ``~/.ssh/id_*`` keys; a password (or key passphrase) only from ``READATL06_SSH_PASSWORD``
or a prompt on a terminal. ``~/.ssh/config`` supplies HostName, User, Port and IdentityFile.

The path is absolute (``ssh://host/data/atl06``); ``ssh://host/~/atl06`` is relative to the login
folder. A folder is searched recursively for ``*.h5``; a glob may use ``*``, ``?``, ``[...]`` in any
part and ``**`` for any depth.
"""
import errno
import fcntl
import fnmatch
import getpass
import glob as globmod
import os
import posixpath
import random
import socket
import stat
import sys
import time
import urllib.parse

from readatl06.sources.base import Entry, RemoteError, retry_delay

PASSWORD_ENV = "READATL06_SSH_PASSWORD"
TIMEOUT = 15
EXTENSIONS = (".h5", ".hdf5", ".he5")
MAX_DEPTH = 32

_connections = {}               # (user, host, port, key, known_hosts, accept_new) -> (client, sftp)
_passwords = {}                 # (user, host, port) -> a password typed at the prompt


def parse(url):
    """(user, host, port, remote path, URL prefix ``ssh://netloc``). The path is taken verbatim
    (``?`` and ``#`` are glob characters here, not a query)."""
    rest = url[len("ssh://"):]
    netloc, slash, path = rest.partition("/")
    if not netloc:
        raise RemoteError(url, "no host: expected ssh://[user@]host[:port]/path", permanent=True)
    parts = urllib.parse.urlsplit("ssh://" + netloc)
    try:
        port = parts.port
    except ValueError:
        raise RemoteError(url, f"bad port in {netloc!r}", permanent=True) from None
    path = urllib.parse.unquote("/" + path if slash else "/")
    if path == "/~" or path.startswith("/~/"):
        path = path[3:] or "."                  # relative to the login folder
    return parts.username, parts.hostname, port, path, f"ssh://{netloc}"


def _fingerprint(key):
    return getattr(key, "fingerprint", None) or key.get_name()


class _UnknownHost(Exception):
    def __init__(self, hostname, key):
        super().__init__(hostname)
        self.hostname, self.key = hostname, key


def _policies():
    import paramiko

    class Reject(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client, hostname, key):
            raise _UnknownHost(hostname, key)

    class AcceptNew(paramiko.MissingHostKeyPolicy):
        """Trust a host seen for the first time and record its key (like OpenSSH's accept-new)."""

        def __init__(self, path):
            self.path = path

        def missing_host_key(self, client, hostname, key):
            folder = os.path.dirname(os.path.abspath(self.path))
            os.makedirs(folder, mode=0o700, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as fh:
                fcntl.flock(fh, fcntl.LOCK_EX)
                fh.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
            client.get_host_keys().add(hostname, key.get_name(), key)
            print(f"readatl06: note: {hostname}: new host key {key.get_name()} {_fingerprint(key)} "
                  f"recorded in {self.path} (--ssh-accept-new)", file=sys.stderr)

    return Reject, AcceptNew


def _password(user, host, port):
    """READATL06_SSH_PASSWORD, else a prompt when stdin is a terminal (rank 0 only), else None."""
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    key = (user, host, port)
    if key in _passwords:
        return _passwords[key]
    from readatl06.parallel.world import launcher_rank
    if sys.stdin is not None and sys.stdin.isatty() and launcher_rank() == 0:
        _passwords[key] = getpass.getpass(f"{user}@{host}'s password (or key passphrase): ")
        return _passwords[key]
    return None


def connect(url, opts):
    """The SFTP client for a URL's host (one connection per host and options, reused)."""
    import paramiko
    user, host, port, _, _ = parse(url)
    cfg = {}
    conf_path = os.path.expanduser("~/.ssh/config")
    if os.path.isfile(conf_path):
        try:
            cfg = paramiko.SSHConfig.from_path(conf_path).lookup(host)
        except (OSError, paramiko.SSHException, ValueError):
            cfg = {}
    hostname = cfg.get("hostname", host)
    port = port or int(cfg.get("port", 22))
    user = user or cfg.get("user") or getpass.getuser()
    key_file = opts.ssh_key or (cfg.get("identityfile") or [None])[0]
    ident = (user, hostname, port, key_file, opts.known_hosts, opts.ssh_accept_new)
    if ident in _connections:
        client, sftp = _connections[ident]
        if client.get_transport() is not None and client.get_transport().is_active():
            return sftp
        _close(ident)
    where = f"{hostname}:{port}" if port != 22 else hostname
    known = os.path.expanduser(opts.known_hosts or "~/.ssh/known_hosts")
    if key_file and not os.path.isfile(os.path.expanduser(key_file)):
        raise RemoteError(url, f"--ssh-key {key_file}: no such file", permanent=True)
    client = paramiko.SSHClient()
    try:
        if not opts.known_hosts and os.path.isfile("/etc/ssh/ssh_known_hosts"):
            client.load_system_host_keys("/etc/ssh/ssh_known_hosts")
        if os.path.isfile(known):
            client.load_host_keys(known)
    except (OSError, paramiko.SSHException) as exc:
        raise RemoteError(url, f"known_hosts file {known} cannot be read ({exc})", permanent=True) from exc
    reject, accept_new = _policies()
    client.set_missing_host_key_policy(accept_new(known) if opts.ssh_accept_new else reject())
    sftp = _connect_in_time(url, client, where, key_file, user, hostname, port, known, opts)
    _connections[ident] = (client, sftp)
    return sftp


CONNECT_WINDOW = 60.0           # seconds in which a refused or dropped connection is tried again
CONNECT_DELAY_MAX = 5.0


def _connect_in_time(url, client, where, key_file, user, hostname, port, known, opts):
    """``_connect`` tried again while the server drops connections (sshd's MaxStartups, a full
    accept queue: hundreds of ranks starting at once), for up to CONNECT_WINDOW seconds, after
    randomly spread waits (doubling from READATL06_RETRY_DELAY) so the ranks do not come back together."""
    t0, delay = time.monotonic(), retry_delay()
    while True:
        try:
            return _connect(url, client, where, key_file, user, hostname, port, known, opts)
        except RemoteError as exc:
            if exc.permanent or time.monotonic() - t0 + delay > CONNECT_WINDOW:
                raise
        time.sleep(delay * random.uniform(0.5, 1.5))
        delay = min(CONNECT_DELAY_MAX, delay * 2)


def _connect(url, client, where, key_file, user, hostname, port, known, opts):
    """One connection and its SFTP session; RemoteError (permanent for keys and authentication)."""
    import paramiko
    kwargs = dict(hostname=hostname, port=port, username=user, banner_timeout=TIMEOUT,
                  auth_timeout=TIMEOUT, key_filename=os.path.expanduser(key_file) if key_file else None,
                  allow_agent=True, look_for_keys=not opts.ssh_key)
    try:
        try:
            client.connect(password=os.environ.get(PASSWORD_ENV) or None, sock=_socket(hostname, port), **kwargs)
        except paramiko.PasswordRequiredException:
            client.close()
            client.connect(password=_password(user, hostname, port), sock=_socket(hostname, port), **kwargs)
        except paramiko.AuthenticationException:
            password = None if os.environ.get(PASSWORD_ENV) else _password(user, hostname, port)
            if password is None:
                raise
            client.close()
            client.connect(password=password, sock=_socket(hostname, port), **kwargs)
        sftp = client.open_sftp()
    except _UnknownHost as exc:
        client.close()
        raise RemoteError(url, f"host {exc.hostname} is not in {known}: its {exc.key.get_name()} key "
                          f"{_fingerprint(exc.key)} is not trusted; check the fingerprint with the server's "
                          "administrator, then add it (ssh-keyscan) or connect once with --ssh-accept-new",
                          permanent=True) from None
    except paramiko.BadHostKeyException as exc:
        client.close()
        hostid = f"[{hostname}]:{port}" if port != 22 else hostname
        raise RemoteError(url, f"host key of {hostid} does not match {known} (expected "
                          f"{_fingerprint(exc.expected_key)}, got {_fingerprint(exc.key)}): refusing to "
                          "connect; if the server's key really changed, remove the old line with "
                          f"ssh-keygen -R '{hostid}' -f {known}", permanent=True) from None
    except paramiko.AuthenticationException as exc:
        client.close()
        how = f"key {key_file}" if key_file else "ssh agent and ~/.ssh keys"
        raise RemoteError(url, f"authentication failed for {user}@{where} ({how}"
                          f"{', password from ' + PASSWORD_ENV if os.environ.get(PASSWORD_ENV) else ''}): {exc}",
                          permanent=True) from None
    except (OSError, EOFError, paramiko.SSHException) as exc:
        client.close()
        raise RemoteError(url, f"cannot connect to {where} ({_reason(exc)})") from None
    return sftp


def _socket(hostname, port):
    """Our own socket, with TCP_NODELAY: without it every SFTP read over 32 KiB stalls ~6 ms."""
    sock = socket.create_connection((hostname, port), timeout=TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _reason(exc):
    if isinstance(exc, socket.timeout):
        return f"no answer within {TIMEOUT} s"
    if isinstance(exc, socket.gaierror):
        return f"unknown host: {exc.strerror}"
    errors = getattr(exc, "errors", None)         # paramiko's NoValidConnectionsError
    if errors:
        first = next(iter(errors.values()))
        return getattr(first, "strerror", None) or str(first)
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _close(ident):
    client, sftp = _connections.pop(ident)
    for thing in (sftp, client):
        try:
            thing.close()
        except Exception:        # noqa: BLE001 -- a dead connection may fail to close; nothing to keep
            pass


def close_all():
    for ident in list(_connections):
        _close(ident)


def sftp_error(url, exc, what="cannot be read"):
    code = getattr(exc, "errno", None)
    if code == errno.ENOENT:
        return RemoteError(url, "no such file or folder on the server", permanent=True)
    if code == errno.EACCES:
        return RemoteError(url, "permission denied on the server", permanent=True)
    return RemoteError(url, f"{what} ({_reason(exc)})")


# ------------------------------------------------------------------------------------- listing
def _is_hdf5(name):
    return name.lower().endswith(EXTENSIONS)


class _Walk:
    """One listing: Entries found, folders walked (by their normalized path)."""

    def __init__(self, sftp, prefix):
        self.sftp, self.prefix = sftp, prefix
        self.entries, self.seen = [], set()

    def _url(self, path):
        shown = path if path.startswith("/") else "/~/" + path
        return self.prefix + urllib.parse.quote(shown, safe="/~@:+,=")

    def _stat(self, path, attr=None):
        if attr is None or stat.S_ISLNK(attr.st_mode or 0):
            try:
                attr = self.sftp.stat(path)
            except OSError:
                return None            # a broken link
        return attr

    def _listdir(self, folder):
        try:
            return sorted(self.sftp.listdir_attr(folder), key=lambda a: a.filename)
        except OSError as exc:
            raise sftp_error(self._url(folder), exc, "folder cannot be listed") from exc

    def folder(self, top, depth=0):
        """Regular ``*.h5`` files of a folder in name order, then its sub-folders (depth first)."""
        try:
            real = self.sftp.normalize(top)
        except OSError:
            real = top
        if real in self.seen or depth > MAX_DEPTH:
            return
        self.seen.add(real)
        subdirs = []
        for a in self._listdir(top):
            path = posixpath.join(top, a.filename)
            st = self._stat(path, a)
            if st is None:
                continue
            if stat.S_ISDIR(st.st_mode):
                subdirs.append(path)
            elif stat.S_ISREG(st.st_mode) and _is_hdf5(a.filename):
                self.entries.append(Entry(self._url(path), st.st_size))
        for d in subdirs:
            self.folder(d, depth + 1)

    def hit(self, path, attr=None):
        st = self._stat(path, attr)
        if st is None:
            return
        if stat.S_ISDIR(st.st_mode):
            self.folder(path)
        elif stat.S_ISREG(st.st_mode):
            self.entries.append(Entry(self._url(path), st.st_size))

    def glob(self, base, parts, attr=None, depth=0):
        if not parts:
            return self.hit(base, attr)
        part, rest = parts[0], parts[1:]
        if part == "**":
            self.glob(base, rest, depth=depth)
            if depth < MAX_DEPTH:
                for a in self._listdir(base):
                    st = self._stat(posixpath.join(base, a.filename), a)
                    if st is not None and stat.S_ISDIR(st.st_mode) and not a.filename.startswith("."):
                        self.glob(posixpath.join(base, a.filename), parts, depth=depth + 1)
            return
        if not globmod.has_magic(part):
            path = posixpath.join(base, part)
            if not rest:
                return self.hit(path)
            return self.glob(path, rest, depth=depth)
        try:
            listing = self._listdir(base)
        except RemoteError as exc:
            if exc.permanent:
                return                 # a folder the glob reached that is not there: no match
            raise
        for a in listing:
            if fnmatch.fnmatchcase(a.filename, part) and (part.startswith(".") or not a.filename.startswith(".")):
                self.glob(posixpath.join(base, a.filename), rest, a, depth)


def list_source(url, opts):
    path, prefix = parse(url)[3:]
    sftp = connect(url, opts)
    walk = _Walk(sftp, prefix)
    parts = [p for p in path.split("/") if p]
    magic = [i for i, p in enumerate(parts) if globmod.has_magic(p)]
    if magic:
        base = "/" + "/".join(parts[:magic[0]]) if path.startswith("/") else "/".join(parts[:magic[0]]) or "."
        walk.glob(base, parts[magic[0]:])
        if not walk.entries:
            raise RemoteError(url, "matches nothing on the server", permanent=True)
        return walk.entries
    try:
        st = sftp.stat(path)
    except OSError as exc:
        raise sftp_error(url, exc) from exc
    walk.hit(path, st)
    return walk.entries
