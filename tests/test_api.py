"""The Python API (README, "Python API"; readatl06/api.py): the README's example runs as written on
real granules and gives the values an independent h5py read of the granules gives; ``import
readatl06`` stays light."""
import datetime as dt
import os
import re
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

import readatl06
from conftest import OTHER, REAL, ROOT
from readatl06.cli import main
from readatl06.errors import GranuleError, NotATL06Error

BEAMS = ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")
HEAVY = ("h5py", "mpi4py", "matplotlib", "pyarrow")
# what the README's example asks for (the test checks that its code says so)
EXAMPLE_BBOX = (-99.0, -96.0, -76.5, -75.5)
EXAMPLE_VARS = ("sigma_geo_h",)


def readme_example():
    """The first ```python block of the README's "Python API" section."""
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    m = re.search(r"^```python\n(.*?)^```$", section, re.S | re.M)
    assert m, "README: no ```python block under ## Python API"
    return m.group(1)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """What the example expects in its folder: granules/ (copies of the real granules), and the
    tracks/ and merged.h5 of ``readatl06 reduce granules/ -o tracks/ --merge merged.h5``."""
    d = tmp_path_factory.mktemp("api")
    (d / "granules").mkdir()
    for p in REAL:
        shutil.copy(p, d / "granules" / p.name)
    cwd = os.getcwd()
    os.chdir(d)
    try:
        assert main(["reduce", "granules", "-o", "tracks", "--merge", "merged.h5", "--no-progress"]) == 0
    finally:
        os.chdir(cwd)
    return d


def expected_kept(lis, bbox=None, quality=True):
    """Independent: h_li not fill/NaN, quality summary 0 and |h_li| < 1e4, inside the lon/lat box."""
    h = lis["h_li"][()]
    fv = np.asarray(lis["h_li"].attrs["_FillValue"]).ravel()[0]
    ok = (h != fv) & ~np.isnan(h)
    if quality:
        ok &= (lis["atl06_quality_summary"][()] == 0) & (np.abs(h) < 1e4)
    if bbox is not None:
        w, e, s, n = bbox
        lon, lat = lis["longitude"][()], lis["latitude"][()]
        ok &= (lon >= w) & (lon <= e) & (lat >= s) & (lat <= n)
    return ok


def check_tracks_against_source(tracks, path, bbox=None, extra=()):
    """Every kept point of ``path`` (and no other) in ``tracks``, with the source's values bit for bit."""
    with h5py.File(path, "r") as f:
        epoch = f["ancillary_data/atlas_sdp_gps_epoch"][0]
        for beam in BEAMS:
            mine = [t for t in tracks if t.beam == beam]
            if beam not in f or "land_ice_segments" not in f[beam]:
                assert not mine
                continue
            lis = f[beam]["land_ice_segments"]
            seg = lis["segment_id"][()]
            got = []
            for t in mine:
                assert t.granule.name == os.path.basename(path) and len(t) > 0
                idx = np.searchsorted(seg, t.data["segment_id"])
                assert np.array_equal(seg[idx], t.data["segment_id"]) and np.all(np.diff(idx) > 0)
                for name, source in (("lat", "latitude"), ("lon", "longitude"), ("h_elv", "h_li"),
                                     ("s_elv", "h_li_sigma"), *((v, v) for v in extra)):
                    assert t.data[name].tobytes() == lis[source][()][idx].tobytes(), (t.stem, name)
                assert np.array_equal(t.data["t_sec"], epoch + lis["delta_time"][()][idx])
                got.append(idx)
            got = np.sort(np.concatenate(got)) if got else np.zeros(0, int)
            assert np.array_equal(got, np.flatnonzero(expected_kept(lis, bbox))), f"{path} {beam}"


def test_readme_example_runs_and_gives_the_granules_values(workdir, monkeypatch, capsys):
    code = readme_example()
    assert "bbox=(-99.0, -96.0, -76.5, -75.5)" in code and 'vars=["sigma_geo_h"]' in code
    monkeypatch.chdir(workdir)
    ns = {}
    exec(compile(code, "README.md (Python API)", "exec"), ns)
    try:
        # the selection: regions 10-12 from October 2018, by name, in time order
        names = [g.name for g, _ in ns["sel"].granules]
        expected = sorted((p.name for p in REAL if p.name.split("_")[-3][-2:] in ("10", "11", "12")),
                          key=lambda n: re.search(r"ATL06_(\d{14})", n).group(1))
        assert names == expected and len(names) == 2
        # the reduction: every kept point of each granule inside the box, values as in the source
        tracks = ns["tracks"]
        assert sum(len(t) for t in tracks) > 10000
        for _, path in ns["sel"].granules:
            check_tracks_against_source([t for t in tracks if t.granule.name == os.path.basename(path)],
                                        path, EXAMPLE_BBOX, EXAMPLE_VARS)
        out = capsys.readouterr().out
        assert all(t.stem in out for t in tracks)
        # the per-beam file, opened with xarray, holds what h5py reads
        ds = ns["ds"]
        with h5py.File(workdir / "tracks" / f"{tracks[0].stem}.h5", "r") as f:
            assert ds.sizes["obs"] == f["h_elv"].shape[0]
            assert np.array_equal(ds["lat"].values, f["lat"][()])
            assert np.array_equal(ds["h_elv"].values, f["h_elv"][()])
            assert ds["time"].dtype.kind == "M" and ds.attrs["granule"] == tracks[0].granule.name
        # the merged file as a DataTree: every group, and the granule table
        tree = ns["tree"]
        with h5py.File(workdir / "merged.h5", "r") as f:
            assert {f"{b}/{d}" for b in BEAMS for d in ("ascending", "descending")} <= \
                {f"{b}/{d}" for b in tree.children if b in BEAMS for d in tree[b].children}
            assert [n.decode() for n in f["granules/name"][()]] == list(tree["granules"]["name"].values.astype(str))
            for b in BEAMS:
                for d in ("ascending", "descending"):
                    assert np.array_equal(tree[f"{b}/{d}"]["lat"].values, f[b][d]["lat"][()])
    finally:
        for key in ("ds", "tree"):
            if key in ns:
                ns[key].close()


def test_select_keeps_the_newest_release_unless_told(workdir):
    paths = sorted((workdir / "granules").glob("*.h5"))
    newest = readatl06.select(paths, rgts=235)
    assert [g.name for g, _ in newest.granules] == ["ATL06_20181014001049_02350102_003_01.h5"]
    assert [os.path.basename(old) for old, _ in newest.superseded] == ["ATL06_20181014001049_02350102_001_01.h5"]
    both = readatl06.select(paths, rgts=235, all_releases=True)
    assert len(both.granules) == 2 and not both.superseded
    assert not list((workdir / "tracks").glob("ATL06_20181014001049_02350102_001_01_*.h5"))   # reduce: the same


def test_reduce_granule_equals_the_files_of_reduce(workdir):
    """Default options: the in-memory tracks are the per-beam files ``readatl06 reduce`` wrote."""
    path = workdir / "granules" / "ATL06_20181014001049_02350102_003_01.h5"    # 001 is superseded
    tracks = readatl06.reduce_granule(path)
    files = sorted(p.name for p in (workdir / "tracks").glob(f"{path.stem}_gt*.h5"))
    assert sorted(f"{t.stem}.h5" for t in tracks) == files and files
    for t in tracks:
        with h5py.File(workdir / "tracks" / f"{t.stem}.h5", "r") as f:
            assert set(t.data) == {k for k in f if k != "obs"}
            for name, values in t.data.items():
                assert f[name].dtype == values.dtype and f[name][()].tobytes() == values.tobytes(), name
            for key, value in t.attrs.items():
                assert f.attrs[key] == value, key
    check_tracks_against_source(tracks, path)


@pytest.mark.parametrize("driver", [None, "core"])
def test_reduce_granule_of_an_open_h5py_file(driver):
    """An open h5py.File gives the tracks its path gives (the chunk reader, or h5py for a core
    file), and is left open."""
    path = next(p for p in REAL if p.name.startswith("processed_ATL06_20181214211434"))
    by_path = readatl06.reduce_granule(path, quality="none", beams=["gt1l", "gt2r"])
    with h5py.File(path, "r", driver=driver) as f:
        by_file = readatl06.reduce_granule(f, quality="none", beams=["gt1l", "gt2r"])
        assert f and f["gt1l/land_ice_segments/h_li"].shape[0] > 0
    assert [t.stem for t in by_file] == [t.stem for t in by_path] and by_path
    for a, b in zip(by_path, by_file):
        assert a.data.keys() == b.data.keys()
        assert all(a.data[k].tobytes() == b.data[k].tobytes() for k in a.data)
    with h5py.File(path, "r") as f:
        lis = f["gt1l/land_ice_segments"]
        kept = expected_kept(lis, quality=False)
        gt1l = np.concatenate([t.data["h_elv"] for t in by_path if t.beam == "gt1l"])
        assert np.array_equal(np.sort(gt1l), np.sort(lis["h_li"][()][kept]))


def test_keywords_and_options_are_the_same_reduction():
    path = next(p for p in REAL if "08500210" in p.name)
    opts = readatl06.reduce_options(bbox_xy=(-1_600_000, -1_400_000, -500_000, -200_000), crs="EPSG:3031",
                                    strong_only=True)
    a = readatl06.reduce_granule(path, options=opts)
    b = readatl06.reduce_granule(str(path), bbox_xy=[-1_600_000, -1_400_000, -500_000, -200_000],
                                 crs="EPSG:3031", strong_only=True)
    assert [t.stem for t in a] == [t.stem for t in b] and sum(len(t) for t in a) > 1000
    assert all(x.data["h_elv"].tobytes() == y.data["h_elv"].tobytes() for x, y in zip(a, b))
    assert all(t.attrs["beam_strength"] == "strong" for t in a)
    assert isinstance(opts, readatl06.ReduceOptions) and all(isinstance(t, readatl06.Track) for t in a)


def test_reduce_granule_refuses_bad_options_and_files(tmp_path):
    path = REAL[0]
    with pytest.raises(ValueError, match="quality"):
        readatl06.reduce_granule(path, quality="best")
    with pytest.raises(ValueError, match="south"):
        readatl06.reduce_granule(path, bbox=(0, 10, 20, 10))
    with pytest.raises(ValueError, match="--crs"):
        readatl06.reduce_options(bbox_xy=(0, 1, 0, 1))
    with pytest.raises(ValueError, match="gt4x"):
        readatl06.reduce_options(beams=["gt1l", "gt4x"])
    with pytest.raises(TypeError, match="options"):
        readatl06.reduce_granule(path, options=readatl06.reduce_options(), quality="none")
    with pytest.raises(TypeError, match="h5py.File"):
        readatl06.reduce_granule(42)
    renamed = tmp_path / "granule.h5"
    shutil.copy(path, renamed)
    with pytest.raises(ValueError, match="does not follow"):
        readatl06.reduce_granule(renamed)
    with pytest.raises(NotATL06Error):
        readatl06.reduce_granule(OTHER[0])
    truncated = tmp_path / path.name
    truncated.write_bytes(path.read_bytes()[:4096])
    with pytest.raises(GranuleError, match="truncated"):
        readatl06.reduce_granule(truncated)


def test_select_takes_python_values():
    names = [p.name for p in REAL] + ["README.md", "ATL03_20181014001049_02350102_006_01.h5"]
    sel = readatl06.select(names, segments=[2, "10-12"], start=dt.date(2018, 11, 1), end="2018-12-14")
    got = [g.name for g, _ in sel.granules]
    assert got == ["ATL06_20181111224708_06770102_001_01.h5", "processed_ATL06_20181115223845_07380102_001_01.h5",
                   "processed_ATL06_20181214211434_11800102_001_01.h5"]   # a date-only end holds its whole day
    assert len(sel.unparsed) == 1 and len(sel.refused) == 1 and sel.excluded == len(REAL) - 3
    assert [g.name for g, _ in readatl06.select(names, releases=6, rgts="878").granules] == \
        ["ATL06_20230816161508_08782002_006_02.h5"]
    first = str(REAL[0])                                      # ATL06_20181014001049_...
    assert readatl06.select(first, start=dt.datetime(2018, 10, 14, 0, 11)).granules == []
    east = dt.timezone(dt.timedelta(hours=2))                 # 02:10 at UTC+2 is 00:10 UTC
    assert len(readatl06.select(first, start=dt.datetime(2018, 10, 14, 2, 10, tzinfo=east)).granules) == 1
    assert readatl06.parse_name(REAL[0]).rgt == 235
    assert isinstance(readatl06.Selection(), readatl06.Selection)
    with pytest.raises(ValueError, match="outside 1-14"):
        readatl06.select(names, segments=15)
    with pytest.raises(ValueError, match="ISO-8601"):
        readatl06.select(names, start="yesterday")


def test_public_names():
    assert readatl06.__all__ == ["__version__", "ReduceOptions", "Selection", "Track", "open_tracks",
                                 "parse_name", "reduce_granule", "reduce_options", "select"]
    for name in readatl06.__all__:
        assert getattr(readatl06, name) is not None and name in dir(readatl06)
    with pytest.raises(AttributeError):
        readatl06.no_such_name


LIGHT = """import sys
import readatl06
loaded = lambda: sorted(m for m in sys.modules if m.split(".")[0] in %r)
print("IMPORT", loaded())
readatl06.select(["ATL06_20181014001049_02350102_001_01.h5"], segments="1-2")
print("SELECT", loaded(), readatl06.__version__)
""" % (HEAVY,)


def test_import_readatl06_is_light():
    """Neither ``import readatl06`` nor selecting by name loads h5py, mpi4py, matplotlib or pyarrow."""
    r = subprocess.run([sys.executable, "-c", LIGHT], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "IMPORT []" in r.stdout and "SELECT []" in r.stdout, r.stdout
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", "import readatl06"], capture_output=True,
                       text=True, cwd=ROOT)
    loaded = [line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")]
    assert "readatl06" in loaded and not [m for m in loaded if m.split(".")[0] in HEAVY]
