"""Progress over all ranks: the shared counters, the live line and the log lines."""
import io

import pytest

from conftest import every_rank
from readatl06.parallel.world import SerialComm
from readatl06.parallel.progress import Progress


def _records(n, points=10):
    return [{"status": "failed" if i == 1 else "done", "points": points} for i in range(n)]


def test_live_line_on_a_terminal_counts_every_granule():
    tty = io.StringIO()
    p = Progress(SerialComm(), 4, terminal=tty)
    for r in _records(4):
        p.update(r)
    p.close()
    text = tty.getvalue()
    assert "4/4" in text and "30 points, 1 failed" in text        # the failed granule's points not counted


def test_log_lines_without_a_terminal():
    err = io.StringIO()
    p = Progress(SerialComm(), 3, every=0.0, terminal=False, err=err)
    p.bar = None
    for r in _records(3):
        p.update(r)
    p.close()
    lines = err.getvalue().splitlines()
    assert lines[0].startswith("readatl06: progress: 1/3 granules (0 failed), 10 points kept")
    assert "3/3 granules (1 failed), 20 points kept" in lines[-1] and "ETA 0:00:00" in lines[-1]


def test_disabled_progress_prints_nothing():
    err = io.StringIO()
    p = Progress(SerialComm(), 2, enabled=False, err=err)
    for r in _records(2):
        p.update(r)
    p.close()
    assert err.getvalue() == ""


@pytest.mark.mpi(min_size=2)
def test_rank_zero_shows_the_granules_of_all_ranks():
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    tty = io.StringIO()
    p = Progress(comm, 3 * comm.size, terminal=tty if comm.rank == 0 else None)
    for r in [{"status": "done", "points": comm.rank + 1}] * 3:
        p.update(r)
    p.close()
    with every_rank(comm):
        if comm.rank == 0:
            total = 3 * sum(range(1, comm.size + 1))
            assert f"{3 * comm.size}/{3 * comm.size}" in tty.getvalue() and f"{total:,} points" in tty.getvalue()


def test_timings_printed_and_recorded(tmp_path):
    import json

    from conftest import DATA, run_cli
    out = tmp_path / "out"
    r = run_cli("reduce", DATA / "atl06", "-o", out, "--no-progress", "--timings", "--merge", tmp_path / "m.h5")
    assert r.returncode == 0, r.stderr
    line = next(x for x in r.stdout.splitlines() if x.startswith("readatl06 timings (seconds"))
    assert "list " in line and "read and inflate " in line and "filter " in line and "write " in line
    assert "readatl06 timings: merge " in r.stdout
    recs = [json.loads(x) for x in (out / "readatl06-manifest.jsonl").read_text().splitlines()]
    assert all(set(x["timings"]) == {"read", "filter", "write"} and x["bytes_read"] > 0 for x in recs)
    total = sum(x["bytes_read"] for x in recs)
    assert f"{total / 1e6:.1f} MB read" in line
    sizes = sum(p.stat().st_size for p in (DATA / "atl06").glob("*.h5"))
    assert 0 < total < sizes                       # data chunks only, never more than the files


@pytest.mark.mpi(min_size=2)
def test_points_past_2_31_do_not_wrap():
    """The shared counter of points is int64: three granules of 1.5e9 points on each rank add up to
    4.5e9 x ranks (an int32 window wrapped past 2.1e9)."""
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    err = io.StringIO()
    p = Progress(comm, 3 * comm.size, every=0.0, terminal=False, err=err if comm.rank == 0 else None)
    for r in [{"status": "done", "points": 1_500_000_000}] * 3:
        p.update(r)
    p.close()
    with every_rank(comm):
        if comm.rank == 0:
            total = 3 * comm.size * 1_500_000_000
            assert f"{total:,} points kept" in err.getvalue().splitlines()[-1], err.getvalue()
