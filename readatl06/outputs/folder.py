"""The output folder of a run: its lock, the checks of every target before any work, the run's own
files of a granule, and the temporary leftovers of killed runs. Rank 0 only; no MPI here."""
import errno
import fcntl
import glob
import json
import os
import signal
import socket
import time

from readatl06.errors import UsageError

LOCK = "readatl06.lock"
TMP_GLOB = ".*.tmp-*"                          # trackfile.py and merge/writer.py write so, then rename
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class Lock:
    """One run per OUTDIR: an exclusive ``flock`` on ``OUTDIR/readatl06.lock``, held for the run.

    The kernel drops it when the holder dies (kill -9 included), so a stale lock never blocks a
    resubmitted job. The file names the holder (host, pid, start) for the refusal message."""

    def __init__(self, folder, command):
        self.path = os.path.join(folder, LOCK)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = self._holder()
            os.close(self.fd)
            self.fd = None
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES, errno.EAGAIN):
                raise UsageError(f"{folder} is in use by another readatl06 run ({holder}); "
                                 "one run per output folder at a time") from None
            raise UsageError(f"{folder}: cannot lock {LOCK} ({exc.strerror})") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "command": command,
                                      "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode() + b"\n")

    def _holder(self):
        try:
            with open(self.path, encoding="utf-8") as fh:
                h = json.loads(fh.read() or "{}")
            return f"{h.get('command', 'readatl06')} pid {h.get('pid')} on {h.get('host')} since {h.get('started')}"
        except (OSError, ValueError):
            return "holder unknown"

    def release(self):
        if self.fd is not None:
            os.close(self.fd)          # closing drops the flock; the file stays (removing it would race)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _is_hdf5(path):
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == HDF5_SIGNATURE
    except OSError:
        return False


def check_outdir(outdir):
    """OUTDIR is (or can be made) a writable folder; UsageError otherwise. Creates it."""
    if os.path.lexists(outdir) and not os.path.isdir(outdir):
        raise UsageError(f"-o {outdir}: exists and is not a folder")
    try:
        os.makedirs(outdir, exist_ok=True)
        probe = os.path.join(outdir, f".readatl06-probe-{os.getpid()}")
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except OSError as exc:
        raise UsageError(f"-o {outdir}: cannot write there ({exc.strerror or exc})") from None


def check_file_target(option, path, inputs, overwrite, append_ok=False):
    """A file the run will write (``--merge``, ``--log``): its folder exists and is writable, it is not
    a folder, never one of the inputs, and an existing one is replaced only with ``--overwrite``
    (``append_ok``: an existing text log may be appended to)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{option} {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{option} {path}: folder {folder} is not writable")
    if not os.path.lexists(path):
        return
    if os.path.isdir(path) or not os.path.isfile(path):
        raise UsageError(f"{option} {path}: exists and is not a regular file")
    for p in inputs:
        if _same_file(path, p):
            raise UsageError(f"{option} {path}: is one of the input granules; refusing to write over it")
    if append_ok and not _is_hdf5(path):
        return
    if not overwrite:
        raise UsageError(f"{option} {path}: exists (use --overwrite to replace it)")


def remove_leftovers(folder, names=None):
    """Remove temporary files of killed runs (``.<name>.tmp-*``) in ``folder``; only those of
    ``names`` when given. Returns how many were removed."""
    pattern = TMP_GLOB if names is None else None
    victims = []
    if pattern:
        victims = glob.glob(os.path.join(glob.escape(folder), pattern))
    else:
        for n in names:
            victims += glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(n)}.tmp-*"))
    removed = 0
    for p in victims:
        try:
            if os.path.isfile(p) and not os.path.islink(p):
                os.remove(p)
                removed += 1
        except OSError:
            pass
    return removed


def tmp_name(path, tag):
    """The temporary name of ``path`` in its own folder (renamed to ``path`` when complete)."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.tmp-{tag}")


def free_bytes(folder):
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


_passed = {}


def crash_point(name):
    """Fault injection for the kill tests: with ``READATL06_CRASH_AT=name[:N]`` in the environment
    the process kills itself with SIGKILL the N-th time (default the first) it passes ``name`` —
    the same death as ``kill -9`` or a wall-time limit, at a chosen moment. A no-op otherwise."""
    spec = os.environ.get("READATL06_CRASH_AT")
    if not spec:
        return
    want, _, nth = spec.partition(":")
    if want != name:
        return
    _passed[name] = _passed.get(name, 0) + 1
    if _passed[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
