"""The demo (readatl06 demo, issue 17): its granules fill the Kamb box (points in every quarter,
ascending and descending, tracks from edge to edge), a second run reuses the cached granules, and one
process and two MPI ranks give the same granules, merged file and crossovers.

The end-to-end runs use the demo's own placement with fewer granules and one beam pair (the reduced
option set below) to stay fast; test_default_demo_plan_covers_box checks the default set's plan."""
import argparse
import hashlib
import pathlib
import shutil

import h5py
import numpy as np
import pytest

from conftest import run_cli
from readatl06.demo import command as demo
from readatl06.cli import main
from readatl06.synth import orbitgeom as og
from readatl06.synth import plan as synth_plan

KAMB = demo.KAMB
REDUCED = ["--granules", "8", "--beams", "gt2l", "gt2r"]
EDGE_KM = 5.0


def _xy(lon, lat):
    from readatl06.atl06.subset import transformer
    return transformer(demo.CRS).transform(np.asarray(lon, np.float64), np.asarray(lat, np.float64))


def _counts(x, y):
    xm, ym = (KAMB[0] + KAMB[1]) / 2, (KAMB[2] + KAMB[3]) / 2
    return np.array([[np.sum(((x >= xm) == bool(i)) & ((y >= ym) == bool(j))) for j in (0, 1)] for i in (0, 1)])


def _edge_km(x, y):
    """Distance (km) of points inside the box to its nearest edge."""
    return np.minimum.reduce([x - KAMB[0], KAMB[1] - x, y - KAMB[2], KAMB[3] - y]) / 1e3


def test_default_demo_plan_covers_box():
    """The default demo's granules (planned, not written): the tracks of their spans cross the
    box in both directions in every quarter, over several cycles, each span cut to the box."""
    args = demo.add_arguments(argparse.ArgumentParser()).parse_args([])
    o = demo.synth_options(args)
    plans = synth_plan.plan_granules(o["granules"], o["seed"], o["segments"], o["start"],
                                     region_box=tuple(o["region_box"]), fit_box=True, cycles=o["cycles"])
    assert len(plans) == args.granules and len({p.cycle for p in plans}) >= 2
    cells = {"A": np.zeros((2, 2), int), "D": np.zeros((2, 2), int)}
    for p in plans:
        ids = p.seg_first + np.arange(p.n_dense)
        lat, lon, _ = og.beam_track(og.segment_u(ids), p.rgt, np.zeros(ids.size))
        x, y = _xy(lon, lat)
        inside = (x >= KAMB[0]) & (x <= KAMB[1]) & (y >= KAMB[2]) & (y <= KAMB[3])
        assert inside.mean() > 0.9, p                 # cut to the box: nearly all of the span is inside
        asc = np.gradient(lat) > 0
        for d, sel in (("A", asc), ("D", ~asc)):
            cells[d] += _counts(x[inside & sel], y[inside & sel])
    for d in "AD":
        assert (cells[d] > 100).all(), (d, cells[d])


def _hash_h5(path, skip=()):
    """{dataset: sha256 of its bytes} of an HDF5 file."""
    out = {}
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and not any(name.startswith(s) for s in skip):
                out[name] = hashlib.sha256(np.ascontiguousarray(obj[()]).tobytes()).hexdigest()
        f.visititems(visit)
    return out


def _granules(work):
    (folder,) = [p for p in pathlib.Path(work).glob("granules-*") if p.is_dir()]
    return folder, sorted(folder.glob("ATL06_*.h5"))


@pytest.fixture(scope="module")
def serial_run(tmp_path_factory):
    """The reduced demo run once in this process (no mpirun), figures included."""
    work = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--workdir", str(work), *REDUCED]) == 0
    return work


def test_outputs_cover_the_box(serial_run):
    merged = serial_run / "kamb_merged.h5"
    with h5py.File(merged, "r") as f:
        groups = {}
        for beam in ("gt2l", "gt2r"):
            for direction in ("ascending", "descending"):
                g = f[f"{beam}/{direction}"]
                groups[(beam, direction)] = {k: g[k][()] for k in ("lon", "lat", "orbit", "granule_index")}
        assert f["granules/name"].shape[0] == 8
        cycles = set(f["granules/cycle"][()].tolist())
    assert len(cycles) >= 2                                       # several cycles
    for direction in ("ascending", "descending"):
        x, y = np.concatenate([_xy(groups[(b, direction)]["lon"], groups[(b, direction)]["lat"])
                               for b in ("gt2l", "gt2r")], axis=1)
        assert ((x >= KAMB[0]) & (x <= KAMB[1]) & (y >= KAMB[2]) & (y <= KAMB[3])).all()
        c = _counts(x, y)
        assert (c > 100).all(), (direction, c)                   # points in each quarter, both directions
    # every track (one beam of one RGT and cycle, over its granules) enters and leaves at the box's edges
    for beam in ("gt2l", "gt2r"):
        parts = {}
        for direction in ("ascending", "descending"):
            d = groups[(beam, direction)]
            key = d["orbit"] // 10 ** 9                            # cycle * 10^4 + rgt
            for k in np.unique(key):
                parts.setdefault(int(k), []).append((d["lon"][key == k], d["lat"][key == k]))
        for k, pieces in parts.items():
            lon, lat = np.concatenate([p[0] for p in pieces]), np.concatenate([p[1] for p in pieces])
            x, y = _xy(lon, lat)
            e = _edge_km(x, y)
            far = np.hypot(x - x[np.argmin(e)], y - y[np.argmin(e)])
            # nearest point to an edge, and an edge point far from it: the track spans the box
            assert e.min() < EDGE_KM and e[far > 100e3].min() < EDGE_KM, (beam, k)


def test_figures_and_crossovers(serial_run):
    figures = serial_run / "figures"
    for name in ("demo-map.png", "demo-profile.png", "demo-summary.png"):
        assert (figures / name).stat().st_size > 10_000, name
    if demo._xover() is not None:
        assert (figures / "demo-xover.png").stat().st_size > 10_000
        with h5py.File(serial_run / "kamb_xovers.h5", "r") as f:
            assert f["xovers/x"].shape[0] > 0


def test_second_run_reuses_the_cache(serial_run, capsys):
    folder, files = _granules(serial_run)
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files}
    capsys.readouterr()
    assert main(["demo", "--workdir", str(serial_run), *REDUCED, "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "reused from the cache" in out and "generate (cached)" in out
    folder2, files2 = _granules(serial_run)
    assert folder2 == folder
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in files2} == before
    # other options: another key, the old cache is replaced
    assert demo.cache_key(dict(demo.synth_options(_args(REDUCED)), seed=1), "v") != \
        demo.cache_key(demo.synth_options(_args(REDUCED)), "v")


def _args(argv):
    return demo.add_arguments(argparse.ArgumentParser()).parse_args(argv)


def test_cache_checks_its_files(tmp_path):
    d = tmp_path / "granules-x"
    d.mkdir()
    (d / "a.h5").write_bytes(b"x" * 10)
    assert demo.cached(d) is None                                  # no record
    (d / demo.CACHE_MARK).write_text('{"files": {"a.h5": 10}}')
    assert demo.cached(d) == [str(d / "a.h5")]
    (d / "a.h5").write_bytes(b"x" * 9)
    assert demo.cached(d) is None                                  # a file that changed


@pytest.mark.skipif(shutil.which("mpirun") is None, reason="no mpirun")
def test_one_process_and_two_ranks_give_the_same_outputs(serial_run, tmp_path):
    folder, files = _granules(serial_run)
    granules = {p.name: _hash_h5(p) for p in files}
    merged = _hash_h5(serial_run / "kamb_merged.h5")
    xovers = _hash_h5(serial_run / "kamb_xovers.h5") if (serial_run / "kamb_xovers.h5").exists() else None
    work = tmp_path / "mpi"
    r = run_cli("demo", "--workdir", work, *REDUCED, "--no-plots", ranks=2,
                env={"OMPI_MCA_mpi_yield_when_idle": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 rank(s)" in r.stdout and "granules written" in r.stdout
    folder2, files2 = _granules(work)
    assert folder2.name == folder.name
    assert {p.name: _hash_h5(p) for p in files2} == granules    # generated on 2 ranks: the same granules
    assert _hash_h5(work / "kamb_merged.h5") == merged
    if xovers is not None:
        assert _hash_h5(work / "kamb_xovers.h5") == xovers


def test_a_cut_granule_is_a_valid_granule(tmp_path):
    """The smallest granule of the default demo set, written alone: its span is the cut one, and
    segment ids, delta_time, the name, start/end_geoseg and segment_quality all describe it."""
    from readatl06.synth import granule
    o = demo.synth_options(_args([]))
    plans, opts = synth_plan.prepare(o["granules"], o["seed"], o["segments"], o["start"], 10000, 0.0,
                                     ["gt1l", "gt1r"], o["release"], None, o["fill_fraction"],
                                     o["bad_quality_fraction"], tuple(o["region_box"]), fit_box=True,
                                     cycles=o["cycles"])
    p = min(plans, key=lambda q: q.n_dense)
    u0, u1 = og.region_u_range(p.region)
    assert og.u_to_segment(u0) <= p.seg_first and p.seg_first + p.n_dense - 1 < og.u_to_segment(u1)
    path = granule.write_granule(tmp_path, p, **opts)
    assert path.name.split("_")[2] == f"{p.rgt:04d}{p.cycle:02d}{p.region:02d}"
    with h5py.File(path, "r") as f:
        assert sorted(k for k in f if k.startswith("gt")) == ["gt1l", "gt1r"]
        li = f["gt1l/land_ice_segments"]
        ids, dt = li["segment_id"][()], li["delta_time"][()]
        assert ids.min() >= p.seg_first and ids.max() <= p.seg_first + p.n_dense - 1
        step = np.diff(ids)
        assert (step >= 1).all()
        assert np.allclose(np.diff(dt) / step, og.SEGMENT_LENGTH / og.R_EARTH / og.N_MEAN, rtol=0.02)
        sq = f["gt1l/segment_quality/segment_id"][()]
        assert (sq == p.seg_first + np.arange(p.n_dense)).all()         # one record per segment of the span
        assert f["ancillary_data/start_geoseg"][0] == p.seg_first
        assert f["ancillary_data/end_geoseg"][0] == p.seg_first + p.n_dense - 1
        t0 = min(f[f"{b}/land_ice_segments/delta_time"][()].min() for b in ("gt1l", "gt1r"))
        assert f["ancillary_data/start_delta_time"][0] == t0
        assert li["h_li"].compression == "gzip" and li["h_li"].compression_opts == 6
        assert li["segment_id"].shuffle and not li["h_li"].shuffle
