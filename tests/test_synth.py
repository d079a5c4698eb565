"""Tests of the synthetic ATL06 generator (readatl06.synth): layout, geometry, determinism,
file names, broken variants, CLI."""
import argparse
import datetime
import json
import pathlib
import re
import shutil

import h5py
import numpy as np
import pytest

from readatl06.synth import orbitgeom as og
from readatl06 import synth
from readatl06.synth import command as synth_cmd

pytestmark = pytest.mark.filterwarnings("error")

from conftest import DATA as SHARED  # noqa: E402  (../shared/data beside the clone)
REAL_006 = SHARED / "atl06" / "ATL06_20230816161508_08782002_006_02.h5"
FLT_MAX = np.finfo(np.float32).max
KAMB = ("EPSG:3031", -1124782, 81623, -919821, -96334)
NAME_RE = re.compile(r"ATL06_(\d{14})_(\d{4})(\d{2})(\d{2})_(\d{3})_(\d{2})\.h5")


def _one(tmp_path_factory, name, **kw):
    d = tmp_path_factory.mktemp(name)
    kw.setdefault("granules", 1)
    kw.setdefault("segments_per_beam", 400)
    return synth.generate(d, **kw)


@pytest.fixture(scope="module")
def g006(tmp_path_factory):
    return _one(tmp_path_factory, "g006", seed=5, fill_fraction=0.2)[0]


@pytest.fixture(scope="module")
def schema():
    if not (SHARED / "schema.json").exists():
        pytest.skip("shared schema.json not available")
    return json.loads((SHARED / "schema.json").read_text())


def _segment_datasets(f, beam="gt1l"):
    out = {}
    f[beam + "/land_ice_segments"].visititems(
        lambda n, o: out.__setitem__(n, o) if isinstance(o, h5py.Dataset) else None)
    return out


def _str_attr(ds, name):
    return ds.attrs[name].decode() if isinstance(ds.attrs[name], bytes) else str(ds.attrs[name])


def test_land_ice_segments_follow_schema(g006, schema):
    with h5py.File(g006, "r") as f:
        for beam in synth.BEAMS:
            have = _segment_datasets(f, beam)
            want = {k.split("/land_ice_segments/")[1]: e for k, e in schema.items()
                    if k.startswith("/gtx/land_ice_segments/") and "006" in e["present_in_releases"]}
            assert set(have) == set(want)
            scale = f[beam + "/land_ice_segments/delta_time"]
            assert h5py.h5ds.is_scale(scale.id)
            for name, e in want.items():
                ds = have[name]
                assert ds.dtype == np.dtype(e["dtype"]), name
                assert ds.chunks == tuple(e["chunks"]) and ds.maxshape == (None,), name
                assert (ds.compression, ds.compression_opts) == (e["compression"], e["compression_opts"]), name
                assert ds.shuffle == e["shuffle"] == (ds.dtype.kind in "iu"), name
                assert ds.fillvalue == np.asarray(e["hdf5_fillvalue"]).astype(ds.dtype), name
                assert ("_FillValue" in ds.attrs) == e["has__FillValue_attr"], name
                if e["has__FillValue_attr"]:
                    fv = ds.attrs["_FillValue"]
                    assert np.shape(fv) == () and fv.dtype == ds.dtype and fv == ds.fillvalue, name
                for a in ("units", "long_name", "coordinates", "description"):
                    assert _str_attr(ds, a) == e["attrs"][a], (name, a)
                    aid = h5py.h5a.open(ds.id, a.encode())
                    t = aid.get_type()
                    assert t.get_strpad() == h5py.h5t.STR_NULLTERM and not t.is_variable_str()
                    assert t.get_size() == len(e["attrs"][a]) + 1 and t.get_cset() == h5py.h5t.CSET_ASCII
                if name != "delta_time":
                    assert ds.dims[0][0] == scale, name


def test_netcdf_view_uses_delta_time_dimension(g006):
    xr = pytest.importorskip("xarray")
    pytest.importorskip("h5netcdf")
    for group in ("gt2l/land_ice_segments", "gt2l/land_ice_segments/geophysical"):
        with xr.open_dataset(g006, group=group, engine="h5netcdf") as ds:
            assert set(ds.sizes) == {"delta_time"}
    with xr.open_dataset(g006, group="gt2l/land_ice_segments", engine="h5netcdf") as ds:
        assert ds["h_li"].attrs["units"] == "meters" and float(ds["h_li"].max()) < 4001


def test_structure_matches_real_granule(g006, tmp_path):
    if not REAL_006.exists():
        pytest.skip("real granule not available")
    real = pathlib.Path(shutil.copy(REAL_006, tmp_path / REAL_006.name))

    def paths(f, top):
        out = set()
        f[top].visit(out.add)
        return out
    with h5py.File(real, "r") as r, h5py.File(g006, "r") as s:
        for top in ("gt1l", "gt3r", "orbit_info", "ancillary_data", "quality_assessment", "METADATA"):
            assert paths(s, top) == paths(r, top), top
        assert set(s.keys()) == set(r.keys())
        assert set(s.attrs) == set(r.attrs)
        for beam in synth.BEAMS:
            assert set(s[beam].attrs) == set(r[beam].attrs)
        assert s["orbit_info/rgt"].dtype == np.int16 and s["orbit_info/cycle_number"].dtype == np.int8
        assert s["orbit_info/rgt"].chunks == (16,) and s["orbit_info/rgt"].maxshape == (None,)
        assert s["ancillary_data/release"].dtype == np.dtype("S80")
        assert s["ancillary_data/release"][0] == b"006".ljust(80)
        assert s["ancillary_data/data_start_utc"].dtype == np.dtype("S27")
        assert s["ancillary_data/atlas_sdp_gps_epoch"][0] == 1198800018.0
        assert s["ancillary_data/atlas_sdp_gps_epoch"].chunks is None


def test_release_003_and_001_layouts(tmp_path_factory):
    p3 = _one(tmp_path_factory, "r003", release="003", segments_per_beam=200, beams=["gt2r"])[0]
    p1 = _one(tmp_path_factory, "r001", release="001", segments_per_beam=200, beams=["gt2r"])[0]
    with h5py.File(p3, "r") as f:
        fv = f["gt2r/land_ice_segments/h_li"].attrs["_FillValue"]
        assert fv.shape == (1,) and fv[0] == FLT_MAX
        assert "geoid_free2mean" not in f["gt2r/land_ice_segments/dem"]
        assert "layer_flag" in f["gt2r/land_ice_segments/geophysical"]
    with h5py.File(p1, "r") as f:
        n = f["gt2r/land_ice_segments/fit_statistics/n_seg_pulses"]
        assert n.dtype == np.int32 and n.attrs["_FillValue"] == np.iinfo(np.int32).max
        assert "layer_flag" not in f["gt2r/land_ice_segments/geophysical"]
        assert f["gt2r/residual_histogram/count"].shape[1] == 1000


def _beams(path):
    with h5py.File(path, "r") as f:
        return {b: {k: f[f"{b}/land_ice_segments/{k}"][...] for k in
                    ("latitude", "longitude", "segment_id", "delta_time", "h_li", "atl06_quality_summary",
                     "h_li_sigma", "fit_statistics/h_robust_sprd", "fit_statistics/snr_significance",
                     "fit_statistics/signal_selection_source")}
                for b in synth.BEAMS if b in f}


def _common(a, b):
    _, i, j = np.intersect1d(a["segment_id"], b["segment_id"], return_indices=True)
    return og.haversine(a["latitude"][i], a["longitude"][i], b["latitude"][j], b["longitude"][j])


def test_geometry_spacing_and_beam_layout(g006):
    data = _beams(g006)
    for b, d in data.items():
        step = np.diff(d["segment_id"]) == 1
        dist = og.haversine(d["latitude"][:-1], d["longitude"][:-1], d["latitude"][1:], d["longitude"][1:])[step]
        assert np.all(np.abs(dist - 20.0) < 0.2), b
        assert np.all(np.abs(np.diff(d["delta_time"])[step] - 0.00282) < 0.0002), b
        assert np.all(np.diff(d["segment_id"]) >= 1)
    for n in "123":
        assert np.all(np.abs(_common(data[f"gt{n}l"], data[f"gt{n}r"]) - 90.0) < 6.0)
    for a, b in (("gt1l", "gt2l"), ("gt2r", "gt3r")):
        assert np.all(np.abs(_common(data[a], data[b]) - 3300.0) < 20.0)


def test_region_bands_and_inclination():
    for region in range(1, 15):
        u0, u1 = og.region_u_range(region)
        u = np.linspace(u0, u1, 400)
        lat, _, _ = og.beam_track(u, 100, np.zeros(u.size))
        a, b = og.REGION_LATS[region]
        assert abs(lat[0] - a) < 0.01 and abs(lat[-1] - b) < 0.01, region
        turning = np.any(np.diff(np.sign(np.diff(lat))) != 0)
        assert turning == (region in (4, 11)), region
    assert abs(np.abs(og.beam_track(np.array([np.pi / 2]), 1, np.zeros(1))[0]).max() - 88.0) < 1e-6


@pytest.mark.parametrize("region", [4, 11])
def test_track_reverses_inside_polar_granules(tmp_path_factory, region):
    p = _one(tmp_path_factory, f"turn{region}", segments=[region], segments_per_beam=1500, beams=["gt1l", "gt3r"])[0]
    assert NAME_RE.fullmatch(p.name).group(4) == f"{region:02d}"
    for b, d in _beams(p).items():
        lat = d["latitude"]
        k = np.argmax(np.abs(lat))
        assert 10 < k < lat.size - 10, b
        assert abs(abs(lat[k]) - 88.0) < 0.1
        dlat = np.sign(np.diff(lat))
        assert dlat[0] != dlat[-1] and np.sum(dlat[1:] != dlat[:-1]) == 1


def test_fill_and_quality_flags(g006):
    data = _beams(g006)
    fills = []
    for b, d in data.items():
        fill = d["h_li"] == FLT_MAX
        fills.append(fill.mean())
        q = d["atl06_quality_summary"]
        assert np.all(q[fill] == 1)
        good = (q == 0)
        assert np.all(d["h_li_sigma"][good] < 1) and np.all(d["fit_statistics/h_robust_sprd"][good] < 1)
        assert np.all(d["fit_statistics/snr_significance"][good] < 0.02)
        assert np.all(d["fit_statistics/signal_selection_source"][good] <= 1)
        h = d["h_li"][~fill]
        assert np.all((h >= 0) & (h <= 4000))
        assert 0.02 < (q[~fill] == 1).mean() < 0.25
    assert 0.12 < np.mean(fills) < 0.3          # fill_fraction=0.2


def test_name_agrees_with_content(g006):
    m = NAME_RE.fullmatch(g006.name)
    with h5py.File(g006, "r") as f:
        t0 = min(f[f"{b}/land_ice_segments/delta_time"][:].min() for b in synth.BEAMS)
        utc = datetime.datetime(2018, 1, 1) + datetime.timedelta(seconds=float(t0))
        assert m.group(1) == utc.strftime("%Y%m%d%H%M%S")
        assert int(m.group(2)) == f["orbit_info/rgt"][0] == f["ancillary_data/start_rgt"][0]
        assert int(m.group(3)) == f["orbit_info/cycle_number"][0] == f["ancillary_data/start_cycle"][0]
        assert int(m.group(4)) == f["ancillary_data/start_region"][0]
        assert m.group(5) == f["ancillary_data/release"][0].decode().strip()
        assert m.group(6) == f["ancillary_data/version"][0].decode().strip()
        assert f["ancillary_data/start_delta_time"][0] == t0
        assert f.attrs["short_name"] == b"ATL06" and f.attrs["identifier_product_type"] == b"ATL06"
        assert f["orbit_info/sc_orient"][0] in (0, 1)
        check_beam_attrs(f)


# schema.md: sc_orient=1 (Forward): gtNl weak, gtNr strong, spots gt1l..gt3r = 6..1, pce gt1*=3
# gt2*=2 gt3*=1; sc_orient=0 (Backward): gtNl strong, spots 1..6, pce gt1*=1 gt3*=3
BEAM_TABLE = {1: {"gt1l": ("weak", 6, 3), "gt1r": ("strong", 5, 3), "gt2l": ("weak", 4, 2),
                  "gt2r": ("strong", 3, 2), "gt3l": ("weak", 2, 1), "gt3r": ("strong", 1, 1)},
              0: {"gt1l": ("strong", 1, 1), "gt1r": ("weak", 2, 1), "gt2l": ("strong", 3, 2),
                  "gt2r": ("weak", 4, 2), "gt3l": ("strong", 5, 3), "gt3r": ("weak", 6, 3)}}


def check_beam_attrs(f):
    sc = int(f["orbit_info/sc_orient"][0])
    for b in (b for b in synth.BEAMS if b in f):
        kind, spot, pce = BEAM_TABLE[sc][b]
        a = f[b].attrs
        assert a["atlas_beam_type"] == kind.encode() and a["groundtrack_id"] == b.encode()
        assert a["sc_orientation"] == (b"Forward" if sc == 1 else b"Backward")
        assert a["atlas_spot_number"] == str(spot).encode() and a["atlas_pce"] == f"pce{pce}".encode()


def test_orientation_both_ways(tmp_path):
    kw = dict(granules=1, segments_per_beam=100, beams=["gt1l", "gt2r", "gt3l"])
    fwd = synth.generate(tmp_path / "f", start="2018-11-01", **kw)[0]
    bwd = synth.generate(tmp_path / "b", start="2019-02-01", **kw)[0]
    for p, sc in ((fwd, 1), (bwd, 0)):
        with h5py.File(p, "r") as f:
            assert f["orbit_info/sc_orient"][0] == sc
            check_beam_attrs(f)


def test_cycle_rgt_time_model():
    # calibrated on real granules: cycle 20 RGT 878 crossed the node at delta_time 177437285.6
    assert abs(og.node_time(og.orbit_index(20, 878)) - 177437285.6) < 30
    assert abs(og.node_longitude(878) - 165.726) < 0.1
    c, r = og.cycle_rgt(og.orbit_at_time(og.utc_to_delta_time("2019-01-01T00:30:00")))
    assert (c, r) == (2, 54)
    assert str(og.delta_time_to_utc(177438185.57920742))[:23] == "2023-08-16T16:23:05.579"


def test_deterministic_and_rank_independent(tmp_path):
    kw = dict(granules=2, seed=11, segments=["2", "11"], segments_per_beam=150, size_spread=0.5,
              beams=["gt1l", "gt2r"])
    a = synth.generate(tmp_path / "a", **kw)
    b = synth.generate(tmp_path / "b", **kw, rank=0, size=2) + synth.generate(tmp_path / "b", **kw, rank=1, size=2)
    assert sorted(p.name for p in a) == sorted(p.name for p in b) and len(a) == 2
    for pa in a:
        with h5py.File(pa, "r") as fa, h5py.File(tmp_path / "b" / pa.name, "r") as fb:
            names = []
            fa.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            for n in names:
                assert fa[n][...].tobytes() == fb[n][...].tobytes(), n
    c = synth.generate(tmp_path / "c", **dict(kw, seed=12, granules=1))
    with h5py.File(a[0], "r") as fa, h5py.File(c[0], "r") as fc:
        key = "gt1l/land_ice_segments/h_li"
        assert fa[key].shape != fc[key].shape or not np.array_equal(fa[key][...], fc[key][...])


def test_consecutive_granules_advance(tmp_path):
    plans = synth.plan_granules(7, segments=[10, 11, 12], segments_per_beam=100, start="2019-05-01")
    times = [og.u_to_delta_time(og.segment_u(p.seg_first), p.orbit) for p in plans]
    assert np.all(np.diff(times) > 0)
    assert [p.region for p in plans[:3]] == [10, 11, 12] and plans[3].rgt == plans[0].rgt + 1


def test_kamb_box_demo_set():
    pyproj = pytest.importorskip("pyproj")
    plans = synth.plan_granules(24, segments=["10-12"], segments_per_beam=20000, region_box=KAMB)
    assert len(plans) == 24 and {p.region for p in plans} <= {10, 11, 12}
    tr = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:3031", always_xy=True)
    for p in plans[:6]:
        u = og.segment_u(p.seg_first + np.arange(0, p.n_dense, 20))
        lat, lon, _ = og.beam_track(u, p.rgt, np.full(u.size, 3345.0))
        x, y = tr.transform(lon, lat)
        inside = (x >= KAMB[1]) & (x <= KAMB[2]) & (y >= KAMB[3]) & (y <= KAMB[4])
        assert inside.sum() > 10


def test_beam_subset(tmp_path):
    p = synth.generate(tmp_path, granules=1, segments_per_beam=100, beams=["gt2r", "gt1l"])[0]
    with h5py.File(p, "r") as f:
        assert sorted(k for k in f if k.startswith("gt")) == ["gt1l", "gt2r"]
        assert sorted(f["quality_assessment"].keys())[:2] == ["gt1l", "gt2r"]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    return _one(tmp_path_factory, "small", segments_per_beam=100, beams=["gt1l", "gt1r"])[0]


@pytest.mark.parametrize("kind", synth.CORRUPT)
def test_corrupt_variants(tmp_path, kind, small):
    p = synth.generate(tmp_path, granules=1, segments_per_beam=100, beams=["gt1l", "gt1r"], corrupt=kind)[0]
    assert NAME_RE.fullmatch(p.name) and p.name == small.name
    if kind in ("empty", "truncated"):
        assert p.stat().st_size == (0 if kind == "empty" else small.stat().st_size // 2)
        with pytest.raises(OSError):
            h5py.File(p, "r")
        return
    with h5py.File(p, "r") as f:
        if kind == "no-beams":
            assert not [k for k in f if k.startswith("gt")] and "ancillary_data" in f and "orbit_info" in f
            assert f.attrs["short_name"] == b"ATL06"
        elif kind == "missing-var":
            assert "h_li" not in f["gt1l/land_ice_segments"] and "h_li" in f["gt1r/land_ice_segments"]
            assert "latitude" in f["gt1l/land_ice_segments"]
        else:
            assert f.attrs["short_name"] == b"ATL03" and f.attrs["identifier_product_type"] == b"ATL03"
            assert "land_ice_segments" not in f["gt1l"] and "heights" in f["gt1l"]


class _Comm:
    rank, size = 0, 1

    def barrier(self):
        pass


def test_cli_run(tmp_path, capsys):
    parser = synth_cmd.add_arguments(argparse.ArgumentParser())
    args = parser.parse_args([str(tmp_path), "--granules", "2", "--segments", "10-11", "--segments-per-beam", "100",
                              "--seed", "3", "--beams", "gt1l", "gt1r"])
    assert synth_cmd.run(args, _Comm()) == 0
    assert len(list(tmp_path.glob("ATL06_*_*10_006_01.h5"))) == 1
    assert "2 of 2 granules" in capsys.readouterr().out
    bad = parser.parse_args([str(tmp_path), "--segments", "15"])
    assert synth_cmd.run(bad, _Comm()) == 2
    assert synth.parse_segments(["10-12", 4]) == [4, 10, 11, 12]


@pytest.mark.mpi(min_size=2)
def test_mpi_ranks_write_disjoint_sets(tmp_path_factory):
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    out = comm.bcast(str(tmp_path_factory.mktemp("mpi")) if comm.rank == 0 else None)
    parser = synth_cmd.add_arguments(argparse.ArgumentParser())
    args = parser.parse_args([out, "--granules", "4", "--segments-per-beam", "100"])
    assert synth_cmd.run(args, comm) == 0
    comm.barrier()
    assert len(list(pathlib.Path(out).glob("ATL06_*.h5"))) == 4
