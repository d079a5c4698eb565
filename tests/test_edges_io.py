"""Issue 24, item 3: every failure of export, xover, merge and the option parsing is one line and
the documented exit status, never a traceback: a full disk (a small tmpfs), a corrupt chunk, a
truncated per-beam file, a name too long for its temporary name, --merge-memory inf, a boolean
--vars dataset. Each case runs the command line in a subprocess."""
import os
import shutil
import subprocess

import h5py
import numpy as np
import pytest

from conftest import DATA, run_cli

NORTH = DATA / "atl06" / "ATL06_20230816161508_08782002_006_02.h5"


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """The real granules reduced into ``out/`` and merged into ``m.h5``."""
    d = tmp_path_factory.mktemp("edges_io")
    r = run_cli("reduce", "--all-releases", DATA / "atl06", "-o", d / "out", "--no-progress", "--merge", d / "m.h5")
    assert r.returncode == 0, r.stderr
    return d


@pytest.fixture
def tmpfs(tmp_path):
    """``mount(size)``: a tmpfs of ``size`` bytes (a disk that fills up); root only."""
    mounted = []

    def mount(size):
        d = tmp_path / f"disk{len(mounted)}"
        d.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)], capture_output=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip()})")
        mounted.append(d)
        return d
    yield mount
    for d in mounted:
        subprocess.run(["umount", str(d)], check=True)


def one_line(r, status, *words):
    """The command failed with ``status`` and one line of stderr that holds ``words``."""
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if not ln.startswith("readatl06 merge: no parallel HDF5")]
    assert r.returncode == status and len(lines) == 1, (r.returncode, r.stderr)
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def _corrupt(src, dst, dataset):
    shutil.copy(src, dst)
    with h5py.File(dst, "r") as f:
        info = f[dataset].id.get_chunk_info(0)
    with open(dst, "r+b") as fh:
        fh.seek(info.byte_offset + 10)
        fh.write(b"\xff" * 200)


def test_full_disk(made, tmpfs):
    m, out = made / "m.h5", made / "out"
    # room for the up-front estimate (half the inputs), not for the file: the write fails midway
    disk = tmpfs(int(os.path.getsize(m) * 0.6))
    one_line(run_cli("export", m, "-o", disk / "t.parquet"), 1, "readatl06 export: error:", "No space left on device")
    inputs = sum(p.stat().st_size for p in out.glob("*.h5"))
    disk2 = tmpfs(int((inputs / 2 + os.path.getsize(m)) / 2))       # the merged file is about m.h5
    one_line(run_cli("merge", out, "-o", disk2 / "m.h5"), 1, "readatl06 merge: error:", "No space left on device")
    assert os.listdir(disk) == [] and os.listdir(disk2) == []       # no temporary file left behind
    with open(disk / "filler", "wb") as fh:               # xover's file is small: leave 4 kB
        fh.write(b"\0" * (os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize - 4096))
    one_line(run_cli("xover", m, "-o", disk / "x.h5"), 1, "readatl06 xover: error:", "No space left on device")
    assert sorted(os.listdir(disk)) == ["filler"]


def test_full_disk_seen_before_any_work(made, tmpfs):
    disk = tmpfs(300 * 1024)
    for argv in (["export", made / "m.h5", "-o", disk / "t.parquet"], ["merge", made / "out", "-o", disk / "m.h5"]):
        one_line(run_cli(*argv), 2, f"-o {disk}/", "MB free in", "the output needs at least")
    assert os.listdir(disk) == []


def test_corrupt_chunk_and_truncated_file(made, tmp_path):
    bad = tmp_path / "bad.h5"
    _corrupt(made / "m.h5", bad, "gt1l/descending/lat")
    one_line(run_cli("export", bad, "-o", tmp_path / "t.parquet"), 1, "readatl06 export: error:", "corrupt")
    one_line(run_cli("xover", bad, "-o", tmp_path / "x.h5"), 1,
             f"readatl06 xover: error: {bad}:/gt1l/descending: rows 0..", "cannot be read")
    r = run_cli("xover", bad, "-o", tmp_path / "x.h5", ranks=2)   # the rank that reads it: one line, all end
    assert r.returncode != 0 and "Traceback" not in r.stderr, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if "error:" in ln]
    assert errors and all(ln.startswith("readatl06 xover: error: ") and f"{bad}:/gt1l/descending: rows " in ln
                          and ln.endswith("all ranks stopped)") for ln in errors), r.stderr
    cut = tmp_path / "cut"
    shutil.copytree(made / "out", cut)
    victim = sorted(cut.glob("*_A.h5"))[0]
    os.truncate(victim, os.path.getsize(victim) // 2)
    # its size is not the recorded one: the granule has no complete record and is left out, named in
    # one note (docs/output.md, reading an OUTDIR); no traceback
    r = run_cli("xover", cut, "-o", tmp_path / "x.h5")
    stem = victim.name.rsplit("_gt", 1)[0]
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert [ln for ln in r.stderr.splitlines() if "left out" in ln and stem in ln], r.stderr
    assert not list(tmp_path.glob("*.parquet"))


@pytest.mark.parametrize("command", ["export", "xover", "merge"])
def test_name_too_long_for_its_temporary_name(made, tmp_path, command):
    name = "n" * 243 + (".parquet" if command == "export" else ".h5")
    src = made / ("out" if command == "merge" else "m.h5")
    one_line(run_cli(command, src, "-o", tmp_path / name[-246:]), 2, "with its temporary name (.NAME.tmp-PID)",
             "expected at most 242 bytes")
    assert os.listdir(tmp_path) == []


def test_merge_memory_inf(made, tmp_path):
    for argv in (["merge", made / "out", "-o", tmp_path / "m.h5"], ["reduce", NORTH, "-o", tmp_path / "o"]):
        r = run_cli(*argv, "--merge-memory", "inf")
        one_line(r, 2, f"readatl06 {argv[0]}: error: argument --merge-memory: 'inf': expected a positive number "
                       f"of MB, at most 1e+09 (see readatl06 {argv[0]} --help)")


def test_boolean_vars_reduce_merge_export(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(NORTH, src / NORTH.name)
    os.chmod(src / NORTH.name, 0o644)
    flags = {}
    with h5py.File(src / NORTH.name, "r+") as f:
        for b in ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r"):
            g = f[b]["land_ice_segments"]
            flags[b] = g["h_li"][()] > np.median(g["h_li"][()])
            g.create_dataset("flagb", data=flags[b])
    r = run_cli("reduce", src, "-o", tmp_path / "o", "--vars", "flagb", "--no-progress")
    assert r.returncode == 0, r.stderr
    for argv in (["merge", tmp_path / "o", "-o", tmp_path / "m.h5"],
                 ["export", tmp_path / "o", "-o", tmp_path / "t.parquet"],
                 ["export", tmp_path / "m.h5", "-o", tmp_path / "t2.parquet"]):
        r = run_cli(*argv)
        assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    with h5py.File(tmp_path / "m.h5", "r") as m, h5py.File(src / NORTH.name, "r") as g:
        got = m["gt1l/ascending/flagb"][()]
        ids = m["gt1l/ascending/segment_id"][()]
        src_ids = g["gt1l/land_ice_segments/segment_id"][()]
        assert got.dtype == bool and "_FillValue" not in m["gt1l/ascending/flagb"].attrs
        assert np.array_equal(got, flags["gt1l"][np.searchsorted(src_ids, ids)])
    import pyarrow.parquet as pq
    a, b = pq.read_table(tmp_path / "t.parquet"), pq.read_table(tmp_path / "t2.parquet")
    assert a.schema.field("flagb").type == "bool" and a["flagb"].equals(b["flagb"])


def test_xover_removes_the_temporary_file_of_a_killed_run(made, tmp_path):
    """A killed xover leaves ``.X.tmp-PID``; the next xover to X removes it (issue 24, item 8)."""
    left = tmp_path / ".x.h5.tmp-99999"
    left.write_bytes(b"half a file")
    r = run_cli("xover", made / "m.h5", "-o", tmp_path / "x.h5")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path)) == ["x.h5"]


def test_full_disk_in_process_without_a_tmpfs(made, tmp_path, monkeypatch, capsys):
    """The same without root: Parquet's writes raise ENOSPC (a full disk) in this process."""
    import errno

    import pyarrow.parquet as pq

    from readatl06.cli import main

    def full(self, *a, **k):
        raise OSError(errno.ENOSPC, "Error writing bytes to file. Detail: [errno 28] No space left on device")
    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    assert main(["export", str(made / "m.h5"), "-o", str(tmp_path / "t.parquet")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("readatl06 export: error: [Errno 28] ") and \
        err[0].endswith(f"No space left on device ({made / 'm.h5'} -> {tmp_path / 't.parquet'})"), err
    assert os.listdir(tmp_path) == []
