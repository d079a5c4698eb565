"""What one rank sends and receives in MPI collectives, and its peak memory: instrumentation for the
benches (``bench/bench_continent.py``), off unless ``READATL06_TRAFFIC=FOLDER`` is set.

When it is set, :func:`counted` wraps COMM_WORLD in :class:`CountingComm` (the same communicator, an
``MPI.Intracomm`` subclass, so h5py's MPI-IO driver takes it), which adds up the bytes of every
collective and point-to-point call the code makes on it: a pickled object's bytes as pickled, a
buffer's as its MPI counts × the datatype's extent. At exit each rank writes
``FOLDER/rank-<r>.json``: ``maxrss_kib`` (``getrusage`` ru_maxrss) and per operation ``calls``,
``sent`` and ``received`` bytes (a broadcast: sent by the root, received by every other rank; an
allgather: each sends its part and receives everyone's). HDF5's own MPI-IO traffic and messages
inside mpi4py helpers (the shared counter's window) are not counted.
"""
import atexit
import json
import os
import pickle
import resource

ENV = "READATL06_TRAFFIC"


def _size(obj):
    return len(pickle.dumps(obj, pickle.HIGHEST_PROTOCOL))


def _nbytes(spec):
    """Bytes a buffer specification describes: ``array``, ``[array, datatype]`` or
    ``[array, (counts, displacements), datatype]`` (the counts summed)."""
    if spec is None:
        return 0
    if not isinstance(spec, (list, tuple)):
        return memoryview(spec).nbytes
    buf = spec[0]
    if len(spec) == 3 and isinstance(spec[1], (list, tuple)):
        return int(sum(spec[1][0])) * spec[2].Get_extent()[1]
    return memoryview(buf).nbytes


def _both_ways(MPI, name):
    """The buffer collective ``name`` (every rank sends ``sendbuf`` and receives ``recvbuf``), counted."""
    def call(self, sendbuf, recvbuf):
        getattr(MPI.Intracomm, name)(self, sendbuf, recvbuf)
        self._add(name, _nbytes(sendbuf), _nbytes(recvbuf))
    call.__name__ = name
    return call


def counting_class():
    from mpi4py import MPI

    class CountingComm(MPI.Intracomm):
        """COMM_WORLD whose calls add their bytes to ``self.tally`` (operation -> [calls, sent, received])."""

        def _add(self, op, sent, received):
            row = self.tally.setdefault(op, [0, 0, 0])
            row[0] += 1
            row[1] += sent
            row[2] += received

        def bcast(self, obj, root=0):
            out = super().bcast(obj, root)
            n = _size(out)
            self._add("bcast", n if self.rank == root else 0, 0 if self.rank == root else n)
            return out

        def gather(self, obj, root=0):
            out = super().gather(obj, root)
            self._add("gather", _size(obj), sum(map(_size, out)) if self.rank == root else 0)
            return out

        def scatter(self, objs, root=0):
            out = super().scatter(objs, root)
            self._add("scatter", sum(map(_size, objs)) if self.rank == root else 0, _size(out))
            return out

        def allgather(self, obj):
            out = super().allgather(obj)
            self._add("allgather", _size(obj), sum(map(_size, out)))
            return out

        def allreduce(self, obj, op=MPI.SUM):
            out = super().allreduce(obj, op)
            self._add("allreduce", _size(obj), _size(out))
            return out

        def send(self, obj, dest, tag=0):
            self._add("p2p", _size(obj), 0)
            return super().send(obj, dest, tag)

        def recv(self, buf=None, source=MPI.ANY_SOURCE, tag=MPI.ANY_TAG, status=None):
            out = super().recv(buf, source, tag, status)
            self._add("p2p", 0, _size(out))
            return out

        Alltoall, Alltoallv = _both_ways(MPI, "Alltoall"), _both_ways(MPI, "Alltoallv")
        Allgather, Allgatherv = _both_ways(MPI, "Allgather"), _both_ways(MPI, "Allgatherv")

        def Gatherv(self, sendbuf, recvbuf, root=0):
            super().Gatherv(sendbuf, recvbuf, root)
            self._add("Gatherv", _nbytes(sendbuf), _nbytes(recvbuf) if self.rank == root else 0)

        def Allreduce(self, sendbuf, recvbuf, op=MPI.SUM):
            super().Allreduce(sendbuf, recvbuf, op)
            self._add("Allreduce", _nbytes(recvbuf), _nbytes(recvbuf))

        def Bcast(self, buf, root=0):
            super().Bcast(buf, root)
            n = _nbytes(buf)
            self._add("Bcast", n if self.rank == root else 0, 0 if self.rank == root else n)

    return CountingComm


def counted(comm):
    """``comm`` itself, or with ``READATL06_TRAFFIC`` set a counting view of it whose tally and the
    peak memory are written at exit."""
    folder = os.environ.get(ENV)
    if not folder:
        return comm
    view = counting_class()(comm)
    view.tally = {}
    path = os.path.join(folder, f"rank-{comm.rank}.json")
    atexit.register(write_report, view, path)
    return view


def write_report(view, path):
    report = {"rank": view.rank, "size": view.size,
              "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              "ops": {op: dict(zip(("calls", "sent", "received"), row)) for op, row in sorted(view.tally.items())}}
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as fh:
        json.dump(report, fh, sort_keys=True)
