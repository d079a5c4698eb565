"""``-j N`` without an MPI launcher: N local worker processes as one communicator.

This process forks N ranks (``multiprocessing``, 'fork' context) and only supervises them; each
rank runs the command's ``run(args, comm)`` unchanged with a :class:`LocalComm`, rank 0 printing as
under MPI. The collectives travel as pickles through one pipe between rank 0 and each other rank;
the dynamic schedule's counters (:func:`readatl06.parallel.handout.shared_counter`) are slots of
one shared array, taken in the same order on every rank (their creation is collective). What
needs MPI-IO is not done by local workers: ``reduce --merge`` merges on rank 0 alone, from the
per-beam files, after the others have finished (:func:`writes_together`).

A rank that ends without finishing (killed, out of memory, an unhandled error) stops the job as
``mpirun`` would: the others are interrupted (SIGINT, so that they remove their temporary files),
one line names the lost rank, the exit status is 1 and ``--resume`` redoes what was not recorded.
Ctrl-C interrupts every rank the same way (exit status 130).
"""
import multiprocessing
import multiprocessing.connection
import operator
import os
import signal
import sys
import time

SLOTS = 64              # shared counters per run (reduce takes 4: the hand-out and three for progress)
GRACE = 20.0            # seconds an interrupted rank has to tidy up before it is killed
_RELEASE = "readatl06-barrier"


def workers(jobs):
    """The number of local processes for ``-j jobs``: all cores (``os.cpu_count()``) for 0."""
    return jobs if jobs > 0 else (os.cpu_count() or 1)


def writes_together(comm):
    """Whether the ranks of ``comm`` can write one file together (MPI-IO): not local workers."""
    return comm.size == 1 or not isinstance(comm, LocalComm)


class LocalComm:
    """What readatl06 needs of a communicator, for N local processes: rank 0 is the hub of every
    collective (root 0 only). ``INTERRUPTED_TOGETHER``: Ctrl-C reaches every rank (see
    :func:`readatl06.parallel.world.abort_on_error`)."""

    INTERRUPTED_TOGETHER = True

    def __init__(self, rank, size, links, slots, lock):
        self.rank, self.size = rank, size
        self._links, self._slots, self._lock, self._next = links, slots, lock, 0
        self._supervisor = os.getppid()

    def _recv(self, peer):
        try:
            return self._links[peer].recv()
        except (EOFError, OSError):
            self._lost(peer)

    def _send(self, peer, obj):
        try:
            self._links[peer].send(obj)
        except OSError:                     # a broken pipe
            self._lost(peer)

    def _lost(self, peer):
        """The peer ended without finishing: the supervisor interrupts every rank (SIGINT) and says
        which one; wait for it (without a supervisor any more, give up)."""
        deadline = time.monotonic() + GRACE
        while time.monotonic() < deadline and os.getppid() == self._supervisor:
            time.sleep(0.05)
        raise RuntimeError(f"local rank {peer} ended during a collective")

    def bcast(self, obj, root=0):
        _root(root)
        if self.rank != 0:
            return self._recv(0)
        for k in range(1, self.size):
            self._send(k, obj)
        return obj

    def gather(self, obj, root=0):
        _root(root)
        if self.rank != 0:
            self._send(0, obj)
            return None
        return [obj] + [self._recv(k) for k in range(1, self.size)]

    def scatter(self, objs, root=0):
        _root(root)
        if self.rank != 0:
            return self._recv(0)
        for k in range(1, self.size):
            self._send(k, objs[k])
        return objs[0]

    def allgather(self, obj):
        return self.bcast(self.gather(obj))

    def allreduce(self, obj, op=None):
        values = self.allgather(obj)
        combine = op or operator.add
        out = values[0]
        for v in values[1:]:
            out = combine(out, v)
        return out

    def barrier(self):
        self.allgather(None)

    Barrier = barrier

    def Ibarrier(self):
        return _Barrier(self)

    def Abort(self, code=1):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)       # without a finished status: the supervisor stops the other ranks

    def shared_counter(self):
        """The next shared counter (collective: every rank takes the same slot)."""
        if self._next >= len(self._slots):
            raise RuntimeError(f"more than {len(self._slots)} shared counters in one run")
        self._next += 1
        return _Counter(self._slots, self._next - 1, self._lock)


def _root(root):
    if root != 0:
        raise ValueError(f"local workers: collectives have root 0, not {root}")


class _Counter:
    def __init__(self, slots, slot, lock):
        self.slots, self.slot, self.lock = slots, slot, lock

    def next(self, incr=1):
        with self.lock:
            value = self.slots[self.slot]
            self.slots[self.slot] = value + incr
        return value

    def free(self):
        pass


class _Barrier:
    """A non-blocking barrier (``Test()``), so that rank 0 can show progress while it waits."""

    def __init__(self, comm):
        self.comm, self.done = comm, comm.size == 1
        self.waiting = set(range(1, comm.size)) if comm.rank == 0 else {0}
        if comm.rank != 0:
            comm._send(0, _RELEASE)

    def Test(self):
        c = self.comm
        for k in [k for k in self.waiting if c._links[k].poll()]:
            c._recv(k)
            self.waiting.discard(k)
        if not self.done and not self.waiting:
            self.done = True
            if c.rank == 0:
                for k in range(1, c.size):
                    c._send(k, _RELEASE)
        return self.done

    def Wait(self):
        while not self.Test():
            time.sleep(0.05)


_interrupt = {"asked": False, "caught": False}    # this process's Ctrl-C: handled, then caught at the top
TICK = 0.05              # seconds: how often a Ctrl-C that was handled but not caught is raised again


def _interrupt_once(signum, frame):
    """A rank's first SIGINT raises KeyboardInterrupt; later ones (the terminal's and the
    supervisor's) are ignored, so that nothing interrupts the tidying up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _interrupt["asked"] = True
    _keep_raising()
    raise KeyboardInterrupt


def _keep_raising():
    """Until the interrupt is caught at the top (``_interrupt["caught"]``), raise it again every TICK
    seconds (an alarm), unless it is being handled then. Python runs a signal handler wherever the
    main thread is, also inside a finaliser (``__del__``, a weakref callback) or a callback HDF5
    makes into Python (h5py's file-object driver), where the KeyboardInterrupt is printed as
    "Exception ignored", or becomes HDF5's error, and is lost."""
    signal.signal(signal.SIGALRM, _interrupt_late)
    signal.setitimer(signal.ITIMER_REAL, TICK, TICK)


def _caught():
    _interrupt["caught"] = True
    signal.setitimer(signal.ITIMER_REAL, 0)


def _interrupt_late(signum, frame):
    if _interrupt["caught"] or isinstance(sys.exc_info()[1], KeyboardInterrupt):
        return                      # arrived after all, or being tidied up after (except, finally)
    raise KeyboardInterrupt


def _interrupt_again(unraisable, _default=sys.unraisablehook):
    """An error Python cannot raise (in a finaliser): after a Ctrl-C it is the interrupt, or what it
    left behind, and is not printed (the alarm raises the interrupt again); otherwise as usual."""
    if not (issubclass(unraisable.exc_type, KeyboardInterrupt) or _interrupt["asked"]):
        _default(unraisable)
        return
    if not _interrupt["caught"]:
        _keep_raising()


def _rank_main(rank, size, pipes, slots, lock, finished, target):
    signal.signal(signal.SIGINT, _interrupt_once)
    sys.unraisablehook = _interrupt_again
    links = {}
    for k, (hub_end, rank_end) in enumerate(pipes, start=1):
        if rank == 0:
            links[k] = hub_end
            rank_end.close()
        elif rank == k:
            links[0] = rank_end
            hub_end.close()
        else:
            hub_end.close()
            rank_end.close()
    try:
        status = target(LocalComm(rank, size, links, slots, lock))
    except KeyboardInterrupt:
        _caught()
        status = 130
    status = int(status or 0)
    finished[rank] = status
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def run_local(n, target, command):
    """``target(comm)`` on ``n`` forked ranks, this process supervising; returns rank 0's status
    (1 when a rank ended without finishing, 130 after Ctrl-C)."""
    _interrupt.update(asked=False, caught=False)     # this run's (the ranks start with it)
    ctx = multiprocessing.get_context("fork")
    pipes = [ctx.Pipe() for _ in range(n - 1)]
    slots, lock = ctx.RawArray("q", SLOTS), ctx.Lock()
    finished = ctx.RawArray("i", [-1] * n)
    procs = [ctx.Process(target=_rank_main, args=(k, n, pipes, slots, lock, finished, target),
                         name=f"readatl06-{command}-{k}") for k in range(n)]
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        for p in procs:
            p.start()
    finally:
        for ends in pipes:
            for end in ends:
                end.close()
    hook, sys.unraisablehook = sys.unraisablehook, _interrupt_again
    try:
        lost = _supervise(procs, finished)
    except KeyboardInterrupt:
        _caught()
        _stop(procs)
        return 130
    finally:
        sys.unraisablehook = hook
        signal.setitimer(signal.ITIMER_REAL, 0)
    if lost is not None:
        k, p = lost
        how = f"was killed by {signal.Signals(-p.exitcode).name}" if p.exitcode < 0 else \
            f"stopped with status {p.exitcode}"
        print(f"readatl06 {command}: error: local rank {k} of {n} (pid {p.pid}) {how} before finishing; "
              "the other ranks were stopped (run again with --resume to redo what was not recorded)",
              file=sys.stderr)
        return 1
    return finished[0]


def _supervise(procs, finished):
    """Wait for every rank; the first that ends without a status stops the others. Returns
    (rank, process) of that one, or None."""
    alive = {p.sentinel: (k, p) for k, p in enumerate(procs)}
    while alive:
        # never blocked for long: a Ctrl-C that the kernel hands to another thread of this process
        # (a library's) only sets Python's flag; the main thread acts on it when it runs again
        for sentinel in multiprocessing.connection.wait(list(alive), timeout=TICK):
            k, p = alive.pop(sentinel)
            p.join()
            if finished[k] < 0:
                _stop([q for _, q in alive.values()])
                return k, p
    return None


def _stop(procs):
    """Interrupt the ranks still running (they remove their temporary files), kill any left after
    GRACE seconds, and reap them all. This process ignores Ctrl-C meanwhile."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for p in procs:
            if p.is_alive():
                try:
                    os.kill(p.pid, signal.SIGINT)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + GRACE
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join()
    finally:
        signal.signal(signal.SIGINT, previous)
