"""The one place that imports mpi4py eagerly-on-demand: communicator, abort-on-error, gathers."""
import contextlib
import os
import sys
import time
import traceback

ABORT_GRACE = 0.5    # s between a failing rank's message and MPI_Abort
LAUNCHER_RANK_VARS = ("OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK", "SLURM_PROCID", "MV2_COMM_WORLD_RANK")


def launcher_rank():
    """This process's rank as the MPI launcher announced it (0 without a launcher), without importing MPI."""
    for var in LAUNCHER_RANK_VARS:
        value = os.environ.get(var)
        if value and value.isdigit():
            return int(value)
    return 0


def launched_by_mpirun():
    return any(v in os.environ for v in LAUNCHER_RANK_VARS[:3] + ("OMPI_COMM_WORLD_SIZE",))


def world():
    """COMM_WORLD (initialising MPI) under an MPI launcher; otherwise, or without mpi4py, a one-rank
    stand-in that behaves like COMM_SELF (MPI is never initialised for a plain one-process run)."""
    if not launched_by_mpirun():
        return SerialComm()
    try:
        from mpi4py import MPI
    except ImportError:
        if launched_by_mpirun():
            raise RuntimeError("started under mpirun but mpi4py cannot be imported") from None
        return SerialComm()
    if os.environ.get("READATL06_TRAFFIC"):     # the benches' byte and memory counts (parallel/traffic.py)
        from readatl06.parallel.traffic import counted
        return counted(MPI.COMM_WORLD)
    return MPI.COMM_WORLD


class SerialComm:
    """What the code needs of a communicator, for one process without mpi4py."""

    rank, size = 0, 1

    def bcast(self, obj, root=0):
        return obj

    def gather(self, obj, root=0):
        return [obj]

    def allgather(self, obj):
        return [obj]

    def allreduce(self, obj, op=None):
        return obj

    def barrier(self):
        pass

    Barrier = barrier

    def Abort(self, code=1):
        os._exit(code)


class ElsewhereError(RuntimeError):
    """This rank stops because another rank failed in a phase they went through together; that rank
    says why (``abort_on_error`` prints nothing for this one)."""


def first_error(comm, message):
    """The first rank's error message of a phase every rank went through (None: no rank failed), the
    same on every rank: one allgather, so that all ranks stop together and rank 0 says why."""
    if comm.size == 1:
        return message
    return next((m for m in comm.allgather(message) if m), None)


def cause(exc):
    """One line naming what went wrong (``readatl06.errors.one_line``: a readatl06 error's own message,
    which names the file; an OS or HDF5 error's file and reason; else the exception's type and text)."""
    from readatl06.errors import one_line
    return one_line(exc)


@contextlib.contextmanager
def abort_on_error(comm, prefix="readatl06"):
    """An unhandled exception on any rank aborts the whole job instead of leaving the others waiting
    in a collective call: the failing rank prints ONE line first, ``<prefix>: error: <cause> (rank r
    of n: all ranks stopped)`` (the whole traceback only with ``READATL06_TRACEBACK=1``), then calls
    ``MPI_Abort``. A phase that can fail on one rank must not make a collective call on its
    error path (a ``finally`` that closes a parallel file collectively would wait for ranks that never
    come): the merge makes no collective HDF5 call at all. Local workers (``-j``) are all
    interrupted by Ctrl-C together: each just unwinds."""
    try:
        yield
    except SystemExit:
        raise
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt) and getattr(comm, "INTERRUPTED_TOGETHER", False):
            raise                                # -j: every worker got the Ctrl-C; each unwinds
        if comm.size > 1 and isinstance(exc, ElsewhereError):
            time.sleep(2 * ABORT_GRACE)      # the rank that failed prints its line and aborts first
            comm.Abort(1)
        elif comm.size > 1:
            sys.stderr.write(f"{prefix}: error: {cause(exc)} (rank {comm.rank} of {comm.size}: all ranks stopped)\n")
            if os.environ.get("READATL06_TRACEBACK"):      # the whole traceback only when asked for
                traceback.print_exc()
            sys.stderr.flush()
            time.sleep(ABORT_GRACE)      # the launcher forwards the line before its own abort text
            comm.Abort(1)
        raise


