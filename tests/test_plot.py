"""readatl06 plot: real PNGs from real granules and from per-beam/merged/manifest fixtures built here
to the formats of docs/output.md and docs/merge.md. Every figure is opened again and checked pixel by pixel."""
import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
pytest.importorskip("matplotlib")
pytest.importorskip("pyproj")

from readatl06 import plot  # noqa: E402
from readatl06.plot import command as plot_cmd, data as plotdata, style as plot_style  # noqa: E402
from readatl06.atl06.subset import transformer  # noqa: E402

from conftest import DATA as _DATA  # noqa: E402

DATA = str(_DATA / "atl06")
SOUTH = "processed_ATL06_20190222031203_08500210_001_01.h5"   # Antarctica, region 10, descending
NORTH = "ATL06_20230816161508_08782002_006_02.h5"             # 58 N, region 2, ascending
REL003 = "ATL06_20181014001049_02350102_003_01.h5"            # _FillValue stored as a 1-element array
FAKE_ASC = "ATL06_20190301000000_09600310_001_01.h5"          # made-up ascending twin of SOUTH
KAMB_LIKE = [-1560e3, -1420e3, -260e3, -150e3]                # bbox_xy that cuts the SOUTH tracks
FLT_MAX = np.finfo(np.float32).max

VARS = {  # name: (dtype, units, raw source under land_ice_segments or None)
    "lon": ("f8", "degrees_east", "longitude"), "lat": ("f8", "degrees_north", "latitude"),
    "h_elv": ("f4", "m", "h_li"), "s_elv": ("f4", "m", "h_li_sigma"), "t_sec": ("f8", "s", None),
    "t_year": ("f8", "year", None), "h_rb": ("f4", "m", None), "snr": ("f4", "", None),
    "dac": ("f4", "m", None), "tide_ocean": ("f4", "m", None), "s_fg": ("i1", "", None),
    "q_flg": ("i1", "", "atl06_quality_summary"), "f_sn": ("i1", "", None),
    "segment_id": ("i4", "", "segment_id"), "rgt": ("i2", "", None), "cycle": ("i1", "", None),
    "orbit": ("i8", "", None),
}


def need(name):
    p = os.path.join(DATA, name)
    if not os.path.exists(p):
        pytest.skip(f"real granule {name} not available")
    return p


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    d = tmp_path_factory.mktemp("raw")
    out = {}
    for name in (SOUTH, NORTH, REL003):
        out[name] = str(d / name)
        shutil.copy(need(name), out[name])
        os.chmod(out[name], 0o644)
    return out


def _columns(raw, beam):
    g = raw[beam]["land_ice_segments"]
    h = g["h_li"][()]
    keep = (h != FLT_MAX) & (g["atl06_quality_summary"][()] == 0)
    n = int(keep.sum())
    cols = {}
    for name, (dt, _, src) in VARS.items():
        cols[name] = g[src][()][keep].astype(dt) if src else np.zeros(n, dt)
    cols["t_sec"] = g["delta_time"][()][keep] + 1198800018.0
    return cols


def _write_beam(path, cols, attrs, params):
    with h5py.File(path, "w") as f:
        for name, (dt, units, src) in VARS.items():
            ds = f.create_dataset(name, data=cols[name].astype(dt))
            ds.attrs.update({"units": units, "long_name": name, "source": src or "derived"})
        f.attrs.update(attrs)
        f.attrs["parameters"] = json.dumps(params)


@pytest.fixture(scope="module")
def run_dir(real, tmp_path_factory):
    """A reduce output folder: SOUTH (descending, 6 beams) and a made-up ascending twin, a subset box
    in the parameters, and a manifest of a resumed run."""
    out = tmp_path_factory.mktemp("out")
    params = {"bbox": None, "bbox_xy": KAMB_LIKE, "crs": "EPSG:3031", "polygon": None, "polygon_crs": None,
              "quality": "summary", "beams": list(plotdata.BEAMS)}
    counts = {}
    with h5py.File(real[SOUTH], "r") as raw:
        for beam in plotdata.BEAMS:
            cols = _columns(raw, beam)
            strength = plotdata.text(raw[beam].attrs["atlas_beam_type"])
            base = {"beam": beam, "spot": 1, "beam_strength": strength, "rgt": 850, "cycle": 2,
                    "segment": 10, "release": "001", "software": "readatl06 test"}
            _write_beam(out / f"{SOUTH[10:-3]}_{beam}_D.h5", cols,
                        dict(base, granule=SOUTH, direction="descending"), params)
            twin = {k: v[::-1].copy() for k, v in cols.items()}
            twin["lon"] = twin["lon"] + 3.0
            twin["segment_id"] = cols["segment_id"].max() - twin["segment_id"] + 1000
            _write_beam(out / f"{FAKE_ASC[:-3]}_{beam}_A.h5", twin,
                        dict(base, granule=FAKE_ASC, direction="ascending", rgt=960, segment=3), params)
            counts[beam] = cols["lat"].size
    records = [  # the first SOUTH record is superseded by the resumed run's record
        {"granule": SOUTH, "status": "failed", "outputs": [], "points": 0, "seconds": 0.5, "rank": 1,
         "error": "truncated HDF5 file", "segments": 0, "removed": {"fill": 0, "quality": 0, "subset": 0}},
        {"granule": FAKE_ASC, "status": "done", "outputs": [], "points": sum(counts.values()), "seconds": 2.0,
         "rank": 0, "error": None, "segments": 40000, "removed": {"fill": 300, "quality": 200, "subset": 100}},
        {"granule": "ATL06_20190305000000_10200310_001_01.h5", "status": "empty", "outputs": [], "points": 0,
         "seconds": 0.25, "rank": 1, "error": None, "segments": 5000,
         "removed": {"fill": 10, "quality": 20, "subset": 4970}},
        {"granule": SOUTH, "status": "done", "outputs": [], "points": sum(counts.values()), "seconds": 3.0,
         "rank": 1, "error": None, "segments": 40000, "removed": {"fill": 400, "quality": 100, "subset": 0}},
    ]
    with open(out / plotdata.MANIFEST_NAME, "w") as fh:
        for r in records:
            fh.write(json.dumps(r) + "\n")
        fh.write('{"granule": "half a line')                  # a run killed mid-write
    return {"dir": str(out), "counts": counts, "n": 2 * sum(counts.values()), "params": params}


@pytest.fixture(scope="module")
def merged(run_dir, tmp_path_factory):
    """The merged layout of docs/merge.md, built from the per-beam files of run_dir."""
    path = str(tmp_path_factory.mktemp("merged") / "merged.h5")
    names = [SOUTH, FAKE_ASC]                                  # sorted by acquisition time
    with h5py.File(path, "w") as f:
        f.attrs["parameters"] = json.dumps(run_dir["params"])
        f.create_dataset("granules/name", data=np.array(names, dtype="S"))
        f.create_dataset("granules/rgt", data=np.array([850, 960], "i2"))
        f.create_dataset("granules/sc_orient", data=np.array([0, 0], "i1"))
        for beam in plotdata.BEAMS:
            for gi, (name, d) in enumerate(((SOUTH, "descending"), (FAKE_ASC, "ascending"))):
                stem = plotdata.granule_stem(name)
                with h5py.File(os.path.join(run_dir["dir"], f"{stem}_{beam}_{d[0].upper()}.h5"), "r") as src:
                    for var in ("lon", "lat", "h_elv", "s_elv", "segment_id"):
                        f.create_dataset(f"{beam}/{d}/{var}", data=src[var][()])
                    f.create_dataset(f"{beam}/{d}/granule_index", data=np.full(src["lat"].shape, gi, "i4"))
    return path


# ---------------------------------------------------------------- image checks
def read_png(path, min_bytes=20_000):
    from matplotlib.image import imread
    assert os.path.getsize(path) > min_bytes
    img = imread(path)
    assert img.ndim == 3 and img.shape[2] in (3, 4)
    assert float(img[..., :3].var()) > 1e-3, "blank image"
    return img[..., :3]


def assert_size(img, fig):
    w, h = fig.get_size_inches() * fig.dpi
    assert img.shape[:2] == (round(h), round(w))


def coloured(rgb):
    return (rgb.max(axis=-1) - rgb.min(axis=-1)) > 0.2


def colour_at_data(img, ax, xy, r=3):
    """Fraction of data positions (axes data coordinates) with a coloured pixel within r pixels."""
    px = ax.transData.transform(np.asarray(xy, float))
    h = img.shape[0]
    col = coloured(img)
    hits = 0
    for x, y in px:
        i, j = int(round(h - 1 - y)), int(round(x))
        win = col[max(i - r, 0):i + r + 1, max(j - r, 0):j + r + 1]
        hits += bool(win.any())
    return hits / len(px)


def sample_offsets(ax, k=40):
    off = np.concatenate([c.get_offsets() for c in ax.collections if len(c.get_offsets())])
    return off[np.linspace(0, len(off) - 1, k).astype(int)]


# ---------------------------------------------------------------- map
@pytest.mark.parametrize("name, crs", [(SOUTH, "EPSG:3031"), (NORTH, "EPSG:3413")])
def test_map_of_raw_granule_picks_projection_by_hemisphere(real, tmp_path, name, crs):
    out = tmp_path / "map.png"
    f = plot.plot_map([real[name]], out)
    assert f["crs"] == crs
    with h5py.File(real[name], "r") as g:   # every non-fill h_li, nothing else
        n = sum(int((g[b]["land_ice_segments/h_li"][()] != FLT_MAX).sum()) for b in plotdata.BEAMS if b in g)
    assert f["n_points"] == f["n_drawn"] == n
    img = read_png(out)
    assert_size(img, f["figure"])
    ax = f["axes"][0]
    assert colour_at_data(img, ax, sample_offsets(ax)) > 0.9
    assert ax.get_xlabel() == f"x (km, {crs})"
    assert f["figure"].axes[-1].get_ylabel() == "h_elv (m)"          # the colourbar


def test_raw_fill_value_stored_as_array(real, tmp_path):
    with h5py.File(real[REL003], "r") as g:
        assert np.shape(g["gt1r/land_ice_segments/h_li"].attrs["_FillValue"]) == (1,)
        n = sum(int((g[b]["land_ice_segments/h_li"][()] != FLT_MAX).sum()) for b in plotdata.BEAMS)
    tracks, skipped = plotdata.load_tracks([real[REL003]])
    assert not skipped and sum(t.size for t in tracks) == n
    assert all(t.h.max() < 1e4 for t in tracks)


def test_map_of_output_folder_with_subset_box_and_both_directions(run_dir, tmp_path):
    out = tmp_path / "map.png"
    f = plot.plot_map([run_dir["dir"]], out)
    assert f["crs"] == "EPSG:3031"
    assert f["n_points"] == run_dir["n"] and f["n_tracks"] == 12 and f["n_granules"] == 2
    assert f["directions"] == {"ascending": run_dir["n"] // 2, "descending": run_dir["n"] // 2}
    assert f["outline_rings"] == 1
    img = read_png(out)
    assert_size(img, f["figure"])
    axes = f["axes"]
    assert [ax.get_title() for ax in axes] == ["ascending tracks", "descending tracks"]
    for ax in axes:
        assert colour_at_data(img, ax, sample_offsets(ax)) > 0.9
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert any(lb.startswith(ax.get_title().split()[0]) for lb in labels)
        assert any("subset --bbox-xy (EPSG:3031)" in lb for lb in labels)
        (ring,) = ax.get_lines()                              # the box, in km, where the run had it
        xy = ring.get_xydata()
        assert np.allclose([xy[:, 0].min(), xy[:, 0].max(), xy[:, 1].min(), xy[:, 1].max()],
                           np.array(KAMB_LIKE) / 1e3)
        # the outline is drawn: red pixels along its left edge
        px = ax.transData.transform([(KAMB_LIKE[0] / 1e3, (KAMB_LIKE[2] + KAMB_LIKE[3]) / 2e3)])[0]
        i, j = int(round(img.shape[0] - 1 - px[1])), int(round(px[0]))
        win = img[i - 3:i + 4, j - 3:j + 4]
        assert ((win[..., 0] > 0.8) & (win[..., 1] < 0.3) & (win[..., 2] < 0.3)).any()


def test_map_merged_file_equals_per_beam_files(run_dir, merged, tmp_path):
    f = plot.plot_map([merged], tmp_path / "m.png")
    assert f["n_points"] == run_dir["n"] and f["n_granules"] == 2 and f["outline_rings"] == 1


def test_map_before_after_and_thinning(run_dir, real, tmp_path):
    out = tmp_path / "ba.png"
    f = plot.plot_map([run_dir["dir"], real[SOUTH]], out, max_points=5000, outline=False)
    assert f["n_background"] > run_dir["n"] // 2               # raw keeps the quality-flagged points too
    assert f["n_points"] == run_dir["n"] and f["n_drawn"] <= 5000
    assert f["outline_rings"] == 0
    read_png(out)


def test_draw_map_thins_many_points(tmp_path):
    n = 400_000
    lat = np.linspace(-70, -80, n)
    t = plotdata.TrackView("ATL06_20200101000000_00010110_006_01.h5", "gt1l", "descending", "strong", "reduced",
                       "mem", np.full(n, 30.0), lat, np.linspace(0, 3000, n).astype("f4"))
    f = plot.draw_map([t], tmp_path / "big.png", max_points=20_000)
    assert f["n_points"] == n and 19_000 <= f["n_drawn"] <= 20_000
    assert f["hlim"][0] < 100 and f["hlim"][1] > 2900


def test_outline_rings_lonlat_box_and_projected_polygon():
    crs = "EPSG:3031"
    (label, ring), = plot.outline_rings({"bbox": [170, -170, -80, -75]}, crs)   # across the antimeridian
    x, y = transformer(crs).transform(180.0, -80.0)
    assert np.hypot(ring[:, 0] - x, ring[:, 1] - y).min() < 1.0                # passes (180, -80)
    r = np.hypot(ring[:, 0], ring[:, 1])
    assert r.max() < 1.8e6                                                     # never the long way round
    (label, ring), = plot.outline_rings({"bbox": [-180, 180, -90, -70]}, crs)   # all longitudes
    r = np.hypot(ring[:, 0], ring[:, 1])
    assert label == "--bbox -180 180 -90 -70" and np.ptp(r) < 1.0 and r.min() > 2e6   # the -70 parallel
    poly = {"type": "MultiPolygon", "coordinates": [
        [[[0, 0], [1e5, 0], [1e5, 1e5], [0, 1e5], [0, 0]], [[2e4, 2e4], [3e4, 2e4], [3e4, 3e4], [2e4, 2e4]]],
        [[[-5e5, -5e5], [-4e5, -5e5], [-4e5, -4e5], [-5e5, -5e5]]]]}
    rings = plot.outline_rings({"polygon": poly, "polygon_crs": "EPSG:3031"}, crs)
    assert len(rings) == 3                                                     # holes drawn too
    assert np.allclose(rings[0][1][:5], poly["coordinates"][0][0])
    rings = plot.outline_rings({"polygon": poly, "polygon_crs": "EPSG:3031"}, "EPSG:3413")
    assert len(rings) == 3 and len(rings[0][1]) > 5                            # densified when reprojected


# ---------------------------------------------------------------- profile
def test_profile_one_line_per_beam_strong_and_weak(run_dir, tmp_path):
    out = tmp_path / "p.png"
    f = plot.plot_profile([run_dir["dir"]], out, granule="20190222031203")
    assert f["granule"] == plotdata.granule_stem(SOUTH)
    assert f["granules_found"] == [plotdata.granule_stem(SOUTH), plotdata.granule_stem(FAKE_ASC)]
    ax = f["axes"][0]
    lines = ax.get_lines()
    assert len(lines) == f["n_lines"] == 6 == len(f["beams"])
    assert f["n_points"] == run_dir["n"] // 2
    assert len(ax.collections) == 6                                           # one s_elv band per beam
    for line, beam in zip(lines, f["beams"]):
        style = plot_style.STRENGTH_STYLE[f["strengths"][beam]]
        assert line.get_linewidth() == style["linewidth"]
        assert line.get_label().startswith(f"{beam} {f['strengths'][beam]}")
    assert {f["strengths"][b] for b in f["beams"]} == {"strong", "weak"}
    assert lines[0].get_linewidth() > lines[1].get_linewidth()                # gt1l strong, gt1r weak
    assert f["along_track"] == "segment_id"
    img = read_png(out)
    assert_size(img, f["figure"])
    x, y = lines[0].get_xdata(), lines[0].get_ydata()
    ok = np.flatnonzero(np.isfinite(y))
    assert colour_at_data(img, ax, np.column_stack([x, y])[ok[:: max(1, ok.size // 40)]]) > 0.9


def test_profile_beams_merged_and_default_granule(run_dir, merged, tmp_path):
    f = plot.plot_profile([merged], tmp_path / "p.png", beams=["gt1l", "gt3r"])
    assert f["granule"] == plotdata.granule_stem(SOUTH)                     # the earliest by default
    assert f["beams"] == ["gt1l", "gt3r"] and len(f["axes"][0].get_lines()) == 2
    assert f["strengths"] == {"gt1l": "strong", "gt3r": "weak"}            # from /granules/sc_orient
    assert f["n_points"] == run_dir["counts"]["gt1l"] + run_dir["counts"]["gt3r"]


def test_profile_of_raw_granule(real, tmp_path):
    f = plot.plot_profile([real[NORTH]], tmp_path / "p.png")
    assert f["n_lines"] == 6 and f["strengths"]["gt1l"] == "strong" and f["strengths"]["gt1r"] == "weak"


def test_profile_unknown_granule_is_usage_error(run_dir, tmp_path):
    with pytest.raises(plotdata.UsageError, match="not among"):
        plot.plot_profile([run_dir["dir"]], tmp_path / "p.png", granule="20991231")
    with pytest.raises(plotdata.UsageError, match="matches 2"):
        plot.plot_profile([run_dir["dir"]], tmp_path / "p.png", granule="ATL06_2019")


# ---------------------------------------------------------------- summary
def test_summary_last_record_wins(run_dir, tmp_path):
    out = tmp_path / "s.png"
    f = plot.plot_summary(run_dir["dir"], out)
    assert f["n_granules"] == 3
    assert f["status"] == {"done": 2, "empty": 1}
    assert f["points"] == run_dir["n"]
    assert f["removed"] == {"fill": 710, "quality": 320, "subset": 5070}
    assert f["seconds_per_rank"] == {0: 2.0, 1: 3.25} and f["granules_per_rank"] == {0: 1, 1: 2}
    ax = f["axes"]
    assert [p.get_height() for p in ax["kept"].patches] == [run_dir["n"] // 2, run_dir["n"] // 2, 0]
    assert len(ax["removed"].containers) == 3 and all(len(c) == 3 for c in ax["removed"].containers)
    assert [p.get_height() for p in ax["rank"].containers[0]] == [2.0, 3.25]
    img = read_png(out)
    assert_size(img, f["figure"])


# ---------------------------------------------------------------- command line
def _args(*argv):
    p = argparse.ArgumentParser()
    plot_cmd.add_arguments(p)
    return p.parse_args(list(argv))


class _Rank:
    def __init__(self, rank):
        self.rank = rank

    def Get_rank(self):
        return self.rank


def test_run_draws_on_rank_0_only(run_dir, tmp_path, capsys):
    out = tmp_path / "sub" / "s.png"
    args = _args(run_dir["dir"], "-o", str(out), "--kind", "summary")
    assert plot_cmd.run(args, _Rank(1)) == 0 and not out.exists()
    assert plot_cmd.run(args, _Rank(0)) == 0 and out.exists()
    assert "plot: wrote" in capsys.readouterr().out
    args = _args(run_dir["dir"], "-o", str(tmp_path / "p.png"), "--kind", "profile", "--granule", "nope")
    assert plot_cmd.run(args, None) == 2
    assert "--granule nope" in capsys.readouterr().err
    assert plot_cmd.run(_args(str(tmp_path / "missing"), "-o", str(tmp_path / "x.png")), None) == 2
    with pytest.raises(SystemExit):
        _args(run_dir["dir"], "-o", "x.png", "--kind", "histogram")


def test_matplotlib_not_imported_with_module():
    code = "import sys, readatl06.plot, readatl06.plot.map, readatl06.plot.profile, readatl06.plot.summary, readatl06.plot.data; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_reduce_with_plot_draws_map_and_summary(tmp_path):
    from matplotlib.image import imread

    from readatl06.cli import main as cli_main
    src = os.path.join(DATA, "processed_ATL06_20190222031203_08500210_001_01.h5")
    out = tmp_path / "out"
    assert cli_main(["reduce", str(src), "-o", str(out), "--no-progress", "--plot"]) == 0
    for name in ("readatl06-map.png", "readatl06-summary.png"):
        img = imread(out / name)
        assert img.shape[0] > 300 and img.shape[1] > 300 and img[..., :3].std() > 0.05
