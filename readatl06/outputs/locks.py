"""Who may write where (docs/output.md, "The folder"): the lock of an OUTDIR, the reservation of an
output file for the whole run, and the removal of temporary leftovers only when no live run owns
them. Rank 0 only; no MPI here.

* ``Lock(OUTDIR, command)``: ``reduce`` holds an exclusive ``flock`` on ``OUTDIR/readatl06.lock``;
  readers (merge, export, xover, verify) hold a shared one (``shared=True``), so several may read
  at once but never while a ``reduce`` writes. Reading needs no write access: a read-only folder is
  read without a lock (with a note) when it has no lock file, under a shared ``flock`` of the
  existing one otherwise. Where the file system has no ``flock`` (ENOSYS, EOPNOTSUPP, ENOLCK: e.g.
  Lustre mounted without ``-o flock``), every command takes :class:`OwnerFile`
  ``OUTDIR/readatl06.lock.owner`` instead, exclusively.
* :class:`OwnerFile`: an exclusive lock file created new (``O_EXCL``) that names its holder (host,
  pid, command, start), held with ``flock`` where there is one and removed on release. A file left
  by a dead holder is stale: with ``flock``, one whose ``flock`` can be taken; without, one naming
  this host and a pid that is not alive. A stale file is taken over (with a note), a live one
  refused with one line naming its holder.
* :func:`reserve`: an output file (``-o``, ``--merge``) is reserved for the whole run by the
  OwnerFile ``.<name>.readatl06-lock`` beside it, so a second run to the same target is refused
  with one line, whatever the moment it starts; the target's existence is checked after reserving.
* :func:`remove_leftovers`: ``.<name>.tmp-<pid>...`` files of killed runs, never those of a target
  reserved by a live run nor those whose pid is alive on this host.
"""
import errno
import fcntl
import json
import os
import re
import socket
import stat
import sys
import time

from readatl06.errors import UsageError
from readatl06.outputs.folder import (check_file_target, open_existing, refuse_planted, sole_file,
                                      temporaries)

LOCK = "readatl06.lock"
OWNER = "readatl06.lock.owner"                 # the lock where the file system has no flock
RESERVED = ".{name}.readatl06-lock"            # beside an output file: reserved for one run
NO_FLOCK = (errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK)
BUSY = (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN)
TMP_PID = re.compile(r"^\.(?P<name>.+?)\.tmp-(?P<pid>\d+)")
STALE_EMPTY_S = 60.0       # an owner file still empty after this long was left by a holder killed at once


def _holder_info(command):
    return json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "command": command,
                       "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode() + b"\n"


def _read_info(fd):
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode("utf-8") or "null")
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def _describe(info, default="holder unknown"):
    if not info:
        return default
    return f"{info.get('command', 'readatl06')} pid {info.get('pid')} on {info.get('host')} since {info.get('started')}"


def pid_alive(pid):
    """Whether process ``pid`` is alive on this host."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True
    return True


def _flock(fd, how):
    """True: locked; False: held by another; raises OSError(ENOSYS ...) without flock here."""
    try:
        fcntl.flock(fd, how | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno in BUSY:
            return False
        raise


class OwnerFile:
    """An exclusive lock file ``path`` naming its holder (see the module's text). ``what``: the
    thing it guards, for the refusal; ``note``: a line to show (a stale file taken over), or None."""

    def __init__(self, path, command, what):
        self.path, self.fd, self.note = path, None, None
        for _ in range(3):
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
            except FileExistsError:
                self._stale_or_refuse(what)
                continue
            try:
                _flock(fd, fcntl.LOCK_EX)
            except OSError as exc:
                if exc.errno not in NO_FLOCK:
                    os.close(fd)
                    raise
            os.write(fd, _holder_info(command))
            self.fd = fd
            return
        raise UsageError(f"{what}: cannot take {path} (other runs keep taking it)")

    def _stale_or_refuse(self, what):
        """Remove the file at ``self.path`` when its holder is dead; UsageError when it is alive."""
        try:
            fd = open_existing(self.path, os.O_RDONLY, create=False)
        except FileNotFoundError:
            return                                  # released meanwhile: try again
        try:
            info, st = _read_info(fd), os.fstat(fd)
            try:
                free = _flock(fd, fcntl.LOCK_SH)
                dead = free and (info is not None or time.time() - st.st_mtime > STALE_EMPTY_S)
            except OSError as exc:
                if exc.errno not in NO_FLOCK:
                    raise
                dead = (info is not None and info.get("host") == socket.gethostname()
                        and not pid_alive(info.get("pid", 0))) or \
                       (info is None and time.time() - st.st_mtime > STALE_EMPTY_S)
            if not dead:
                where = "" if not info or info.get("host") == socket.gethostname() else \
                    f" (on another host: remove {self.path} if that run is gone)"
                raise UsageError(f"{what} is in use by another readatl06 run ({_describe(info)}){where}; "
                                 "one run at a time")
            try:
                same = os.lstat(self.path).st_ino == st.st_ino
            except FileNotFoundError:
                same = False
            if same:
                os.remove(self.path)
                self.note = f"{self.path}: left by a run that is gone ({_describe(info)}); taken over"
        finally:
            os.close(fd)

    def release(self):
        if self.fd is not None:
            try:
                if os.lstat(self.path).st_ino == os.fstat(self.fd).st_ino:
                    os.remove(self.path)
            except OSError:
                pass
            os.close(self.fd)
            self.fd = None


def _writable(folder):
    return os.access(folder, os.W_OK)


class Lock:
    """The lock of an OUTDIR for one command (see the module's text): exclusive (``reduce``) or
    shared (readers). ``note``: a line to show (no lock taken, or the fallback), or None."""

    def __init__(self, folder, command, shared=False):
        self.path, self.fd, self.owner, self.note, self.shared = os.path.join(folder, LOCK), None, None, None, shared
        writable = _writable(folder)
        if shared and not writable and not os.path.lexists(self.path):
            self.note = f"{folder} is read-only and has no {LOCK}: read without a lock"
            return
        flags = os.O_RDONLY if shared and not writable else os.O_RDWR
        try:
            # not through a symbolic link, nor into a file with other names: see open_existing
            self.fd = open_existing(self.path, flags, 0o644, create=writable)
        except PermissionError:                      # a colleague's lock file: read it, lock it shared
            if not shared:
                raise UsageError(f"{folder}: cannot write {LOCK} (permission denied)") from None
            self.fd = open_existing(self.path, os.O_RDONLY, create=False)
        try:
            got = _flock(self.fd, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        except OSError as exc:
            os.close(self.fd)
            self.fd = None
            if exc.errno not in NO_FLOCK:
                raise UsageError(f"{folder}: cannot lock {LOCK} ({exc.strerror})") from None
            self._fallback(folder, command, writable, exc)
            return
        if not got:
            holder = _describe(_read_info(self.fd), "a reading command: merge, export, xover or verify")
            os.close(self.fd)
            self.fd = None
            raise UsageError(f"{folder} is in use by another readatl06 run ({holder}); "
                             "one run per output folder at a time")
        if not shared:
            os.ftruncate(self.fd, 0)
            os.write(self.fd, _holder_info(command))

    def _fallback(self, folder, command, writable, exc):
        if not writable:
            self.note = f"{folder} is read-only and its file system has no flock ({exc.strerror}): read without a lock"
            return
        self.owner = OwnerFile(os.path.join(folder, OWNER), command, folder)
        self.note = (f"{folder}: no flock on this file system ({exc.strerror}); locked with "
                     f"{OWNER} instead (one run at a time)") + (f"; {self.owner.note}" if self.owner.note else "")

    def release(self):
        if self.fd is not None:
            if not self.shared:
                try:
                    os.ftruncate(self.fd, 0)    # no holder named once it is gone
                except OSError:
                    pass
            os.close(self.fd)          # closing drops the flock; the file stays (removing it would race)
            self.fd = None
        if self.owner is not None:
            self.owner.release()
            self.owner = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def reservation_path(path):
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, RESERVED.format(name=name))


def reserve(option, path, inputs, overwrite, command, append_ok=False):
    """Rank 0: check ``path`` as a target (:func:`check_file_target`), reserve it for this run (an
    :class:`OwnerFile` beside it: a second run to it is refused with one line), check it again (its
    existence is decided only now) and remove its leftovers. Returns the reservation (``release()``)."""
    check_file_target(option, path, inputs, overwrite, append_ok)
    owner = OwnerFile(reservation_path(path), command, f"{option} {path}")
    try:
        check_file_target(option, path, inputs, overwrite, append_ok)
        remove_leftovers(os.path.dirname(os.path.abspath(path)), [os.path.basename(path)])
    except BaseException:
        owner.release()
        raise
    if owner.note:
        print(f"readatl06: note: {owner.note}", file=sys.stderr)
    return owner


def _reserved(folder, name):
    """Whether a live run holds the reservation of ``folder/name``."""
    p = os.path.join(folder, RESERVED.format(name=name))
    try:
        fd = open_existing(p, os.O_RDONLY, create=False)
    except (FileNotFoundError, UsageError):
        return False
    try:
        try:
            return not _flock(fd, fcntl.LOCK_SH)
        except OSError:
            info = _read_info(fd)
            return bool(info) and (info.get("host") != socket.gethostname() or pid_alive(info.get("pid", 0)))
    finally:
        os.close(fd)


def remove_leftovers(folder, names=None):
    """Remove temporary files of killed runs (``.<name>.tmp-<pid>...``) in ``folder``; only those of
    ``names`` when given (targets this run has reserved). Never one of a target a live run has
    reserved, nor one whose pid is alive on this host (another process's). Returns how many were
    removed. Anything planted at such a name (see :func:`refuse_planted`) raises PlantedError and
    nothing is removed."""
    refuse_planted(folder, names)
    removed = 0
    for p in temporaries(folder, names):
        m = TMP_PID.match(os.path.basename(p))
        if m is None:
            continue
        if names is None and (_reserved(folder, m["name"]) or
                              (int(m["pid"]) != os.getpid() and pid_alive(m["pid"]))):
            continue
        try:
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode) and sole_file(st):
                os.remove(p)
                removed += 1
        except OSError:
            pass
    return removed


class Held(list):
    """What a command holds until it ends (locks, reservations), released in reverse order."""

    def release(self):
        while self:
            self.pop().release()
