"""Parallel runs: the same data with any number of ranks; errors never hang the job.

The ``mpi`` tests run under ``mpirun -n 2`` and ``-n 4`` (``--with-mpi``); the others start
``mpirun`` themselves from a serial pytest.
"""
import glob
import json
import os
import shutil
import sys
import textwrap

import h5py
import pytest

from conftest import DATA, REAL, run_cli, every_rank
from readatl06.atl06.names import Selection
from readatl06.reduce.granule import ReduceOptions
from readatl06.reduce.run import run_reduce

ALL = Selection(all_releases=True)        # every real granule: the comparisons count them all


def file_contents(outdir):
    out = {}
    for p in sorted(glob.glob(os.path.join(outdir, "*_gt??_[AD].h5"))):
        with h5py.File(p, "r") as f:
            out[os.path.basename(p)] = ({k: f[k][()] for k in f}, dict(f.attrs))
    return out


def assert_same(a, b):
    assert sorted(a) == sorted(b) and a
    for name in a:
        (da, aa), (db, ab) = a[name], b[name]
        assert sorted(da) == sorted(db)
        for k in da:
            assert da[k].dtype == db[k].dtype and da[k].tobytes() == db[k].tobytes(), (name, k)
        assert {k: str(v) for k, v in aa.items()} == {k: str(v) for k, v in ab.items()}


@pytest.mark.mpi(min_size=2)
def test_reduce_identical_with_any_rank_count(mpi_tmp_path, mpi_real_dir):
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    src = mpi_real_dir
    status = run_reduce(comm, [str(src)], ALL, ReduceOptions(), str(mpi_tmp_path / "world"))
    assert status == 0
    with every_rank(comm):
        if comm.rank == 0:
            assert run_reduce(MPI.COMM_SELF, [str(src)], ALL, ReduceOptions(), str(mpi_tmp_path / "self")) == 0
            assert_same(file_contents(mpi_tmp_path / "world"), file_contents(mpi_tmp_path / "self"))
            with open(mpi_tmp_path / "world" / "readatl06-manifest.jsonl") as fh:
                recs = [json.loads(x) for x in fh]
            assert len(recs) == len(REAL) and {r["rank"] for r in recs} <= set(range(comm.size))
            assert not glob.glob(str(mpi_tmp_path / "world" / "readatl06-manifest.part-*"))
    comm.Barrier()


@pytest.mark.mpi(min_size=2)
def test_static_and_dynamic_schedules_give_identical_outputs_and_merged_files(mpi_tmp_path, mpi_real_dir):
    """--schedule static and dynamic, on all ranks and on one: same per-beam files, same merged file."""
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    runs = {}
    for how in ("dynamic", "static"):
        out = str(mpi_tmp_path / how)
        assert run_reduce(comm, [str(mpi_real_dir)], ALL, ReduceOptions(), out, schedule_how=how,
                          merge_path=out + ".h5") == 0
        runs[how] = out
    with every_rank(comm):
        if comm.rank == 0:
            one = str(mpi_tmp_path / "one")
            assert run_reduce(MPI.COMM_SELF, [str(mpi_real_dir)], ALL, ReduceOptions(), one,
                              merge_path=one + ".h5") == 0
            for how, out in runs.items():
                assert_same(file_contents(out), file_contents(one))
                with h5py.File(out + ".h5", "r") as f, h5py.File(one + ".h5", "r") as g:
                    names = []
                    f.visit(names.append)
                    for n in names:
                        if isinstance(f[n], h5py.Dataset):
                            assert f[n][()].tobytes() == g[n][()].tobytes(), (how, n)
            with open(os.path.join(runs["dynamic"], "readatl06-manifest.jsonl")) as fh:
                assert sorted(json.loads(x)["granule"] for x in fh) == sorted(p.name for p in REAL)
    comm.Barrier()


@pytest.mark.mpi(min_size=2)
def test_bad_granule_on_one_rank_does_not_hang(mpi_tmp_path):
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    src = mpi_tmp_path / "bad"
    with every_rank(comm):
        if comm.rank == 0:
            src.mkdir()
            shutil.copy(REAL[0], src / REAL[0].name)
            data = REAL[1].read_bytes()
            (src / REAL[1].name).write_bytes(data[: len(data) // 3])
    comm.Barrier()
    status = run_reduce(comm, [str(src)], Selection(all_releases=True), ReduceOptions(), str(mpi_tmp_path / "out"))
    assert status == 1       # the same on every rank


def test_cli_under_mpirun_prints_summary_once(tmp_path):
    out1, out2 = tmp_path / "n1", tmp_path / "n2"
    r1 = run_cli("reduce", "--all-releases", DATA / "atl06", "-o", out1, "--no-progress")
    r2 = run_cli("reduce", "--all-releases", DATA / "atl06", "-o", out2, "--no-progress", ranks=2)
    assert r1.returncode == 0 and r2.returncode == 0, r2.stderr
    assert r2.stdout.count("readatl06 summary") == 1 and "on 2 ranks" in r2.stdout
    assert f"{len(REAL)} done" in r2.stdout
    assert_same(file_contents(out1), file_contents(out2))


def test_usage_error_under_mpirun_exits_2_quietly(tmp_path):
    r = run_cli("reduce", "--all-releases", DATA / "atl06", "-o", tmp_path / "o", "--segments", "99", ranks=2)
    assert r.returncode == 2
    assert r.stderr.count("--segments") == 1     # printed by rank 0 only


def test_unhandled_error_aborts_all_ranks(tmp_path):
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent("""
        import time
        from readatl06.parallel.world import abort_on_error, world
        comm = world()
        with abort_on_error(comm):
            if comm.rank == 1:
                raise RuntimeError("boom on rank 1")
            comm.barrier()          # rank 0 would wait here forever without the abort
    """))
    import subprocess
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1")
    r = subprocess.run(["mpirun", "-n", "2", sys.executable, str(script)], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode != 0 and "boom on rank 1" in r.stderr
