"""The command line: list, bad usage, bad granules beside good ones, resume, help without MPI."""
import json
import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from conftest import DATA, OTHER, REAL
from readatl06.cli import main

GOOD = ["ATL06_20230816161508_08782002_006_02.h5", "processed_ATL06_20181115223845_07380102_001_01.h5"]


HEAVY = ("mpi4py", "matplotlib", "readatl06.synth", "pyarrow", "shapely", "pyproj")
PROBE = """import sys
from readatl06.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as exc:
    rc = exc.code
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("mpi4py", "matplotlib")
               or m.startswith("readatl06.synth") and m != "readatl06.synth.command" and m != "readatl06.synth")
print("HEAVY", heavy, file=sys.stderr)
sys.exit(rc)
"""


@pytest.mark.parametrize("argv", [["list", "--all-releases", str(DATA / "atl06")], ["--help"], ["reduce", "--help"],
                                  ["plot", "--help"], ["synth", "--help"], ["export", "--help"],
                                  ["xover", "--help"]])
def test_help_and_list_import_neither_mpi_nor_matplotlib_nor_generator(argv):
    """No mpi4py, matplotlib or generator module is loaded by list and the help texts."""
    r = subprocess.run([sys.executable, "-c", PROBE] + argv, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "HEAVY []" in r.stderr
    if argv[0] == "list":
        assert len(r.stdout.split()) == len(REAL)
        assert f"{len(REAL)} granules selected" in r.stderr
    else:
        assert "usage:" in r.stdout


def test_list_importtime_shows_no_heavy_module():
    """The issue's own check: python -X importtime -m readatl06 list loads none of them."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "readatl06", "list", str(DATA / "atl06")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    loaded = [line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")]
    assert "readatl06.cli" in loaded
    assert not [m for m in loaded if m.startswith(HEAVY)]


def test_list_sources_glob_listfile_and_selection(tmp_path, capsys):
    lst = tmp_path / "granules.txt"
    lst.write_text("# two granules\n" + "\n".join(str(DATA / "atl06" / n) for n in GOOD) + "\nnot_a_granule.h5\n")
    (tmp_path / "not_a_granule.h5").write_bytes(b"")
    assert main(["list", f"@{lst}"]) == 0
    out, err = capsys.readouterr()
    assert [os.path.basename(p) for p in out.split()] == GOOD[::-1]    # time order: 2018 before 2023
    assert "not_a_granule.h5" in err and "does not parse" in err
    assert main(["list", str(DATA / "atl06" / "*_003_*.h5"), "--segments", "1-2"]) == 0
    out, err = capsys.readouterr()
    assert [os.path.basename(p) for p in out.split()] == ["ATL06_20181014001049_02350102_003_01.h5"]


@pytest.mark.parametrize("argv", [
    ["reduce", "x", "-o", "y", "--segments", "15"],
    ["reduce", "x", "-o", "y", "--bbox-xy", "0", "1", "0", "1"],
    ["reduce", "x", "-o", "y", "--start", "yesterday"],
    ["reduce", "x", "-o", "y", "--bbox", "0", "10", "20", "10"],
    ["reduce", "x", "-o", "y", "--polygon", "/nonexistent.geojson"],
    ["reduce", "x", "-o", "y", "--bbox-xy", "0", "1", "0", "1", "--crs", "EPSG:99999999"],
    ["reduce", "x", "-o", "y", "--quality", "best"],
    ["reduce", "/nonexistent/folder", "-o", "y"],
    ["frobnicate"],
])
def test_bad_usage_exits_2_before_work(argv, tmp_path, capsys):
    with pytest.raises(SystemExit) if argv[0] == "frobnicate" or "--quality" in argv else _noraise() as ctx:
        rc = main([a if a != "y" else str(tmp_path / "out") for a in argv])
    rc = ctx.value.code if ctx is not None and hasattr(ctx, "value") else rc
    assert rc == 2
    assert "error" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").glob("*.h5"))


class _noraise:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def bad_set(tmp_path):
    """Two good granules, the non-ATL06 files, a truncated copy, an empty file, ATL03 content under an ATL06 name."""
    d = tmp_path / "in"
    d.mkdir()
    for n in GOOD:
        shutil.copy(DATA / "atl06" / n, d / n)
    for p in OTHER:
        shutil.copy(p, d / p.name)
    src = (DATA / "atl06" / "ATL06_20181111224708_06770102_001_01.h5").read_bytes()
    (d / "ATL06_20181111224708_06770102_001_01.h5").write_bytes(src[: len(src) // 2])
    (d / "ATL06_20190101000000_00010110_006_01.h5").write_bytes(b"")
    shutil.copy(DATA / "other" / "atl03_mini.h5", d / "ATL06_20190102000000_00020110_006_01.h5")
    return d


def test_bad_granules_give_one_line_errors_and_the_rest_completes(tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["reduce", str(bad_set(tmp_path)), "-o", str(out), "--no-progress", "--log", str(tmp_path / "run.log")])
    assert rc == 1
    err = capsys.readouterr().err
    with open(out / "readatl06-manifest.jsonl") as fh:
        recs = {r["granule"]: r for r in map(json.loads, fh)}
    assert {recs[n]["status"] for n in GOOD} == {"done"}
    assert recs["ATL06_20181111224708_06770102_001_01.h5"]["error"].startswith(
        "ATL06_20181111224708_06770102_001_01.h5: truncated HDF5 file")
    assert recs["ATL06_20190101000000_00010110_006_01.h5"]["error"].endswith("empty file (0 bytes)")
    assert "not an ATL06 granule" in recs["ATL06_20190102000000_00020110_006_01.h5"]["error"]
    assert "ATL03" in recs["ATL06_20190102000000_00020110_006_01.h5"]["error"]
    for p in OTHER:      # refused by name, one line each
        assert sum(p.name in line and "not an ATL06 granule" in line for line in err.splitlines()) == 1
    for r in recs.values():
        if r["status"] == "failed":
            assert "\n" not in r["error"] and sum(r["error"] in line for line in err.splitlines()) == 1
    assert "3 failed" in (tmp_path / "run.log").read_text()
    assert not list(out.glob(".*tmp*"))


def _tree(folder):
    """{file name: bytes} of the per-beam files, and every other name in the folder."""
    files = {p.name: p.read_bytes() for p in folder.glob("*_gt??_[AD].h5")}
    others = sorted(p.name for p in folder.iterdir() if p.name not in files)
    return files, others


def _same_values(a, b):
    with h5py.File(__import__("io").BytesIO(a), "r") as f, h5py.File(__import__("io").BytesIO(b), "r") as g:
        return sorted(f) == sorted(g) and all(np.array_equal(f[k][()], g[k][()]) for k in g)


def test_resume_redoes_incomplete_granules_and_converges(tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    for n in GOOD:
        shutil.copy(DATA / "atl06" / n, src / n)
    out = tmp_path / "out"
    assert main(["reduce", str(src), "-o", str(out), "--no-progress"]) == 0
    first, _ = _tree(out)
    outputs = sorted(out.glob("ATL06_2023*.h5"))
    outputs[0].unlink()                       # one output of the first granule lost
    (out / ".ATL06_x_gt1l_A.h5.tmp-123").write_bytes(b"half")   # a killed writer's leftover
    capsys.readouterr()
    assert main(["reduce", str(src), "-o", str(out), "--no-progress", "--resume"]) == 0
    text = capsys.readouterr()
    assert "1 granules already done" in text.err and "1 done" in text.out
    assert "no complete record" in text.err
    again, others = _tree(out)
    assert sorted(again) == sorted(first) and all(_same_values(again[n], first[n]) for n in first)
    assert others == ["readatl06-manifest.jsonl", "readatl06.lock"]
    # resume again: nothing to do; --resume --overwrite is the same as --resume
    assert main(["reduce", str(src), "-o", str(out), "--no-progress", "--resume", "--overwrite"]) == 0
    assert "2 skipped" in capsys.readouterr().out
    # different options: exactly the granules concerned are redone, and the run says so
    assert main(["reduce", str(src), "-o", str(out), "--no-progress", "--resume", "--quality", "none"]) == 0
    text = capsys.readouterr()
    assert "2 granules were reduced with other options and are redone" in text.err
    assert "2 done" in text.out
    files, _ = _tree(out)
    for name, data in files.items():
        with h5py.File(__import__("io").BytesIO(data), "r") as f:
            assert '"quality": "none"' in f.attrs["parameters"]


def test_without_overwrite_existing_outputs_are_not_replaced(tmp_path, capsys):
    src = DATA / "atl06" / GOOD[1]
    out = tmp_path / "out"
    assert main(["reduce", str(src), "-o", str(out), "--no-progress"]) == 0
    assert main(["reduce", str(src), "-o", str(out), "--no-progress"]) == 1
    assert "exists" in capsys.readouterr().err
    assert main(["reduce", str(src), "-o", str(out), "--no-progress", "--overwrite"]) == 0


def test_extra_vars_beams_and_strong_only(tmp_path):
    name = "ATL06_20230816161508_08782002_006_02.h5"     # sc_orient 0: left beams strong
    src = DATA / "atl06" / name
    out = tmp_path / "vars"
    assert main(["reduce", str(src), "-o", str(out), "--no-progress", "--beams", "gt1l", "gt2r",
                 "--vars", "fit_statistics/n_fit_photons", "/gtx/land_ice_segments/dem/dem_h"]) == 0
    files = sorted(p.name for p in out.glob("*.h5"))
    assert files == [f"{name[:-3]}_gt1l_A.h5", f"{name[:-3]}_gt2r_A.h5"]
    with h5py.File(src, "r") as f, h5py.File(out / files[1], "r") as o:
        lis = f["gt2r/land_ice_segments"]
        idx = np.searchsorted(lis["segment_id"][()], o["segment_id"][()])
        for var, path in (("n_fit_photons", "fit_statistics/n_fit_photons"), ("dem_h", "dem/dem_h")):
            assert o[var].dtype == lis[path].dtype
            assert o[var][()].tobytes() == lis[path][()][idx].tobytes()
            assert o[var].attrs["_FillValue"] == lis[path].attrs["_FillValue"]
            assert o[var].attrs["units"] == lis[path].attrs["units"].decode()
            assert o[var].attrs["source"] == f"/gt2r/land_ice_segments/{path}"
        assert o.attrs["beam_strength"] == "weak"
        assert json.loads(o.attrs["parameters"])["vars"] == ["fit_statistics/n_fit_photons",
                                                             "/gtx/land_ice_segments/dem/dem_h"]
    strong = tmp_path / "strong"
    assert main(["reduce", str(src), "-o", str(strong), "--no-progress", "--strong-only"]) == 0
    beams = sorted(p.name.split("_")[-2] for p in strong.glob("*.h5"))
    assert beams == ["gt1l", "gt2l", "gt3l"]
    for p in strong.glob("*.h5"):
        with h5py.File(p, "r") as o:
            assert o.attrs["beam_strength"] == "strong"


def test_missing_core_variable_fails_the_granule_with_its_name(tmp_path):
    name = "processed_ATL06_20181115223845_07380102_001_01.h5"
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(DATA / "atl06" / name, d / name)
    os.chmod(d / name, 0o644)
    with h5py.File(d / name, "r+") as f:
        del f["gt3r/land_ice_segments/h_li"]
    out = tmp_path / "out"
    assert main(["reduce", str(d), "-o", str(out), "--no-progress"]) == 1
    with open(out / "readatl06-manifest.jsonl") as fh:
        rec = json.loads(fh.readline())
    assert rec["error"] == f"{name}: beam gt3r: land_ice_segments/h_li is missing"
    assert rec["outputs"] == [] and not list(out.glob("*.h5"))     # all or nothing per granule


def test_newest_release_selected_and_superseded_named_once(real_dir, tmp_path, capsys):
    """Both releases of 02350102 in one folder: list and reduce take 003 only and name 001 once."""
    old, new = "ATL06_20181014001049_02350102_001_01.h5", "ATL06_20181014001049_02350102_003_01.h5"
    assert main(["list", str(real_dir)]) == 0
    out, err = capsys.readouterr()
    assert new in out and old not in out and len(out.split()) == len(REAL) - 1
    lines = [ln for ln in err.splitlines() if "superseded" in ln]
    assert lines == [f"readatl06: 1 granule superseded by a newer release or revision, not selected "
                     f"(--all-releases keeps them): {old} (by {new})"]
    assert main(["list", "--all-releases", str(real_dir)]) == 0
    out, err = capsys.readouterr()
    assert old in out and new in out and "superseded" not in err
    merged = tmp_path / "m.h5"
    assert main(["reduce", str(real_dir), "-o", str(tmp_path / "o"), "--rgts", "235", "--merge", str(merged),
                 "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert err.count("superseded") == 1 and old in err
    assert sorted(os.listdir(tmp_path / "o")) == sorted(
        [n for n in os.listdir(tmp_path / "o") if n.startswith(new[:-3]) or not n.endswith(".h5")])
    assert any(n.startswith(new[:-3]) for n in os.listdir(tmp_path / "o"))
    with h5py.File(merged, "r") as f:
        assert [n.decode() for n in f["granules/name"][()]] == [new]


def test_resume_replaces_a_granule_superseded_by_a_newer_release(real_dir, tmp_path, capsys):
    """An OUTDIR made with --all-releases holds 02350102 in 001 and 003; a later --resume (newest
    release by default) removes 001's per-beam files once 003's are written, records 001 as
    superseded, and a merge of the folder then holds 003 alone."""
    old, new = "ATL06_20181014001049_02350102_001_01", "ATL06_20181014001049_02350102_003_01"
    out = tmp_path / "o"
    assert main(["reduce", "--all-releases", str(real_dir), "-o", str(out), "--rgts", "235", "--no-progress"]) == 0
    assert any(n.startswith(old + "_gt") for n in os.listdir(out)) and any(n.startswith(new + "_gt") for n in os.listdir(out))
    capsys.readouterr()
    assert main(["reduce", str(real_dir), "-o", str(out), "--rgts", "235", "--no-progress", "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"--resume: 1 granules in {out} are superseded by a newer release or revision" in err
    assert f"{old}.h5 (by {new}.h5)" in err
    names = os.listdir(out)
    assert not any(n.startswith(old + "_gt") for n in names)          # the old release's files are gone
    assert any(n.startswith(new + "_gt") for n in names)
    with open(out / "readatl06-manifest.jsonl") as fh:
        last = {}
        for line in fh:
            r = json.loads(line)
            last[r["granule"]] = r
    assert last[old + ".h5"]["status"] == "superseded" and last[old + ".h5"]["by"] == new + ".h5"
    assert last[new + ".h5"]["status"] == "done"
    # values of the newer release: unchanged by the replacement (equal to a fresh reduce of it alone)
    fresh = tmp_path / "fresh"
    assert main(["reduce", str(real_dir), "-o", str(fresh), "--rgts", "235", "--no-progress"]) == 0
    for n in [n for n in names if n.startswith(new + "_gt")]:
        with h5py.File(out / n, "r") as a, h5py.File(fresh / n, "r") as b:
            assert all(np.array_equal(a[k][()], b[k][()]) for k in ("lat", "lon", "h_elv", "t_sec"))
    # a second --resume has nothing left to replace and skips the granule
    capsys.readouterr()
    assert main(["reduce", str(real_dir), "-o", str(out), "--rgts", "235", "--no-progress", "--resume"]) == 0
    err = capsys.readouterr().err
    assert f"in {out} are superseded" not in err and "1 granules already done, skipped" in err
    assert main(["merge", str(out), "-o", str(tmp_path / "m.h5")]) == 0
    with h5py.File(tmp_path / "m.h5", "r") as f:
        assert [n.decode() for n in f["granules/name"][()]] == [new + ".h5"]


def test_list_of_a_merged_product_names_its_granules(real_dir, tmp_path, capsys):
    """``readatl06 list M.h5``: every granule the product holds, in its order, with release, revision
    and the file holding it; a summary of cycles and releases; a file that is no product: exit 2."""
    merged = tmp_path / "M.h5"
    assert main(["reduce", "--all-releases", str(real_dir), "-o", str(tmp_path / "o"), "--merge", str(merged),
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["list", str(merged)]) == 0
    out, err = capsys.readouterr()
    with h5py.File(merged, "r") as f:
        names = [n.decode() for n in f["granules/name"][()]]
    rows = [line.split("\t") for line in out.splitlines()]
    assert [r[0] for r in rows] == names and len(names) == len(REAL)
    for name, release, revision, where in rows:
        vvv, rr = name[:-3].split("_")[-2:]
        assert (release, revision, where) == (f"release {vvv}", f"revision {rr}", str(merged))
    assert f"{merged} holds {len(REAL)} granules: cycles 1-20, releases 001 (5), 003 (2), 006 (1)" in err
    assert main(["list", str(merged), str(real_dir)]) == 2
    other = tmp_path / "not-a-product.h5"
    with h5py.File(other, "w") as f:
        f["x"] = [1]
    assert main(["list", str(other)]) == 2
    assert "no /granules/name; expected a merged file of readatl06" in capsys.readouterr().err
