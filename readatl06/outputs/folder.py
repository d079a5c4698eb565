"""The output folder of a run: safe opening of files in a shared folder, the checks of every target
before any work, and the temporary names of files being written (the lock and the removal of
leftovers of killed runs are :mod:`readatl06.outputs.locks`). Rank 0 only; no MPI here."""
import errno
import glob
import os
import re
import signal
import time
import stat

from readatl06.errors import UsageError

# readatl06's own files in a folder (the lock, its fallback, the manifest, its parts and rejected
# lines): never the target of any command (-o, --merge, --log)
OWN_FILE_RE = re.compile(r"readatl06\.lock(\.owner)?|readatl06-manifest(\.part-\d+|\.rejected)?\.jsonl")
TMP_GLOB = ".*.tmp-*"                          # trackfile.py and merge/writer.py write so, then rename
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


# ------------------------------------------------------------------ opening files in a shared folder
# Output folders may be shared (a group's project space, /tmp): another user can plant a symbolic
# link, a hard link or a FIFO at a name readatl06 is about to write (its lock, a temporary name with a
# guessable pid), so that the write lands in a file of the victim's. Every file readatl06 writes there
# is opened without following a symbolic link (O_NOFOLLOW); a new name is created (O_EXCL), never
# reused; and whatever is found planted is refused with one line (PlantedError), never written through.
class PlantedError(UsageError):
    """Something readatl06 did not make is at a name it writes: refused, nothing written."""


def _what(st):
    if stat.S_ISLNK(st.st_mode):
        return "a symbolic link"
    if stat.S_ISDIR(st.st_mode):
        return "a folder"
    if not stat.S_ISREG(st.st_mode):
        return "a FIFO, socket or device"
    if st.st_nlink > 1:
        return f"a file with {st.st_nlink} names (a hard link)"
    return "a file of another user"


def planted(path, st=None):
    """The PlantedError for ``path`` (``st``: what was found there, else looked up now)."""
    if st is None:
        try:
            st = os.lstat(path)
        except OSError:
            return PlantedError(f"{path}: changed while it was being opened; refusing to write there")
    what = _what(st)
    if stat.S_ISLNK(st.st_mode):
        try:
            what += f" (to {os.readlink(path)})"
        except OSError:
            pass
    return PlantedError(f"{path}: {what} is there, not a file readatl06 made; refusing to write through "
                        "it (remove it, or use another folder)")


def sole_file(st, single=True):
    return stat.S_ISREG(st.st_mode) and (st.st_nlink == 1 or not single)


def open_new(path, flags=os.O_WRONLY, mode=0o644):
    """A file descriptor of a new file ``path``, created here (``O_CREAT | O_EXCL | O_NOFOLLOW``): a
    symbolic link, a hard link or anything else at that name is never opened. A regular file of this
    user with one name (the temporary file of a killed run with the same pid) is removed first;
    anything else raises PlantedError."""
    flags |= os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        return os.open(path, flags, mode)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not (sole_file(st) and st.st_uid == os.geteuid()):
        raise planted(path, st)
    os.remove(path)                                   # removes the name, whatever it pointed to
    try:
        return os.open(path, flags, mode)
    except FileExistsError:
        raise planted(path) from None


def remove_new(path):
    """Remove the file :func:`open_new` made at ``path`` (a regular file of this user with one name;
    nothing else is touched): after a failure, also one that came before ``open_new`` returned."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if sole_file(st) and st.st_uid == os.geteuid():
        os.remove(path)


def open_existing(path, flags=os.O_WRONLY, mode=0o644, single=True, create=True):
    """A file descriptor of ``path``, made if missing (the lock, a manifest part, a fetch's ``.part``,
    a ``--log``; not with ``create`` False: FileNotFoundError), opened without following a symbolic
    link and without blocking on a FIFO; anything but a regular file (with one name, when
    ``single``) raises PlantedError."""
    try:
        fd = os.open(path, flags | (os.O_CREAT if create else 0) | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                     mode)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.EMLINK):
            raise planted(path) from None
        raise
    st = os.fstat(fd)
    if not sole_file(st, single):
        os.close(fd)
        raise planted(path, st)
    os.set_blocking(fd, True)
    return fd


def claim(path):
    """Create ``path`` as a new empty file (:func:`open_new`) for a library that opens it by name
    (HDF5, Arrow) and truncates it; returns its identity for :func:`check_claim`."""
    fd = open_new(path)
    try:
        st = os.fstat(fd)
    finally:
        os.close(fd)
    return st.st_dev, st.st_ino


def check_claim(path, ident):
    """PlantedError unless ``path`` is still the regular file :func:`claim` made (checked before it
    is renamed to its final name)."""
    try:
        st = os.lstat(path)
    except OSError:
        raise planted(path) from None
    if not stat.S_ISREG(st.st_mode) or (st.st_dev, st.st_ino) != tuple(ident):
        raise planted(path, st)


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
        os.close(open_new(probe))
        os.remove(probe)
    except OSError as exc:
        raise UsageError(f"-o {outdir}: cannot write there ({exc.strerror or exc})") from None


def check_file_target(option, path, inputs, overwrite, append_ok=False):
    """A file the run will write (``--merge``, ``--log``): its folder exists and is writable, it is not
    a folder, never one of the inputs, and an existing one is replaced only with ``--overwrite``
    (``append_ok``: an existing text log may be appended to)."""
    folder = os.path.dirname(os.path.abspath(path))
    if OWN_FILE_RE.fullmatch(os.path.basename(path)):
        raise UsageError(f"{option} {path}: is readatl06's own record of a run (its lock or manifest); "
                         "no command writes over it")
    if not os.path.isdir(folder):
        raise UsageError(f"{option} {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{option} {path}: folder {folder} is not writable")
    check_name(option, path)
    refuse_planted(folder, [os.path.basename(path)])       # at its temporary names (.NAME.tmp-*)
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


def temporaries(folder, names=None):
    """The temporary names (``.<name>.tmp-*``) in ``folder``, of ``names`` when given."""
    if names is None:
        return glob.glob(os.path.join(glob.escape(folder), TMP_GLOB))
    return [p for n in names for p in glob.glob(os.path.join(glob.escape(folder), f".{glob.escape(n)}.tmp-*"))]


def refuse_planted(folder, names=None):
    """PlantedError for the first temporary name in ``folder`` (of ``names`` when given) that holds
    anything but a regular file with one name — a symbolic link, a hard link, a FIFO — planted where
    a run would write (before any work: one line, exit 2)."""
    for p in sorted(temporaries(folder, names)):
        try:
            st = os.lstat(p)
        except OSError:
            continue
        if not sole_file(st):
            raise planted(p, st)


def tmp_name(path, tag):
    """The temporary name of ``path`` in its own folder (renamed to ``path`` when complete)."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.tmp-{tag}")


def free_bytes(folder):
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize


TMP_TAG_MAX = len(str(2 ** 22))                # the longest pid (pid_max is at most 4 194 304)


def check_name(option, path):
    """UsageError when ``path`` or its temporary name (``.NAME.tmp-PID``, :func:`tmp_name`) is longer
    than its folder allows (NAME_MAX, PATH_MAX): refused before any work, not after it."""
    folder, name = os.path.split(os.path.abspath(path))
    try:
        name_max, path_max = os.pathconf(folder, "PC_NAME_MAX"), os.pathconf(folder, "PC_PATH_MAX")
    except (OSError, ValueError):
        name_max, path_max = 255, 4096
    longest = len(os.fsencode(name)) + len(".") + len(".tmp-") + TMP_TAG_MAX
    if longest > name_max:
        raise UsageError(f"{option} {path}: a name of {len(os.fsencode(name))} bytes; with its temporary name "
                         f"(.NAME.tmp-PID) it exceeds the {name_max} bytes a name may have in {folder}; expected "
                         f"at most {name_max - (longest - len(os.fsencode(name)))} bytes")
    if len(os.fsencode(folder)) + 1 + longest >= path_max:
        raise UsageError(f"{option} {path}: a path longer than the {path_max} bytes allowed")


SPACE_SHARE = 2       # a merged file or table takes at least 1/2 of the bytes of the files it is made of


def check_space(option, path, need):
    """UsageError when the folder of ``path`` has less than ``need`` bytes free (a lower bound of
    what the output takes: refused before any work when it surely cannot fit)."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        free = free_bytes(folder)
    except OSError:
        return
    if free < need:
        raise UsageError(f"{option} {path}: {free / 1e6:.1f} MB free in {folder}, the output needs at least "
                         f"{need / 1e6:.1f} MB; not written")


_passed = {}


def crash_point(name):
    """Fault injection for the kill tests: with ``READATL06_CRASH_AT=name[:N]`` in the environment
    the process kills itself with SIGKILL the N-th time (default the first) it passes ``name`` —
    the same death as ``kill -9`` or a wall-time limit, at a chosen moment. With
    ``READATL06_PAUSE_AT=name[:N]`` it sleeps a minute there instead (the interrupt tests: a run
    that cannot end before its Ctrl-C arrives). A no-op otherwise."""
    for var in ("READATL06_CRASH_AT", "READATL06_PAUSE_AT"):
        spec = os.environ.get(var)
        if not spec:
            continue
        want, _, nth = spec.partition(":")
        if want != name:
            continue
        _passed[var, name] = _passed.get((var, name), 0) + 1
        if _passed[var, name] != int(nth or 1):
            continue
        if var == "READATL06_PAUSE_AT":
            time.sleep(60)
        else:
            os.kill(os.getpid(), signal.SIGKILL)
