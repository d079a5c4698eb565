"""The one place that imports mpi4py eagerly-on-demand: communicator, abort-on-error, gathers."""
import contextlib
import os
import sys
import traceback

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


@contextlib.contextmanager
def abort_on_error(comm):
    """An unhandled exception on any rank aborts the whole job instead of leaving the others waiting.
    (Local workers, ``-j``, are all interrupted by Ctrl-C together: each just unwinds.)"""
    try:
        yield
    except SystemExit:
        raise
    except KeyboardInterrupt:
        if comm.size > 1 and not getattr(comm, "INTERRUPTED_TOGETHER", False):
            _abort(comm)
        raise
    except BaseException:
        if comm.size > 1:
            _abort(comm)
        raise


def _abort(comm):
    sys.stderr.write(f"readatl06: rank {comm.rank}: unhandled error, aborting all ranks\n")
    traceback.print_exc()
    sys.stderr.flush()
    comm.Abort(1)


def mpi_info():
    """An empty ``MPI.Info`` (no MPI-IO hints), what h5py's ``mpio`` driver passes by default."""
    from mpi4py import MPI
    return MPI.Info()
