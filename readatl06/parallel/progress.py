"""Progress of a run over ALL ranks, shown by rank 0.

Every rank adds its finished granules and kept points to two shared counters
(:func:`readatl06.parallel.handout.shared_counter`: one MPI window each, ``Fetch_and_op``); rank 0 reads them
whenever it passes by (after each of its granules, and while it waits at the end). On a terminal it
keeps one live line (tqdm) on ``/dev/tty`` — under mpirun a rank's stderr is a pipe, but the job still
has the terminal it was started from — with granules done/total, points, granules/s and ETA.
Without a terminal it writes a log line to stderr every ``every`` seconds (and a last one at the end
of a run that lasted that long).
"""
import contextlib
import os
import sys
import time


def open_terminal():
    """The controlling terminal for writing, or None (batch jobs, CI, nohup)."""
    if sys.stderr.isatty():
        return sys.stderr
    try:
        fd = os.open("/dev/tty", os.O_WRONLY | os.O_NOCTTY)
    except OSError:
        return None
    return os.fdopen(fd, "w", buffering=1)


FALLBACK_SIZE = (100, 24)          # columns, rows


def _columns(tty):
    """The width the terminal reports (0: none, as a pseudo-terminal without a size says)."""
    try:
        return os.get_terminal_size(tty.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 0


def _eta(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class Progress:
    """``update(record)`` on every rank after each granule; ``close()`` once (collective)."""

    def __init__(self, comm, total, enabled=True, every=30.0, terminal=None, err=None):
        self.comm, self.total, self.every = comm, total, every
        self.enabled = enabled
        self.err = err or sys.stderr
        self.t0 = self.last = time.perf_counter()
        self._stack = contextlib.ExitStack()
        self.bar = None
        if not enabled:             # the same on every rank (same command line): no window at all
            return
        from readatl06.parallel.handout import shared_counter
        self.done = self._stack.enter_context(shared_counter(comm))
        self.points = self._stack.enter_context(shared_counter(comm))
        self.failed = self._stack.enter_context(shared_counter(comm))
        if comm.rank == 0:
            tty = terminal if terminal is not None else open_terminal()
            if tty:
                from tqdm import tqdm
                # a pseudo-terminal without a size (script(1), some batch shells) reports 0 columns and
                # 0 rows, where tqdm would draw nothing: a fixed size then
                size = {} if _columns(tty) > 0 else {"ncols": FALLBACK_SIZE[0], "nrows": FALLBACK_SIZE[1]}
                self.bar = tqdm(total=total, file=tty, unit="granule", dynamic_ncols=not size, leave=True,
                                desc="readatl06", smoothing=0.1, **size)

    def _read(self):
        return self.done.next(0), self.points.next(0), self.failed.next(0)

    def update(self, record):
        if not self.enabled:
            return
        self.done.next(1)
        self.points.next(int(record["points"]) if record["status"] == "done" else 0)
        self.failed.next(1 if record["status"] == "failed" else 0)
        if self.comm.rank == 0:
            self.show()

    def line(self, done, points, failed):
        dt = time.perf_counter() - self.t0
        rate = done / dt if dt > 0 else 0.0
        eta = _eta((self.total - done) / rate) if rate > 0 else "?"
        return (f"readatl06: progress: {done}/{self.total} granules ({failed} failed), {points:,} points kept, "
                f"{rate:.2f} granules/s, ETA {eta}")

    def show(self, final=False):
        """Rank 0: refresh the live line, or log one when ``every`` seconds have passed."""
        done, points, failed = self._read()
        if self.bar is not None:
            self.bar.n = done
            self.bar.set_postfix_str(f"{points:,} points, {failed} failed", refresh=False)
            self.bar.refresh()
        elif final or time.perf_counter() - self.last >= self.every:
            self.last = time.perf_counter()
            print(self.line(done, points, failed), file=self.err, flush=True)

    def close(self):
        """Collective. Rank 0 keeps its line up to date until every rank has finished."""
        if self.enabled and self.comm.size > 1:
            req = self.comm.Ibarrier() if hasattr(self.comm, "Ibarrier") else None
            while req is not None and not req.Test():
                if self.comm.rank == 0:
                    self.show()
                time.sleep(0.2)
        if self.enabled and self.comm.rank == 0:
            self.show(final=self.bar is None and time.perf_counter() - self.t0 >= self.every)
            if self.bar is not None:
                self.bar.close()
        self._stack.close()
