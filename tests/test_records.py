"""An OUTDIR that can be trusted (issue 22 items 10, 11, 12; issue 24 items 1, 2), through the command
line: readers take only granules with a complete record of one parameter set; an output is reserved
for its run; leftovers of live runs are kept; every output has a checksum that readers check and
``readatl06 verify`` reports; manifest lines that are no record are kept aside; a read-only folder
is read and a file system without flock has a fallback. The ``mpi`` tests run under mpirun -n 2."""
import errno
import fcntl
import json
import os
import shutil
import subprocess

import h5py
import pytest

from conftest import DATA, run_cli
from readatl06.cli import main

GOOD = ["ATL06_20230816161508_08782002_006_02.h5", "processed_ATL06_20181115223845_07380102_001_01.h5",
        "ATL06_20181014001049_02350102_003_01.h5"]
MANIFEST = "readatl06-manifest.jsonl"


@pytest.fixture(scope="module")
def reduced(tmp_path_factory):
    """Three real granules reduced once (in-process); tests work on copies (:func:`copy_of`)."""
    base = tmp_path_factory.mktemp("records")
    src = copy_granules(base / "in")
    out = base / "out"
    assert main(["reduce", str(src), "-o", str(out), "--no-progress"]) == 0
    return src, out


def copy_granules(folder, names=GOOD):
    """``folder`` made, with copies of the real granules ``names``."""
    shutil.copytree(DATA / "atl06", folder, ignore=lambda _, found: [n for n in found if n not in names])
    return folder


def copy_of(reduced, tmp_path, name="out"):
    dst = tmp_path / name
    shutil.copytree(reduced[1], dst)
    return dst


def beam_files(folder, stem=""):
    return sorted(p for p in folder.glob(f"{stem}*_gt??_[AD].h5"))


def records(folder):
    return [json.loads(line) for line in (folder / MANIFEST).read_text().splitlines() if line.strip()]


def granule_names(merged):
    with h5py.File(merged, "r") as f:
        return sorted(n.decode() for n in f["granules/name"][()])


def stem_of(name):
    return name[len("processed_"):-3] if name.startswith("processed_") else name[:-3]


def half_granule(out):
    """Granule 0 looks killed between its renames: no record, half of its per-beam files left."""
    name = GOOD[2]
    lines = [r for r in records(out) if r["granule"] != name]
    (out / MANIFEST).write_text("".join(json.dumps(r) + "\n" for r in lines))
    files = beam_files(out, stem_of(name))
    assert len(files) >= 2
    for p in files[len(files) // 2:]:
        p.unlink()
    return name


def corrupt(path, nbytes=32, dataset=None):
    """Overwrite ``nbytes`` inside the data of the largest dataset (or ``dataset``): in its first chunk
    when it is chunked, else in its contiguous data. The file keeps its size."""
    with h5py.File(path, "r") as f:
        ds = f[dataset] if dataset else max((d for d in f.values() if isinstance(d, h5py.Dataset)),
                                            key=lambda d: d.id.get_storage_size())
        if ds.chunks:
            info = ds.id.get_chunk_info(0)
            offset, size = info.byte_offset, info.size
        else:
            offset, size = ds.id.get_offset(), ds.id.get_storage_size()
    assert size > nbytes
    before = os.path.getsize(path)
    with open(path, "r+b") as fh:
        fh.seek(offset + (size - nbytes) // 2)
        flipped = bytes(255 - b for b in fh.read(nbytes))      # every byte changed
        fh.seek(offset + (size - nbytes) // 2)
        fh.write(flipped)
    assert os.path.getsize(path) == before
    return path


# ----------------------------------------------------------------------------- 22.10: readers and records
def test_merge_export_xover_take_only_granules_with_a_complete_record(reduced, tmp_path):
    out = copy_of(reduced, tmp_path)
    gone = half_granule(out)
    r = run_cli("merge", out, "-o", tmp_path / "m.h5")
    assert r.returncode == 0, r.stderr
    assert "1 granules left out (1 without a complete record" in r.stderr and stem_of(gone) in r.stderr
    assert gone not in granule_names(tmp_path / "m.h5") and len(granule_names(tmp_path / "m.h5")) == 2
    r = run_cli("export", out, "-o", tmp_path / "t.parquet")
    assert r.returncode == 0 and "left out" in r.stderr, r.stderr
    import pyarrow.parquet as pq
    assert gone not in set(pq.read_table(tmp_path / "t.parquet", columns=["granule"]).column(0).to_pylist())
    r = run_cli("xover", out, "-o", tmp_path / "x.h5")
    used = len(beam_files(out)) - len(beam_files(out, stem_of(gone)))
    assert r.returncode == 0 and "left out" in r.stderr and f"({used} per-beam files," in r.stdout, r.stdout + r.stderr


def test_an_outdir_without_a_manifest_still_works_with_a_note(reduced, tmp_path, capsys):
    out = copy_of(reduced, tmp_path)
    (out / MANIFEST).unlink()
    assert main(["merge", str(out), "-o", str(tmp_path / "m.h5")]) == 0
    assert "no run manifest" in capsys.readouterr().err
    assert len(granule_names(tmp_path / "m.h5")) == len(GOOD)
    assert main(["xover", str(out), "-o", str(tmp_path / "x.h5")]) == 0
    assert "no run manifest" in capsys.readouterr().err


def test_xover_takes_the_folder_lock_and_refuses_mixed_options(reduced, tmp_path):
    from readatl06.outputs.locks import Lock
    out = copy_of(reduced, tmp_path)
    with Lock(str(out), "reduce"):
        r = run_cli("xover", out, "-o", tmp_path / "x.h5")
    assert r.returncode == 2 and "in use by another readatl06 run (reduce pid" in r.stderr, r.stderr
    assert not (tmp_path / "x.h5").exists()
    src = reduced[0]
    two = tmp_path / "two"
    assert run_cli("reduce", src / GOOD[1], "-o", two, "--no-progress").returncode == 0
    assert run_cli("reduce", src / GOOD[2], "-o", two, "--no-progress", "--beams", "gt1l").returncode == 0
    r = run_cli("xover", two, "-o", tmp_path / "x.h5")
    assert r.returncode == 2 and "mixes per-beam files of 2 parameter sets" in r.stderr, r.stderr
    key = r.stderr.split("(")[1].split(":")[0]
    r = run_cli("xover", two, "-o", tmp_path / "x.h5", "--parameters", key)
    assert r.returncode == 0 and "of another parameter set" in r.stderr, r.stderr


# ----------------------------------------------------------------------------- 22.11: one run per output
@pytest.mark.parametrize("command", ["merge", "export", "xover"])
def test_a_second_run_to_the_same_output_is_refused_while_the_first_runs(reduced, tmp_path, capsys, monkeypatch,
                                                                         command):
    out = copy_of(reduced, tmp_path)
    target = tmp_path / ("t.parquet" if command == "export" else "m.h5")
    seen = {}
    module, name = {"merge": ("readatl06.merge.writer", "merge_tracks"),
                    "export": ("readatl06.export.writer", "export_table"),
                    "xover": ("readatl06.xover.run", "read_lines")}[command]
    import importlib
    mod = importlib.import_module(module)
    real = getattr(mod, name)

    def slow(*a, **k):        # the second run starts while the first one works
        if "second" not in seen:
            seen["second"] = run_cli(command, out, "-o", target)
        return real(*a, **k)
    monkeypatch.setattr(mod, name, slow)
    assert main([command, str(out), "-o", str(target)]) == 0
    second = seen["second"]
    assert second.returncode == 2, second.stderr
    lines = [line for line in second.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and f"-o {target} is in use by another readatl06 run ({command} pid {os.getpid()}" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []   # reservation gone


def test_leftover_cleanup_keeps_the_temporary_files_of_a_live_export(reduced, tmp_path, monkeypatch):
    import readatl06.export.writer as W
    out = copy_of(reduced, tmp_path)
    other = tmp_path / "other"                    # a reduce into the export's target folder meanwhile
    other.mkdir()
    real = W._write_all

    def meanwhile(comm, plan, stream, reader, path, final, base):
        assert os.path.exists(path)               # the export's temporary file
        r = run_cli("reduce", reduced[0] / GOOD[1], "-o", other, "--no-progress")
        assert r.returncode == 0, r.stderr
        assert os.path.exists(path)
        return real(comm, plan, stream, reader, path, final, base)
    monkeypatch.setattr(W, "_write_all", meanwhile)
    assert main(["export", str(out), "-o", str(other / "t.parquet")]) == 0
    assert (other / "t.parquet").stat().st_size > 0


def test_leftovers_of_dead_runs_are_still_removed(reduced, tmp_path):
    from readatl06.outputs.locks import remove_leftovers
    dead = subprocess.run(["true"]).returncode or 2 ** 22 + 17         # a pid that is not alive
    (tmp_path / f".m.h5.tmp-{dead}").write_bytes(b"x")
    (tmp_path / f".x_gt1l_A.h5.tmp-{os.getppid()}").write_bytes(b"x")  # a live process's name
    assert remove_leftovers(str(tmp_path)) == 1
    assert [p.name for p in tmp_path.iterdir()] == [f".x_gt1l_A.h5.tmp-{os.getppid()}"]


# ----------------------------------------------------------------------------- 22.12: checksums, verify
def test_resume_redoes_a_granule_whose_file_was_damaged_in_place(reduced, tmp_path):
    out = copy_of(reduced, tmp_path)
    victim = corrupt(beam_files(out)[0])
    r = run_cli("reduce", reduced[0], "-o", out, "--no-progress", "--resume")
    assert r.returncode == 0, r.stderr
    assert "1 granules have a file that is not the one recorded and are redone" in r.stderr
    assert "2 granules already done, skipped" in r.stderr
    assert victim.read_bytes() == (reduced[1] / victim.name).read_bytes()
    assert run_cli("verify", out).returncode == 0


@pytest.mark.parametrize("how", ["mpirun -n 2", "-j 2"])
def test_resume_on_ranks_checks_each_share_and_merges_the_skipped_granules(reduced, tmp_path, how):
    """Rank 0 alone holds the recorded checksums and hands each rank its share: a damaged file of
    the first granule (rank 0's share) and of the second (rank 1's) are both found and redone; the
    merge reads the third granule back from its files; the result is the one-rank run's."""
    out = copy_of(reduced, tmp_path)
    stems = sorted({p.name.rsplit("_gt", 1)[0] for p in beam_files(out)})
    victims = [corrupt(beam_files(out, stems[0])[0]), corrupt(beam_files(out, stems[1])[-1])]
    one = copy_of(reduced, tmp_path, "one")
    assert run_cli("reduce", reduced[0], "-o", one, "--no-progress", "--merge", tmp_path / "one.h5",
                   "--overwrite").returncode == 0
    extra, ranks = (["-j", "2"], None) if how == "-j 2" else ([], 2)
    r = run_cli("reduce", reduced[0], "-o", out, "--no-progress", "--resume", "--merge", tmp_path / "m.h5",
                *extra, ranks=ranks)
    assert r.returncode == 0, r.stderr
    assert "2 granules have a file that is not the one recorded and are redone" in r.stderr
    assert "1 granules already done, skipped" in r.stderr
    for v in victims:
        assert v.read_bytes() == (reduced[1] / v.name).read_bytes()
    assert (tmp_path / "m.h5").read_bytes() == (tmp_path / "one.h5").read_bytes()
    assert run_cli("verify", out).returncode == 0


@pytest.mark.parametrize("ranks", [None, 2])
@pytest.mark.parametrize("command, target", [("merge", "m.h5"), ("export", "t.parquet"), ("xover", "x.h5")])
def test_readers_check_every_file_and_leave_a_damaged_granule_out(reduced, tmp_path, command, target, ranks):
    out = copy_of(reduced, tmp_path)
    victim = corrupt(beam_files(out)[-1])          # under mpirun: a file the second rank checks
    r = run_cli(command, out, "-o", tmp_path / target, ranks=ranks)
    errors = [line for line in r.stderr.splitlines() if "error" in line]
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert len(errors) == 1 and f"{victim}: damaged" in errors[0] and "its granule is left out" in errors[0]
    assert (tmp_path / target).exists()
    if command == "merge":
        assert len(granule_names(tmp_path / target)) == 2


def test_plot_skips_a_damaged_file_with_one_line(reduced, tmp_path):
    out = copy_of(reduced, tmp_path)
    victim = corrupt(beam_files(out, "ATL06_2018")[0])
    r = run_cli("plot", out, "-o", tmp_path / "map.png", "--hemisphere", "north")
    assert r.returncode == 0 and f"skipped {victim}: damaged" in r.stderr, r.stderr


def test_verify_says_what_is_missing_damaged_or_unrecorded(reduced, tmp_path, capsys):
    out = copy_of(reduced, tmp_path)
    assert main(["verify", str(out)]) == 0
    ok = capsys.readouterr()
    assert "all is well" in ok.out and "0 damaged, 0 missing, 0 unrecorded" in ok.out
    files = beam_files(out)
    corrupt(files[0])
    files[1].unlink()
    shutil.copy(files[2], out / "ATL06_20990101000000_00010101_006_01_gt1l_A.h5")
    assert main(["verify", str(out)]) == 1
    got = capsys.readouterr()
    lines = got.err.splitlines()
    assert len(lines) == 3
    assert any(f"{files[0]}: damaged" in x for x in lines)
    assert any(f"{files[1]}: missing" in x for x in lines)
    assert any("ATL06_20990101000000_00010101_006_01_gt1l_A.h5: unrecorded" in x for x in lines)
    assert "1 damaged, 1 missing, 1 unrecorded" in got.out and "NOT all is well" in got.out


def test_verify_a_merged_file(reduced, tmp_path, capsys):
    out = copy_of(reduced, tmp_path)
    merged = tmp_path / "m.h5"
    assert main(["merge", str(out), "-o", str(merged)]) == 0
    capsys.readouterr()
    assert main(["verify", str(merged)]) == 0
    assert "every dataset reads, granule_index in order; all is well" in capsys.readouterr().out
    with h5py.File(merged, "r+") as f:
        gi = f["gt1l/ascending/granule_index"]
        gi[0] = 7                          # a row /granules does not have
    assert main(["verify", str(merged)]) == 1
    err = capsys.readouterr().err
    assert "gt1l/ascending/granule_index: not sorted within the 3 rows of /granules" in err
    corrupt_merged = tmp_path / "c.h5"
    assert main(["merge", str(out), "-o", str(corrupt_merged)]) == 0
    capsys.readouterr()
    corrupt(corrupt_merged, dataset="gt1l/ascending/lat")
    assert main(["verify", str(corrupt_merged)]) == 1
    assert "/gt1l/ascending/lat: does not read" in capsys.readouterr().err
    assert main(["verify", str(tmp_path / "nothing")]) == 2


@pytest.mark.mpi(min_size=2)
def test_verify_under_mpi_gathers_every_rank_s_verdicts(mpi_tmp_path, capsys):
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    out = mpi_tmp_path / "out"
    if comm.rank == 0:
        copy_granules(mpi_tmp_path / "in")
    comm.Barrier()
    assert main(["reduce", str(mpi_tmp_path / "in"), "-o", str(out), "--no-progress"]) == 0
    assert main(["verify", str(out)]) == 0
    if comm.rank == 0:
        for p in beam_files(out)[-3:]:    # files the last rank checks too
            corrupt(p)
    comm.Barrier()
    capsys.readouterr()
    assert main(["verify", str(out)]) == 1
    if comm.rank == 0:
        assert "3 damaged, 0 missing, 0 unrecorded" in capsys.readouterr().out


# ----------------------------------------------------------------------------- 24.1: the manifest
@pytest.mark.parametrize("bad", [b"{}", b"[1, 2]", b"42", b"\xff\xfe not text", b'{"granule": 3, "status": "done"}'])
def test_manifest_lines_that_are_no_record_are_skipped_with_a_note_and_kept_aside(reduced, tmp_path, bad):
    out = copy_of(reduced, tmp_path)
    text = (out / MANIFEST).read_bytes()
    (out / MANIFEST).write_bytes(text + bad + b"\n")
    line = text.count(b"\n") + 1
    r = run_cli("merge", out, "-o", tmp_path / "m.h5")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert f"{MANIFEST} line {line}:" in r.stderr and "skipped" in r.stderr
    r = run_cli("reduce", reduced[0], "-o", out, "--no-progress", "--resume")
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert f"{MANIFEST} line {line}:" in r.stderr and "moved to readatl06-manifest.rejected.jsonl" in r.stderr
    assert "3 granules already done, skipped" in r.stderr
    kept = [json.loads(x) for x in (out / "readatl06-manifest.rejected.jsonl").read_text().splitlines()]
    assert len(kept) == 1 and kept[0]["line"] == line
    assert kept[0]["text"] == bad.decode("utf-8", "backslashreplace")
    assert (out / MANIFEST).read_bytes() == text                      # the records, untouched
    assert run_cli("verify", out).returncode == 0


@pytest.mark.parametrize("command", ["export", "merge", "xover"])
@pytest.mark.parametrize("name", [MANIFEST, "readatl06.lock", "readatl06-manifest.part-0.jsonl"])
def test_no_command_writes_over_the_manifest_or_the_lock(reduced, tmp_path, capsys, command, name):
    out = copy_of(reduced, tmp_path)
    (out / name).touch()
    before = (out / name).read_bytes()
    target = out / name
    assert main([command, str(out), "-o", str(target), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "is readatl06's own record of a run" in err or (command == "xover" and "unknown output format" in err)
    assert (out / name).read_bytes() == before


# ----------------------------------------------------------------------------- 24.2: read-only, no flock
@pytest.fixture
def read_only(reduced, tmp_path):
    """A read-only bind mount of a reduced OUTDIR (root's writes fail there too: EROFS)."""
    out = copy_of(reduced, tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    if subprocess.run(["mount", "--bind", "-o", "ro", str(out), str(ro)], capture_output=True).returncode:
        pytest.skip("no read-only bind mount here (needs CAP_SYS_ADMIN)")
    subprocess.run(["mount", "-o", "remount,bind,ro", str(ro)], check=True)
    try:
        with pytest.raises(OSError):
            (ro / "probe").touch()
        yield out, ro
    finally:
        subprocess.run(["umount", str(ro)], check=True)


@pytest.mark.parametrize("lock_file", [True, False])
def test_a_read_only_outdir_is_read_by_every_reader(read_only, tmp_path, lock_file):
    out, ro = read_only
    if not lock_file:
        os.remove(out / "readatl06.lock")
    listing = sorted(os.listdir(ro))
    for command, target in (("merge", "m.h5"), ("export", "t.parquet"), ("xover", "x.h5"), ("verify", None)):
        r = run_cli(command, ro, *(["-o", tmp_path / target] if target else []))
        assert r.returncode == 0 and "Traceback" not in r.stderr, (command, r.stderr)
        if not lock_file:
            assert "is read-only and has no readatl06.lock: read without a lock" in r.stderr
    assert sorted(os.listdir(ro)) == listing
    r = run_cli("reduce", reduced_src(tmp_path), "-o", ro, "--no-progress")
    assert r.returncode == 2 and "cannot write there" in r.stderr


def reduced_src(tmp_path):
    return copy_granules(tmp_path / "src1", GOOD[1:2])


@pytest.fixture
def no_flock(monkeypatch):
    """A file system without flock (Lustre without -o flock): every flock fails with ENOSYS."""
    def flock(fd, how):
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))
    monkeypatch.setattr(fcntl, "flock", flock)


def test_without_flock_an_owner_file_locks_the_folder(reduced, tmp_path, capsys, no_flock):
    from readatl06.outputs.locks import OWNER, Lock
    out = tmp_path / "out"
    assert main(["reduce", str(reduced[0]), "-o", str(out), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "no flock on this file system (Function not implemented); locked with readatl06.lock.owner" in err
    assert not (out / OWNER).exists()
    with Lock(str(out), "reduce"):                                    # held: the owner file names us
        held = json.loads((out / OWNER).read_text())
        assert held["pid"] == os.getpid() and held["command"] == "reduce"
        assert main(["merge", str(out), "-o", str(tmp_path / "m.h5")]) == 2
        assert f"is in use by another readatl06 run (reduce pid {os.getpid()}" in capsys.readouterr().err
    assert main(["merge", str(out), "-o", str(tmp_path / "m.h5")]) == 0
    capsys.readouterr()
    # a holder that died (this host, a pid not alive) leaves a stale file: taken over, with a note
    import socket
    (out / OWNER).write_text(json.dumps({"host": socket.gethostname(), "pid": 2 ** 22 + 17, "command": "reduce",
                                         "started": "2026-01-01T00:00:00+0000"}))
    assert main(["reduce", str(reduced[0]), "-o", str(out), "--no-progress", "--resume"]) == 0
    assert "left by a run that is gone (reduce pid 4194321" in capsys.readouterr().err
    assert not (out / OWNER).exists()
    # another host's: refused, saying how to go on
    (out / OWNER).write_text(json.dumps({"host": "elsewhere", "pid": 1, "command": "reduce", "started": "x"}))
    assert main(["reduce", str(reduced[0]), "-o", str(out), "--no-progress", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "(reduce pid 1 on elsewhere since x) (on another host: remove" in err and err.count("\n") == 1
