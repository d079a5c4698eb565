"""``readatl06 fetch SOURCE... -o DIR [selection]``: download the selected granules into DIR, in
parallel over the ranks (each rank takes the next largest granule as it finishes).

Each granule is written to ``DIR/.NAME.part`` and renamed to ``DIR/NAME`` only once its size (and,
where the store gives one, its MD5: S3 ETags of single-part uploads) has been verified, so a final
name always holds a complete file. A file already in DIR with the expected size is skipped; a
``.part`` left by an interrupted fetch is continued from where it stopped (servers that serve byte
ranges), else started again. A transient failure (connection, timeout, 5xx) is retried with
exponential backoff (0.5, 1, 2 s); a permanent one (401/403/404, host key, credentials) is not. A
failed granule is reported and the others complete; exit status 1 when any failed.
"""
import fcntl
import hashlib
import os
import sys
import time

from readatl06.parallel import schedule
from readatl06.errors import SourceError, UsageError
from readatl06.atl06.names import select
from readatl06.outputs.folder import PlantedError, crash_point, open_existing
from readatl06.parallel.handout import hand_out
from readatl06.redact import redact
from readatl06.sources import base, discover, remote

PART = ".{}.part"


class LocalReader(base.Reader):
    """A local file as a Reader, so that local SOURCEs are copied the same way."""

    def __init__(self, path):
        self.url = path
        try:
            self.fh = open(path, "rb")
            self.size = os.fstat(self.fh.fileno()).st_size
        except OSError as exc:
            raise base.RemoteError(path, f"cannot be read ({exc.strerror})", permanent=True) from exc

    def read(self, start, end):
        return os.pread(self.fh.fileno(), end - start, start)

    def close(self):
        self.fh.close()


def _reader(url):
    return remote.open_reader(url) if remote.is_remote(url) else LocalReader(url)


def md5_of(path):
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(base.PIECE * 8), b""):
            h.update(block)
    return h.hexdigest()


def plan(sources, selection, outdir):
    """Rank 0: (items, messages) with items [(name, url, size or None, checksum or None)] in
    selection order. SourceError/UsageError for a SOURCE that cannot be listed or a bad DIR."""
    if os.path.exists(outdir) and not os.path.isdir(outdir):
        raise UsageError(f"-o {outdir}: exists and is not a folder")
    listing = discover(sources, exclude=[outdir])
    sel = select(listing.paths, selection)
    messages = listing.messages() + sel.messages()
    items = []
    for g, url in sel.granules:
        entry = base.known(url)
        size = entry.size if entry is not None else (os.path.getsize(url) if not remote.is_remote(url) else None)
        items.append((g.name, url, size, entry.checksum if entry is not None else None))
    try:
        os.makedirs(outdir, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"-o {outdir}: cannot be created ({exc.strerror})") from exc
    return items, messages


def fetch_one(name, url, size, checksum, outdir):
    """Download one granule (resuming a .part, retrying transient failures); a result dict with
    ``status`` fetched | complete | failed, ``bytes``, ``seconds``, ``resumed`` (byte), ``retries``, ``error``."""
    t0 = time.perf_counter()
    dest, part = os.path.join(outdir, name), os.path.join(outdir, PART.format(name))
    res = {"name": name, "url": url, "status": "failed", "bytes": 0, "resumed": 0, "retries": 0, "error": None}
    if size is not None and os.path.isfile(dest) and os.path.getsize(dest) == size:
        res.update(status="complete", seconds=0.0)
        return res

    def attempt():
        with _reader(url) as reader:
            fd = _own_part(part, dest, reader.size)
            if fd is None:
                return "complete"
            offset = os.fstat(fd).st_size
            if offset > reader.size or not reader.random_access:
                offset = 0
            if offset and not res["resumed"]:
                res["resumed"] = offset
            with os.fdopen(fd, "ab") as fh:       # the lock is held until the part is renamed
                fh.truncate(offset)
                res["bytes"] += remote.download(reader, fh, offset, lambda _: crash_point("fetch-piece"))
                fh.flush()
                os.fsync(fh.fileno())
                got = os.path.getsize(part)
                if got != reader.size:
                    raise base.RemoteError(url, f"downloaded {got} bytes, the server says {reader.size}")
                want = checksum or reader.checksum
                if want is not None and want[0] == "md5":
                    digest = md5_of(part)
                    if digest != want[1] and reader.checksum_applies():   # SSE-KMS/SSE-C ETag: no MD5
                        os.remove(part)
                        raise base.RemoteError(url, f"MD5 {digest} of the download differs from the store's "
                                               f"{want[1]}")
                os.replace(part, dest)
            return "fetched"

    def retried(exc, attempt_no, delay):
        res["retries"] = attempt_no

    try:
        res["status"] = base.with_retries(attempt, on_retry=retried)
    except base.RemoteError as exc:
        res["error"] = str(exc) if exc.url == url else f"{redact(url)}: {exc}"
    except OSError as exc:
        res["error"] = f"{redact(url)}: cannot write {part} ({exc.strerror or exc})"
    except PlantedError as exc:
        res["error"] = f"{redact(url)}: {exc}"
    res["seconds"] = round(time.perf_counter() - t0, 4)
    return res


def _own_part(part, dest, size):
    """A descriptor of DIR/.NAME.part held with an exclusive lock (never through a link planted
    there: folder.open_existing), or None when DIR/NAME is complete. Another fetch of the same
    granule into the same folder (a second run) holds the lock until it has renamed its part: this
    one waits for it, then finds the granule complete, rather than both writing one file."""
    while True:
        if os.path.isfile(dest) and os.path.getsize(dest) == size:
            return None
        fd = open_existing(part, os.O_WRONLY | os.O_APPEND)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            mine = os.path.samestat(os.fstat(fd), os.lstat(part))
        except FileNotFoundError:
            mine = False                  # renamed to DIR/NAME by the other fetch meanwhile
        if mine and os.path.isfile(dest) and os.path.getsize(dest) == size:
            os.remove(part)               # the empty part made here, after the other fetch finished
            mine = False
        if mine:
            return fd
        os.close(fd)


def _work(comm, sizes):
    return hand_out(comm, schedule.largest_first(sizes))


def run_fetch(comm, sources, selection, outdir):
    """The whole ``fetch`` command on every rank; returns the exit status (the same on every rank)."""
    t0 = time.perf_counter()
    todo = None
    if comm.rank == 0:
        try:
            todo = plan(sources, selection, outdir)
        except (SourceError, UsageError) as exc:
            todo = str(exc)
    todo = comm.bcast(todo, root=0)
    if isinstance(todo, str):
        if comm.rank == 0:
            print(f"readatl06 fetch: error: {todo}", file=sys.stderr)
        return 2
    items, messages = todo
    if comm.rank == 0:
        for m in messages:
            print(f"readatl06: {m}", file=sys.stderr)
    results = [fetch_one(*items[i], outdir) for i in _work(comm, [it[2] or 0 for it in items])]
    gathered = comm.gather(results, root=0)
    status = 0
    if comm.rank == 0:
        flat = sorted((r for rs in gathered for r in rs), key=lambda r: r["name"])
        status = report(flat, outdir, time.perf_counter() - t0, comm.size)
    return comm.bcast(status, root=0)


def report(results, outdir, seconds, nranks):
    """Rank 0: one line per failure, resume and retry, then the summary; returns the exit status."""
    for r in results:
        if r["resumed"]:
            print(f"readatl06: {r['name']}: resumed at byte {r['resumed']}", file=sys.stderr)
        if r["retries"] and r["status"] != "failed":
            print(f"readatl06: {r['name']}: fetched after {r['retries']} retries", file=sys.stderr)
        if r["status"] == "failed":
            tries = f" (after {r['retries']} retries)" if r["retries"] else ""
            print(f"readatl06: FAILED {r['error']}{tries}", file=sys.stderr)
    n = {s: sum(r["status"] == s for r in results) for s in ("fetched", "complete", "failed")}
    nbytes = sum(r["bytes"] for r in results)
    rate = nbytes / seconds / 1e6 if seconds > 0 else 0.0
    print(f"readatl06 fetch: {len(results)} granules selected, {n['fetched']} fetched, {n['complete']} already "
          f"complete, {n['failed']} failed; {nbytes / 1e6:.1f} MB in {seconds:.2f} s ({rate:.1f} MB/s) on "
          f"{nranks} ranks -> {outdir}")
    return 1 if n["failed"] else 0

