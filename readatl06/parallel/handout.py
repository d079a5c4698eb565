"""Dynamic hand-out of work: a counter shared by every rank (an MPI window), each item to exactly
one rank, the next to whichever rank asks first."""
import contextlib

from readatl06.parallel.world import SerialComm


class _LocalCounter:
    def __init__(self):
        self.value = 0

    def next(self, incr=1):
        self.value += incr
        return self.value - incr

    def free(self):
        pass


@contextlib.contextmanager
def shared_counter(comm):
    """A counter every rank of ``comm`` draws from (0, 1, 2, ... each value to exactly one rank):
    ``mpi4py.util.sync.Counter`` (an MPI window of one int64, Fetch_and_op: the points of a continent,
    past 2^31, do not wrap) — no rank idles as a master. With
    one rank or without mpi4py, a plain local counter; local workers (``-j``, :mod:`.local`) share
    one in memory. Creation and release are collective."""
    if comm.size == 1 or isinstance(comm, SerialComm):
        yield _LocalCounter()
        return
    if hasattr(comm, "shared_counter"):
        yield comm.shared_counter()
        return
    from mpi4py.util.sync import Counter
    counter = Counter(comm=comm, typecode="q")
    try:
        yield counter
    finally:
        counter.free()


def hand_out(comm, order):
    """The items of ``order`` (the same list on every rank), each to exactly one rank, the next one
    to whichever rank asks first (a dynamic schedule over :func:`shared_counter`). Collective."""
    with shared_counter(comm) as counter:
        while True:
            k = counter.next()
            if k >= len(order):
                break
            yield order[k]
