"""Plots of hostile inputs (issue 16, item 14): Arctic and Antarctic tracks never silently projected in
one CRS (--hemisphere, --crs, one map per hemisphere after reduce --plot); a bad granule is one line
and exit 1, never a traceback; NaN coordinates of raw granules dropped; a FIFO among the PATHs skipped."""
import shutil

import h5py
import numpy as np
import pytest

from conftest import run_cli
from readatl06 import synth
from test_hostile import NORTH, SOUTH, _real, src_with_fifo, syn  # noqa: F401  (fixtures)

pytest.importorskip("matplotlib")
pytest.importorskip("pyproj")


@pytest.fixture(scope="module")
def plotting():
    from readatl06.plot import command as plot_cmd, map as plot_map_mod
    return plot_cmd, plot_map_mod


def _plot_args(plot_cmd, *argv):
    import argparse
    return plot_cmd.add_arguments(argparse.ArgumentParser()).parse_args([str(a) for a in argv])


def test_plot_string_h_li_granule_one_line_exit_1(syn, tmp_path, plotting):
    for kind in ("map", "profile"):
        out = tmp_path / f"{kind}.png"
        r = run_cli("plot", syn["string-h-li"], "-o", out, "--kind", kind, timeout=120)
        assert r.returncode == 1 and not out.exists(), r.stderr
        assert r.stderr.strip().splitlines() == [
            f"plot: nothing to draw: {syn['string-h-li']}: beam gt1l: land_ice_segments/h_li is stored as |S12 "
            "(byte strings), expected float32"]


def test_plot_bad_granule_beside_a_good_one_draws_the_good_one(syn, tmp_path, plotting):
    r = run_cli("plot", syn["huge-shape"], _real(SOUTH), "-o", tmp_path / "m.png", timeout=120)
    assert r.returncode == 0 and (tmp_path / "m.png").exists(), r.stderr
    assert "1 granules, EPSG:3031" in r.stdout
    assert f"plot: skipped {syn['huge-shape']}: beam gt1l: land_ice_segments/latitude declares" in r.stderr
    assert "Traceback" not in r.stderr


def test_plot_raw_nan_coordinates_dropped_and_directions_kept(syn, tmp_path, plotting):
    _, m = plotting
    clean = m.plot_map([syn[None]], tmp_path / "c.png", beams=["gt1l"])
    bad = m.plot_map([syn["nan-coords"]], tmp_path / "n.png", beams=["gt1l"])
    with h5py.File(syn[None], "r") as f:
        h = f["gt1l/land_ice_segments/h_li"][()]
        valid = np.isfinite(h) & (h != f["gt1l/land_ice_segments/h_li"].attrs["_FillValue"])
    spoiled = np.zeros(h.size, bool)
    for idx in synth.hostile_indices(h.size).values():
        spoiled[idx] = True
    assert clean["n_points"] == int(valid.sum())
    assert bad["n_points"] == int((valid & ~spoiled).sum()) < clean["n_points"]
    assert sorted(bad["directions"]) == sorted(clean["directions"]) and len(clean["directions"]) == 1


def test_map_of_both_hemispheres_one_map_each(tmp_path, plotting, capsys):
    """plot_map refuses one map of both; ``readatl06 plot`` draws one per hemisphere, as reduce --plot
    (issue 24, item 7)."""
    plot_cmd, m = plotting
    both = [_real(NORTH), _real(SOUTH)]
    with pytest.raises(m.HemisphereError) as info:
        m.plot_map(both, tmp_path / "x.png")
    msg = str(info.value)
    assert msg.startswith("plot: the tracks are in both hemispheres (") and "--hemisphere north" in msg
    from readatl06.cli import main
    assert main(["plot", *map(str, both), "-o", str(tmp_path / "x.png"), "--kind", "map"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert not (tmp_path / "x.png").exists()
    assert out[0].startswith(f"plot: wrote {tmp_path / 'x-north.png'} (map: ") and out[0].endswith(", EPSG:3413)")
    assert out[1].startswith(f"plot: wrote {tmp_path / 'x-south.png'} (map: ") and out[1].endswith(", EPSG:3031)")
    assert min((tmp_path / f"x-{h}.png").stat().st_size for h in ("north", "south")) > 10_000
    north, south = (m.plot_map([p], tmp_path / f"{i}.png") for i, p in enumerate(both))
    assert (north["crs"], south["crs"]) == ("EPSG:3413", "EPSG:3031")
    for h, alone in (("north", north), ("south", south)):
        f = m.plot_map(both, tmp_path / f"{h}.png", hemisphere=h)
        assert f["crs"] == alone["crs"] and f["n_points"] == alone["n_points"] and f["n_granules"] == 1
    f = m.plot_map(both, tmp_path / "all.png", crs="EPSG:3413")      # asked for: one CRS for all
    assert f["crs"] == "EPSG:3413" and f["n_points"] == north["n_points"] + south["n_points"]
    assert plot_cmd.run(_plot_args(plot_cmd, *both, "-o", tmp_path / "s.png", "--hemisphere", "south"), None) == 0
    assert "EPSG:3031" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--crs", "EPSG:4326"], "plot --crs EPSG:4326: not a projected CRS"),
    (["--crs", "EPSG:999999"], "plot --crs EPSG:999999: unknown coordinate reference system"),
    (["--kind", "profile", "--crs", "EPSG:3031"], "plot: --crs applies to --kind map only"),
    (["--kind", "profile", "--hemisphere", "south"], "plot: --hemisphere applies to --kind map only"),
    (["--hemisphere", "north"], "plot: no points in the northern hemisphere"),
])
def test_plot_crs_and_hemisphere_usage(tmp_path, plotting, capsys, argv, message):
    plot_cmd, _ = plotting
    assert plot_cmd.run(_plot_args(plot_cmd, _real(SOUTH), "-o", tmp_path / "x.png", *argv), None) == 2
    assert capsys.readouterr().err.startswith(message)


def test_reduce_plot_draws_one_map_per_hemisphere(tmp_path, plotting, capsys):
    plot_cmd, _ = plotting
    from readatl06.cli import main
    src, out = tmp_path / "src", tmp_path / "out"
    src.mkdir()
    for name in (NORTH, SOUTH):
        shutil.copy(_real(name), src / name)
    assert main(["reduce", str(src), "-o", str(out), "--no-progress"]) == 0
    drawn = plot_cmd.plot_after_run(str(out))
    assert sorted(drawn) == ["map-north", "map-south", "summary"]
    assert (drawn["map-north"]["crs"], drawn["map-south"]["crs"]) == ("EPSG:3413", "EPSG:3031")
    assert (out / "readatl06-map-north.png").stat().st_size > 10_000 and not (out / "readatl06-map.png").exists()
    assert "not drawn" not in capsys.readouterr().err


def test_plot_folder_with_a_fifo_finishes(src_with_fifo, tmp_path, plotting):
    src, fifo = src_with_fifo
    r = run_cli("plot", src, "-o", tmp_path / "m.png", "--hemisphere", "south", timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"plot: skipped {fifo}: not a regular file, not read" in r.stderr
