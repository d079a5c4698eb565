"""Nothing lost, nothing wrong (issue 16): targets, kills at chosen moments, one run per folder,
stale files, counts. Runs go through subprocesses (with timeouts) so that a SIGKILL or a hang
never takes the test process with it; ``ranks`` runs them under mpirun."""
import hashlib
import json
import os
import shutil

import h5py
import numpy as np
import pytest

from conftest import DATA, run_cli

GOOD = ["ATL06_20230816161508_08782002_006_02.h5", "processed_ATL06_20181115223845_07380102_001_01.h5",
        "ATL06_20181014001049_02350102_003_01.h5"]
MANIFEST = "readatl06-manifest.jsonl"


@pytest.fixture
def src(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    for n in GOOD:
        shutil.copy(DATA / "atl06" / n, d / n)
    return d


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _values(path):
    """Every dataset of an HDF5 file (per-beam or merged) as {path: array}, and the file attributes."""
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda k, v: out.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None)
        attrs = {k: f.attrs[k] for k in f.attrs}
    return out, attrs


def _same(a, b):
    (va, aa), (vb, ab) = _values(a), _values(b)
    return sorted(va) == sorted(vb) and all(np.array_equal(va[k], vb[k]) for k in va) and \
        {k: str(v) for k, v in aa.items()} == {k: str(v) for k, v in ab.items()}


def _listing(folder):
    return sorted(p.name for p in folder.iterdir())


def _reference(src, tmp_path, *extra):
    ref = tmp_path / "ref"
    r = run_cli("reduce", src, "-o", ref, "--no-progress", "--merge", tmp_path / "ref.h5", *extra)
    assert r.returncode == 0, r.stderr
    return ref, tmp_path / "ref.h5"


def _assert_same_run(out, merged, ref, ref_merged):
    names = sorted(p.name for p in ref.glob("*_gt??_[AD].h5"))
    assert _listing(out) == sorted(names + [MANIFEST, "readatl06.lock"])     # nothing else left
    for n in names:
        assert _same(out / n, ref / n), n
    assert _same(merged, ref_merged)
    assert not [p for p in merged.parent.iterdir() if ".tmp-" in p.name]


# ----------------------------------------------------------------------------- targets
def test_merge_target_never_an_input_nor_an_existing_file(src, tmp_path):
    granule = src / GOOD[0]
    before = _digest(granule)
    for extra in ([], ["--overwrite"]):
        r = run_cli("reduce", src, "-o", tmp_path / "out", "--merge", granule, "--no-progress", *extra)
        assert r.returncode == 2 and "is one of the input granules" in r.stderr, r.stderr
        assert _digest(granule) == before
    other = tmp_path / "exists.h5"
    other.write_bytes(b"precious")
    r = run_cli("reduce", src, "-o", tmp_path / "out", "--merge", other, "--no-progress")
    assert r.returncode == 2 and "exists (use --overwrite" in r.stderr
    assert other.read_bytes() == b"precious" and not (tmp_path / "out" / MANIFEST).exists()
    assert run_cli("reduce", src, "-o", tmp_path / "out", "--no-progress").returncode == 0
    r = run_cli("merge", tmp_path / "out", "-o", other)
    assert r.returncode == 2 and "exists (use --overwrite" in r.stderr and other.read_bytes() == b"precious"
    r = run_cli("merge", tmp_path / "out", "-o", tmp_path / "out" / os.listdir(tmp_path / "out")[0])
    assert r.returncode == 2
    r = run_cli("merge", tmp_path / "out", "-o", other, "--overwrite")
    assert r.returncode == 0 and h5py.is_hdf5(other)


@pytest.mark.parametrize("args, message", [
    (["-o", "{file}"], "exists and is not a folder"),
    (["-o", "/proc/readatl06-out"], "cannot write there"),
    (["-o", "{tmp}/out", "--merge", "{tmp}/missing/m.h5"], "does not exist"),
    (["-o", "{tmp}/out", "--log", "{tmp}/missing/run.log"], "does not exist"),
    (["-o", "{tmp}/out", "--bbox", "0", "400", "-80", "-60"], "must be longitudes"),
    (["-o", "{tmp}/out", "--crs", "EPSG:3031"], "--crs EPSG:3031 is used only with --bbox-xy"),
    (["-o", "{tmp}/out", "--log", "{granule}"], "is one of the input granules"),
])
def test_bad_paths_and_options_fail_before_any_work(src, tmp_path, args, message):
    (tmp_path / "file").write_text("x")
    fmt = {"file": tmp_path / "file", "tmp": tmp_path, "granule": src / GOOD[0]}
    r = run_cli("reduce", src, *[a.format(**fmt) for a in args], "--no-progress")
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out" / MANIFEST).exists()


def test_nothing_selected_writes_no_merged_file(src, tmp_path):
    r = run_cli("reduce", src, "-o", tmp_path / "out", "--cycles", "99", "--merge", tmp_path / "m.h5", "--no-progress")
    assert r.returncode == 1 and "no granule was reduced" in r.stderr
    assert not (tmp_path / "m.h5").exists()


# ----------------------------------------------------------------------------- kills
@pytest.mark.parametrize("moment, ranks", [(m, None) for m in (
    "granule-written", "record-written:2", "consolidate-before-rename", "consolidate-before-cleanup",
    "merge-group:4", "merge-before-rename")] + [(m, 2) for m in ("granule-written", "record-written:2",
                                                                  "merge-group:4", "merge-before-rename")])
def test_kill_then_resume_gives_the_uninterrupted_result(src, tmp_path, moment, ranks):
    ref, ref_merged = _reference(src, tmp_path)
    out, merged = tmp_path / "out", tmp_path / "merged.h5"
    r = run_cli("reduce", src, "-o", out, "--no-progress", "--merge", merged, ranks=ranks,
                env={"READATL06_CRASH_AT": moment})
    assert r.returncode != 0                                       # killed (SIGKILL)
    assert not merged.exists()                                     # never a half file under the final name
    r = run_cli("reduce", src, "-o", out, "--no-progress", "--merge", merged, "--resume", ranks=ranks)
    assert r.returncode == 0, r.stderr
    _assert_same_run(out, merged, ref, ref_merged)
    records = [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]
    keys = [(r["run"], r["granule"], r["started"], r["rank"]) for r in records]
    assert len(keys) == len(set(keys))                             # no record twice


def test_two_runs_in_one_folder_the_second_is_refused(src, tmp_path):
    from readatl06.outputs.locks import Lock
    out = tmp_path / "out"
    out.mkdir()
    with Lock(str(out), "reduce"):
        r = run_cli("reduce", src, "-o", out, "--no-progress")
        assert r.returncode == 2 and "is in use by another readatl06 run (reduce pid" in r.stderr
        r = run_cli("merge", out, "-o", tmp_path / "m.h5")
        assert r.returncode == 2 and "in use by another readatl06 run" in r.stderr
    assert _listing(out) == ["readatl06.lock"]
    assert run_cli("reduce", src, "-o", out, "--no-progress").returncode == 0     # released


# ----------------------------------------------------------------------------- stale files
def test_overwrite_with_other_options_leaves_no_stale_file_and_merge_refuses_mixtures(src, tmp_path):
    out = tmp_path / "out"
    assert run_cli("reduce", src, "-o", out, "--no-progress").returncode == 0
    full = sorted(p.name for p in out.glob("*_gt??_[AD].h5"))
    box = ["--bbox", "-180", "180", "58.6", "90"]               # keeps nothing of the 2023 granule
    r = run_cli("reduce", src, "-o", out, "--no-progress", "--overwrite", *box)
    assert r.returncode == 0, r.stderr
    ref = tmp_path / "ref"
    assert run_cli("reduce", src, "-o", ref, "--no-progress", *box).returncode == 0
    now = sorted(p.name for p in out.glob("*_gt??_[AD].h5"))
    assert now == sorted(p.name for p in ref.glob("*_gt??_[AD].h5")) and len(now) < len(full)
    for n in now:
        assert _same(out / n, ref / n)
    r = run_cli("merge", out, "-o", tmp_path / "m.h5")
    assert r.returncode == 0
    with h5py.File(tmp_path / "m.h5", "r") as f:
        assert '"bbox": [-180.0, 180.0, 58.6, 90.0]' in f.attrs["parameters"]
        assert np.all(f["gt1l/ascending/lat"][()] >= 58.6) and np.all(f["gt1l/descending/lat"][()] >= 58.6)
        assert f["gt1l/ascending/lat"].size > 0
    # files put there by hand (no complete record of theirs) are left out, named in one note
    mixed = tmp_path / "mixed"
    shutil.copytree(ref, mixed)
    full_dir = tmp_path / "full"
    assert run_cli("reduce", src, "-o", full_dir, "--no-progress", "--beams", "gt1l").returncode == 0
    (south,) = full_dir.glob("ATL06_2023*_gt1l_*.h5")         # its granule's record in `mixed` has no file
    shutil.copy(south, mixed / south.name)
    r = run_cli("merge", mixed, "-o", tmp_path / "hand.h5")
    assert r.returncode == 0, r.stderr
    assert "per-beam files of 1 granules left out (1 without a complete record" in r.stderr
    # a folder whose records are of two parameter sets is refused unless told which
    two = tmp_path / "two"
    assert run_cli("reduce", src / GOOD[1], "-o", two, "--no-progress", *box).returncode == 0
    assert run_cli("reduce", src / GOOD[2], "-o", two, "--no-progress", "--beams", "gt1l").returncode == 0
    r = run_cli("merge", two, "-o", tmp_path / "mixed.h5")
    assert r.returncode == 2 and "mixes per-beam files of 2 parameter sets" in r.stderr
    key = r.stderr.split("(")[1].split(":")[0]
    r = run_cli("merge", two, "-o", tmp_path / "mixed.h5", "--parameters", key)
    assert r.returncode == 0, r.stderr
    assert "of another parameter set" in r.stderr


# ----------------------------------------------------------------------------- counts
def test_counts_and_granule_table_only_hold_reduced_granules(src, tmp_path):
    bad = src / "ATL06_20190101001723_00540211_006_01.h5"
    bad.write_bytes((src / GOOD[0]).read_bytes()[:50000])          # truncated: fails
    ref = tmp_path / "ref"
    shutil.copytree(src, tmp_path / "goodonly")
    (tmp_path / "goodonly" / bad.name).unlink()
    r = run_cli("reduce", tmp_path / "goodonly", "-o", ref, "--no-progress", "--merge", tmp_path / "ref.h5")
    assert r.returncode == 0
    good_points = int(r.stdout.split(" points kept")[0].split()[-1])
    r = run_cli("reduce", src, "-o", tmp_path / "out", "--no-progress", "--merge", tmp_path / "m.h5")
    assert r.returncode == 1 and "1 failed" in r.stdout
    assert f"; {good_points} points kept" in r.stdout
    with h5py.File(tmp_path / "m.h5", "r") as f:
        names = [n.decode() for n in f["granules/name"][()]]
    assert bad.name not in names and len(names) == len(GOOD)
    assert _same(tmp_path / "m.h5", tmp_path / "ref.h5")


# ----------------------------------------------------------------------------- full disk
@pytest.fixture
def small_disk(tmp_path):
    """A 400 kB tmpfs (the full disk of a real job); where mounting is not allowed, a per-process
    file-size limit (RLIMIT_FSIZE) gives the same EFBIG/ENOSPC-style write error."""
    import subprocess
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mnt)], capture_output=True)
    yield mnt, r.returncode == 0
    if r.returncode == 0:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


@pytest.mark.parametrize("ranks", [None, 2])
def test_full_disk_one_line_a_record_no_partial_file_then_resume(src, tmp_path, small_disk, ranks):
    mnt, mounted = small_disk
    ref, _ = _reference(src, tmp_path)
    out = mnt / "out"
    wrap = () if mounted else ("prlimit", "--fsize=20000")
    r = run_cli("reduce", src, "-o", out, "--no-progress", ranks=ranks, wrap=wrap)
    assert r.returncode == 1, r.stderr
    assert "No space left on device" in r.stderr or "File too large" in r.stderr
    assert "Traceback" not in r.stderr and "HDF5-DIAG" not in r.stderr and "Segmentation" not in r.stderr
    assert "readatl06 summary:" in r.stdout and "failed" in r.stdout
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]
    for p in out.glob("*_gt??_[AD].h5"):                   # what is there is complete
        assert _same(p, ref / p.name)
    records = [json.loads(x) for x in (out / MANIFEST).read_text().splitlines()]
    assert any(x["status"] == "failed" and "cannot write" in x["error"] for x in records)
    moved = tmp_path / "moved"                              # more room: the same folder elsewhere
    shutil.copytree(out, moved)
    r = run_cli("reduce", src, "-o", moved, "--no-progress", "--resume", ranks=ranks)
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in ref.glob("*_gt??_[AD].h5"))
    assert sorted(p.name for p in moved.glob("*_gt??_[AD].h5")) == names
    assert all(_same(moved / n, ref / n) for n in names)


def test_vars_found_in_no_granule_is_an_error(src, tmp_path):
    r = run_cli("reduce", src, "-o", tmp_path / "out", "--no-progress", "--vars", "no_such_var",
                "fit_statistics/n_fit_photons")
    assert r.returncode == 1
    assert "--vars no_such_var: found in no granule of this run" in r.stderr
    assert "n_fit_photons: found in no granule" not in r.stderr
    with h5py.File(next((tmp_path / "out").glob("ATL06_2023*_gt1l_*.h5")), "r") as f:
        assert "n_fit_photons" in f and "no_such_var" not in f
