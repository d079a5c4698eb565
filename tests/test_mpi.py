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

from conftest import DATA, REAL, ROOT, run_cli, every_rank
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
               OMPI_MCA_rmaps_base_oversubscribe="1",
               PYTHONPATH=os.pathsep.join([str(ROOT)] + os.environ.get("PYTHONPATH", "").split(os.pathsep)))
    r = subprocess.run(["mpirun", "-n", "2", sys.executable, str(script)], capture_output=True, text=True,
                       timeout=60, env=env)
    assert r.returncode != 0 and "boom on rank 1" in r.stderr
    first = r.stderr.lstrip().splitlines()[0]          # the cause first, in one line; the traceback after
    assert first == "readatl06: error: RuntimeError: boom on rank 1 (rank 1 of 2: all ranks stopped)", r.stderr


# ----------------------------------------------------------------------------- issue 22, item 14
# One rank's error in a collective phase ends the whole job within seconds, non-zero, with one line
# naming the file first (before it: nothing; after it, Open MPI's own abort text may follow).
@pytest.fixture(scope="module")
def chunked_outdir(tmp_path_factory):
    """2 synthetic granules reduced: per-beam files of ~6000 points, each dataset one deflated chunk."""
    from readatl06.cli import main
    d = tmp_path_factory.mktemp("bad")
    assert main(["synth", str(d / "g"), "--granules", "2", "--segments-per-beam", "6000", "--seed", "7"]) == 0
    assert main(["reduce", str(d / "g"), "-o", str(d / "t"), "--no-progress"]) == 0
    return d


def _last_file(outdir):
    """A per-beam file of the run's last granule (read by the last rank of 2), with a chunked h_elv."""
    files = sorted(glob.glob(os.path.join(outdir, "*_gt2l_[AD].h5")))
    for p in reversed(files):
        with h5py.File(p, "r") as f:
            if f["h_elv"].chunks:
                return p
    raise AssertionError("no chunked per-beam file")


def shorten_h_elv(path):
    """``h_elv`` 7 points shorter than ``lat`` (attributes kept)."""
    with h5py.File(path, "r+") as f:
        data, attrs = f["h_elv"][()], {k: v for k, v in f["h_elv"].attrs.items() if k != "DIMENSION_LIST"}
        del f["h_elv"]
        d = f.create_dataset("h_elv", data=data[:-7])
        d.attrs.update(attrs)


def corrupt_h_elv(path):
    """The deflate stream of ``h_elv``'s first chunk broken in its middle (metadata intact: every
    check before the work passes, the read fails)."""
    with h5py.File(path, "r") as f:
        info = f["h_elv"].id.get_chunk_info(0)
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, b"\xff" * 64, info.byte_offset + info.size // 2)
    finally:
        os.close(fd)


def rerecord(path):
    """The record of ``path``'s granule made to match the tampered file (its size; no checksum, as a
    record made before checksums were recorded): nothing before the read can tell, the read fails."""
    manifest = os.path.join(os.path.dirname(path), "readatl06-manifest.jsonl")
    with open(manifest) as fh:
        recs = [json.loads(x) for x in fh]
    name = os.path.basename(path)
    for rec in recs:
        if name in rec.get("sizes", {}):
            rec["sizes"][name] = os.path.getsize(path)
            rec.pop("sha256", None)
    with open(manifest, "w") as fh:
        fh.writelines(json.dumps(rec) + "\n" for rec in recs)


def copy_outdir(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("readatl06.lock"))
    return dst


def assert_one_line_cause(r, command, path, words):
    """Non-zero, and the first line on stderr is ``readatl06 <command>: error: ...`` naming ``path``
    and saying ``words``."""
    assert r.returncode != 0, r.stdout
    first = r.stderr.lstrip().splitlines()[0]
    assert first.startswith(f"readatl06 {command}: error: "), r.stderr
    assert os.path.basename(path) in first and words in first, r.stderr
    assert "Traceback" not in r.stderr, r.stderr


def merge_tampered(chunked_outdir, tmp_path, tamper):
    """``mpirun -n 2 readatl06 merge`` of a copy of the folder whose last file ``tamper`` spoiled
    (and re-recorded): (the completed process, the spoiled file)."""
    out = copy_outdir(chunked_outdir / "t", tmp_path / "t")
    bad = _last_file(out)
    tamper(bad)
    rerecord(bad)
    return run_cli("merge", out, "-o", tmp_path / "m.h5", ranks=2, timeout=60), bad


def test_merge_with_a_short_dataset_ends_every_rank_with_one_line(chunked_outdir, tmp_path):
    """Before: the rank that read the bad file waited in the collective close, the other in
    Alltoallv/H5Dwrite, until killed. Now every rank checks its files and they agree before any
    collective phase: exit 2, one line."""
    r, bad = merge_tampered(chunked_outdir, tmp_path, shorten_h_elv)
    assert_one_line_cause(r, "merge", bad, "h_elv (")
    assert r.returncode == 2 and not (tmp_path / "m.h5").exists()


def test_merge_with_a_corrupt_chunk_aborts_every_rank_with_one_line(chunked_outdir, tmp_path):
    """A file whose metadata are fine and whose data cannot be read fails inside the merge, on the
    rank that reads it: that rank says so in one line and aborts the job (no collective HDF5 call is
    left waiting)."""
    r, bad = merge_tampered(chunked_outdir, tmp_path, corrupt_h_elv)
    assert_one_line_cause(r, "merge", bad, "cannot read")
    assert not (tmp_path / "m.h5").exists()


def test_reduce_merge_with_a_bad_resumed_file_ends_every_rank_with_one_line(chunked_outdir, tmp_path):
    """``reduce --resume --merge``: a finished granule's per-beam file (its size recorded again, so
    --resume trusts it) is read back by the merge."""
    out = copy_outdir(chunked_outdir / "t", tmp_path / "t")
    bad = _last_file(out)
    shorten_h_elv(bad)
    rerecord(bad)
    manifest = out / "readatl06-manifest.jsonl"
    recs = [json.loads(x) for x in manifest.read_text().splitlines()]
    for rec in recs:
        if os.path.basename(bad) in rec.get("sizes", {}):
            rec["sizes"][os.path.basename(bad)] = os.path.getsize(bad)
    manifest.write_text("".join(json.dumps(rec) + "\n" for rec in recs))
    r = run_cli("reduce", chunked_outdir / "g", "-o", out, "--resume", "--merge", tmp_path / "m.h5",
                "--no-progress", ranks=2, timeout=60)
    assert r.returncode == 1 and not (tmp_path / "m.h5").exists(), r.stderr
    lines = [x for x in r.stderr.splitlines() if "error" in x]
    assert lines and lines[0].startswith("readatl06 merge: error: ") and os.path.basename(bad) in lines[0], r.stderr
    assert "h_elv (" in lines[0] and "Traceback" not in r.stderr


@pytest.mark.parametrize("command", ["export", "xover"])
def test_export_and_xover_with_a_corrupt_chunk_end_every_rank_with_one_line(chunked_outdir, tmp_path, command):
    out = copy_outdir(chunked_outdir / "t", tmp_path / "t")
    bad = _last_file(out)
    corrupt_h_elv(bad)
    rerecord(bad)
    target = tmp_path / ("x.parquet" if command == "export" else "x.h5")
    r = run_cli(command, out, "-o", target, ranks=2, timeout=60)
    assert_one_line_cause(r, command, bad, "cannot be read" if command == "xover" else "cannot read")
    assert not target.exists()
