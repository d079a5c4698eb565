"""The one exchange helper (readatl06.parallel.exchange): records of a structured dtype to their
destination ranks, buffers by counts, gathers to rank 0 — checked on every rank against the arrays
each rank must receive (``mpi`` tests: mpirun -n 2 and -n 4)."""
import numpy as np
import pytest

from readatl06.parallel.exchange import allreduce_array, alltoallv, exchange, gatherv
from readatl06.parallel.world import SerialComm

LINE = np.dtype([("x0", "f8"), ("y0", "f8"), ("t", "f8", (2,)), ("orbit", "i8"), ("beam", "i1"), ("plane", "i1")])
PACKED = np.dtype([("line", LINE), ("tile", "i8"), ("ascending", "?")])              # as xover's records
ALIGNED = np.dtype([("flag", "?"), ("value", "f8"), ("code", "i2")], align=True)    # with padding


def records(dtype, rank, size):
    """Rank ``rank``'s records (3 + 2 * rank + size of them, every value naming its rank and index)
    and their destinations; rank 1 sends nothing."""
    n = 0 if rank == 1 else 3 + 2 * rank + size
    i = np.arange(n)
    rec = np.zeros(n, dtype)
    if "line" in dtype.names:
        rec["line"]["x0"], rec["line"]["y0"] = rank + i / 8, -rank - i / 16
        rec["line"]["t"] = np.stack([i * 1.5, i * 2.5 + rank], axis=1)
        rec["line"]["orbit"], rec["line"]["beam"], rec["line"]["plane"] = 10 ** 12 * rank + i, i % 6 + 1, i % 2
        rec["tile"], rec["ascending"] = 1000 * rank + i, i % 3 == 0
    else:
        rec["flag"], rec["value"], rec["code"] = i % 2 == 1, rank + i / 4, 100 * rank + i
    dest = (rank + 3 * i + i // 4) % size
    return rec, dest


def expected(dtype, rank, size):
    """What ``rank`` receives: each source's records for it, sources in rank order, in their order."""
    return np.concatenate([rec[dest == rank] for rec, dest in (records(dtype, s, size) for s in range(size))])


def same(got, want):
    return got.dtype == want.dtype and got.shape == want.shape and all(
        np.array_equal(got[name], want[name]) for name in want.dtype.names)


def test_one_rank_keeps_its_records_in_order():
    rec, dest = records(PACKED, 0, 1)
    assert same(exchange(SerialComm(), rec, dest), rec)
    assert same(alltoallv(SerialComm(), rec, [rec.size]), rec)
    assert gatherv(SerialComm(), rec) is rec


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("dtype", [PACKED, ALIGNED], ids=["packed", "aligned"])
def test_exchange_structured_records_to_their_ranks(dtype):
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    rec, dest = records(dtype, comm.rank, comm.size)
    got = exchange(comm, rec, dest)
    ok = comm.allgather(same(got, expected(dtype, comm.rank, comm.size)))     # every rank sees every verdict
    assert ok == [True] * comm.size, ok


@pytest.mark.mpi(min_size=2)
def test_alltoallv_with_known_counts_and_gatherv():
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    rank, size = comm.rank, comm.size
    # plain numbers: rank r sends (r + 1) * (d + 1) values to rank d, counts known on both sides
    scounts = np.array([(rank + 1) * (d + 1) for d in range(size)], np.int64)
    rcounts = np.array([(s + 1) * (rank + 1) for s in range(size)], np.int64)
    buf = np.concatenate([np.full(c, 100.0 * rank + d) for d, c in enumerate(scounts)])
    got = alltoallv(comm, buf, scounts, rcounts)
    verdicts = [got.dtype == np.float64 and np.array_equal(got, np.concatenate(
        [np.full(c, 100.0 * s + rank) for s, c in enumerate(rcounts)]))]
    # structured, counts exchanged (rcounts None)
    rec, dest = records(PACKED, rank, size)
    order = np.argsort(dest, kind="stable")
    got = alltoallv(comm, rec[order], np.bincount(dest, minlength=size))
    verdicts.append(same(got, expected(PACKED, rank, size)))
    # gathered to rank 0 in rank order
    got = gatherv(comm, rec)
    verdicts.append(same(got, np.concatenate([records(PACKED, s, size)[0] for s in range(size)])) if rank == 0
                    else got is None)
    every = comm.allgather(verdicts)                                       # every rank sees every verdict
    assert every == [[True] * 3] * size, every


@pytest.mark.mpi(min_size=2)
def test_allreduce_array_sums_and_extremes_like_numpy_over_the_ranks():
    """Every rank gets numpy's reduction of every rank's array (int64 and float64), and one rank
    or a communicator without ``Allreduce`` (local workers: a pickled allreduce) gives the same."""
    from mpi4py import MPI
    from readatl06.parallel.local import LocalComm
    comm = MPI.COMM_WORLD

    def mine(r):
        return np.arange(5, dtype=np.int64) * (r + 1) - 3 * r, np.array([-r - 0.5, r * 2.0, np.inf if r == 1 else -1.0])
    every = [mine(r) for r in range(comm.size)]
    verdicts = []
    for k, array in enumerate(mine(comm.rank)):
        for op, fn in (("sum", np.sum), ("max", np.max), ("min", np.min)):
            want = fn(np.stack([e[k] for e in every]), axis=0)
            got = allreduce_array(comm, array, op)
            verdicts.append(got.dtype == array.dtype and np.array_equal(got, want))
            pickled = LocalComm.__new__(LocalComm)             # only its allreduce (over allgather) is used
            pickled.size, pickled.allgather = comm.size, comm.allgather
            verdicts.append(np.array_equal(allreduce_array(pickled, array, op), want))
    verdicts.append(np.array_equal(allreduce_array(SerialComm(), every[0][0], "max"), every[0][0]))
    ok = comm.allgather(all(verdicts))
    assert ok == [True] * comm.size, (ok, verdicts)


# ----------------------------------------------------------------------------- chunked: past 2^31
@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("limit", ["", "64", "1"], ids=["default", "64-bytes", "1-byte"])
def test_chunked_collectives_equal_the_unchunked(monkeypatch, limit):
    """With ``READATL06_MPI_CHUNK_BYTES`` tiny, every helper splits its collective into many rounds
    (so the path that keeps counts below 2^31 runs on small data) and returns what each rank must
    receive, element for element: Alltoallv (counts known and exchanged), Gatherv, Allgatherv, the
    bytes and objects built on it, objects gathered to rank 0, Bcast of an array and of an object;
    and the sum of every rank's array (xover's tile loads)."""
    from mpi4py import MPI

    from readatl06.parallel import exchange as ex
    monkeypatch.setenv(ex.CHUNK_ENV, limit)
    comm = MPI.COMM_WORLD
    rank, size = comm.rank, comm.size
    rec, dest = records(PACKED, rank, size)
    verdicts = [same(exchange(comm, rec, dest), expected(PACKED, rank, size))]
    scounts = np.array([(rank + 1) * (d + 1) for d in range(size)], np.int64)
    rcounts = np.array([(s + 1) * (rank + 1) for s in range(size)], np.int64)
    buf = np.concatenate([np.full(c, 100.0 * rank + d) for d, c in enumerate(scounts)])
    verdicts.append(np.array_equal(ex.alltoallv(comm, buf, scounts, rcounts), np.concatenate(
        [np.full(c, 100.0 * s + rank) for s, c in enumerate(rcounts)])))
    every = np.concatenate([records(ALIGNED, s, size)[0] for s in range(size)])
    mine = records(ALIGNED, rank, size)[0]
    got = ex.gatherv(comm, mine)
    verdicts.append(same(got, every) if rank == 0 else got is None)
    got, counts = ex.allgatherv(comm, mine)
    verdicts.append(same(got, every) and counts.tolist() == [records(ALIGNED, s, size)[0].size for s in range(size)])
    words = [f"r{rank}-{i}".encode() * (i + 1) for i in range(rank + 2)]
    verdicts.append(ex.allgather_bytes(comm, words) == [f"r{s}-{i}".encode() * (i + 1)
                                                          for s in range(size) for i in range(s + 2)])
    verdicts.append(ex.allgather_objects(comm, [{"rank": rank}, None]) == [x for s in range(size)
                                                                             for x in ({"rank": s}, None)])
    grid = np.arange(1000, dtype=np.int64).reshape(10, 100) * 7
    verdicts.append(np.array_equal(ex.bcast_array(comm, grid if rank == 0 else None), grid))
    verdicts.append(ex.bcast_object(comm, {"files": ["a" * 100] * 30} if rank == 0 else None) == {"files": ["a" * 100] * 30})
    got = ex.gather_objects(comm, {"rank": rank, "records": list(range(rank * 7))})
    verdicts.append(got == [{"rank": s, "records": list(range(s * 7))} for s in range(size)] if rank == 0
                    else got is None)
    load = np.arange(12, dtype=np.int64) * (rank + 1)
    verdicts.append(np.array_equal(ex.allreduce_array(comm, load), np.arange(12) * sum(range(1, size + 1))))
    every_verdict = comm.allgather(verdicts)
    assert every_verdict == [[True] * len(verdicts)] * size, every_verdict


def test_chunk_setting_is_checked(monkeypatch):
    from readatl06.errors import UsageError
    from readatl06.parallel import exchange as ex
    monkeypatch.setenv(ex.CHUNK_ENV, "")
    assert ex.chunk_bytes() == ex.DEFAULT_CHUNK_BYTES == 1 << 30
    monkeypatch.setenv(ex.CHUNK_ENV, "64")
    assert ex.chunk_bytes() == 64
    for bad in ("0", "2gb", str(1 << 31)):
        monkeypatch.setenv(ex.CHUNK_ENV, bad)
        with pytest.raises(UsageError, match=f"{ex.CHUNK_ENV}={bad!r}: expected a whole number"):
            ex.chunk_bytes()


@pytest.mark.mpi(min_size=2)
def test_rounds_are_counted_and_sent_bytes_are_the_payload(monkeypatch):
    """A 1-byte limit makes Allgatherv of n float64 per rank take n rounds (one element per round);
    the counter says this rank put in its own bytes once plus 16 bytes (its count and its limit)."""
    from mpi4py import MPI

    from readatl06.parallel import exchange as ex
    comm = MPI.COMM_WORLD
    monkeypatch.setenv(ex.CHUNK_ENV, "1")
    calls = []
    real = comm.Allgatherv

    class Counting:
        rank, size = comm.rank, comm.size

        def __getattr__(self, name):
            return getattr(comm, name)

        def Allgatherv(self, *args):
            calls.append(1)
            return real(*args)

    ex.reset_sent()
    got, _ = ex.allgatherv(Counting(), np.full(5, float(comm.rank)))
    ok = [np.array_equal(got, np.repeat(np.arange(comm.size, dtype=float), 5)), len(calls) == 5,
          ex.sent["bytes"] == 5 * 8 + 16]
    assert comm.allgather(ok) == [[True] * 3] * comm.size


@pytest.mark.mpi(min_size=2)
def test_ranks_given_different_limits_agree_on_the_smallest(monkeypatch):
    """A limit set on some ranks only (rank 0 the default, the others 1 byte): the ranks agree on
    the rounds (the smallest limit) and every helper returns what it must — no hang, no mix-up."""
    from mpi4py import MPI

    from readatl06.parallel import exchange as ex
    comm = MPI.COMM_WORLD
    rank, size = comm.rank, comm.size
    monkeypatch.setenv(ex.CHUNK_ENV, "" if rank == 0 else "1")
    rec, dest = records(PACKED, rank, size)
    verdicts = [same(exchange(comm, rec, dest), expected(PACKED, rank, size))]
    got, _ = ex.allgatherv(comm, rec)
    verdicts.append(same(got, np.concatenate([records(PACKED, s, size)[0] for s in range(size)])))
    got = ex.gatherv(comm, rec)
    verdicts.append(same(got, np.concatenate([records(PACKED, s, size)[0] for s in range(size)])) if rank == 0
                    else got is None)
    grid = np.arange(300, dtype=np.float32)
    verdicts.append(np.array_equal(ex.bcast_array(comm, grid if rank == 0 else None), grid))
    assert comm.allgather(verdicts) == [[True] * 4] * size
