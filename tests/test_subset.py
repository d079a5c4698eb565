"""Spatial subsets keep exactly the points an independent computation puts inside."""
import glob
import json
import os
import shutil

import h5py
import numpy as np
import pyproj
import pytest
from matplotlib.path import Path as MplPath

from conftest import DATA
from readatl06.cli import main
from readatl06.atl06.subset import Subset, lonlat_box_mask

KAMB = (-1124782.0, 81623.0, -919821.0, -96334.0)
NORTH = "ATL06_20230816161508_08782002_006_02.h5"
SOUTH = "processed_ATL06_20190222031203_08500210_001_01.h5"


def kept_points(src_path):
    """Independent read: (beam, lon, lat, segment_id) of every point passing fill + quality."""
    out = []
    with h5py.File(src_path, "r") as f:
        for beam in ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r"):
            if beam not in f or "land_ice_segments" not in f[beam]:
                continue
            lis = f[beam]["land_ice_segments"]
            h = lis["h_li"][()]
            ok = (h < 1e4) & (h > -1e4) & (lis["atl06_quality_summary"][()] == 0)
            out.append((beam, lis["longitude"][()][ok], lis["latitude"][()][ok], lis["segment_id"][()][ok]))
    return out


def reduced_ids(outdir):
    ids = {}
    for p in glob.glob(os.path.join(outdir, "*_gt??_[AD].h5")):
        with h5py.File(p, "r") as o:
            beam = o.attrs["beam"]
            ids.setdefault(beam, []).extend(o["segment_id"][()].tolist())
    return {b: sorted(v) for b, v in ids.items()}


def run_subset(tmp_path, name, *opts):
    src = tmp_path / "in"
    src.mkdir(parents=True, exist_ok=True)
    shutil.copy(DATA / "atl06" / name, src / name)
    out = tmp_path / "out"
    assert main(["reduce", str(src / name), "-o", str(out), "--no-progress", *map(str, opts)]) == 0
    return reduced_ids(out)


def expected_ids(name, inside):
    exp = {}
    for beam, lon, lat, seg in kept_points(DATA / "atl06" / name):
        m = inside(lon, lat)
        if m.any():
            exp[beam] = sorted(seg[m].tolist())
    return exp


def test_lonlat_box_unit_cases():
    lon = np.array([179.9, -179.9, 180.0, -180.0, 0.0, 5.0, -1.0, 10.0, 10.0001])
    lat = np.zeros(lon.size)
    across = lonlat_box_mask(lon, lat, 179.0, -179.0, -1, 1)
    assert across.tolist() == [True, True, True, True, False, False, False, False, False]
    zero = lonlat_box_mask(lon, lat, 0.0, 10.0, -1, 1)      # W = 0 is a real edge, inclusive
    assert zero.tolist() == [False, False, False, False, True, True, False, True, False]
    assert not lonlat_box_mask(lon, lat, 0.0, 10.0, 0.5, 1).any()


def test_lonlat_box_on_real_granule(tmp_path):
    pts = kept_points(DATA / "atl06" / NORTH)
    lon = np.concatenate([p[1] for p in pts])
    lat = np.concatenate([p[2] for p in pts])
    w, e = np.percentile(lon, [20, 70])
    s, n = np.percentile(lat, [10, 80])
    got = run_subset(tmp_path, NORTH, "--bbox", w, e, s, n)
    exp = expected_ids(NORTH, lambda x, y: (x >= w) & (x <= e) & (y >= s) & (y <= n))
    assert got == exp and sum(map(len, exp.values())) > 100


@pytest.mark.parametrize("branch", ["east_of_W", "west_of_E"])
def test_antimeridian_box_on_real_granule(tmp_path, branch):
    pts = kept_points(DATA / "atl06" / SOUTH)
    lon = np.concatenate([p[1] for p in pts])
    mid = float(np.median(lon))
    # W > E: the box runs from W eastwards across 180° to E
    w, e = (mid, -179.5) if branch == "east_of_W" else (179.5, mid)
    got = run_subset(tmp_path, SOUTH, "--bbox", w, e, -90, 0)
    exp = expected_ids(SOUTH, lambda x, y: (x >= w) | (x <= e))
    assert got == exp and 0 < sum(map(len, exp.values())) < lon.size


def test_kamb_box_matches_pyproj_on_points():
    rng = np.random.default_rng(1)
    lon = rng.uniform(-180, 180, 200_000)
    lat = rng.uniform(-90, -70, 200_000)
    x, y = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:3031", always_xy=True).transform(lon, lat)
    exp = (x >= KAMB[0]) & (x <= KAMB[1]) & (y >= KAMB[2]) & (y <= KAMB[3])
    got = Subset(bbox_xy=KAMB, crs="EPSG:3031").mask(lon, lat)
    assert np.array_equal(got, exp) and exp.sum() > 1000


def test_kamb_box_on_real_antarctic_granule(tmp_path):
    # This Pine Island Bay granule lies outside the Kamb box: pyproj puts no point inside, nor do we.
    got = run_subset(tmp_path, SOUTH, "--bbox-xy", *KAMB, "--crs", "EPSG:3031")
    assert got == {}
    # a box drawn around part of the same track in EPSG:3031 keeps exactly what pyproj puts inside
    t = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:3031", always_xy=True)
    pts = kept_points(DATA / "atl06" / SOUTH)
    xy = [t.transform(p[1], p[2]) for p in pts]
    xs = np.concatenate([a for a, _ in xy])
    ys = np.concatenate([b for _, b in xy])
    box = (np.percentile(xs, 10), np.percentile(xs, 60), np.percentile(ys, 30), np.percentile(ys, 90))
    got = run_subset(tmp_path / "b", SOUTH, "--bbox-xy", *box, "--crs", "EPSG:3031")

    def inside(lon, lat):
        x, y = t.transform(lon, lat)
        return (x >= box[0]) & (x <= box[1]) & (y >= box[2]) & (y <= box[3])
    assert got == expected_ids(SOUTH, inside)


def ring(cx, cy, rx, ry):
    return [[cx - rx, cy - ry], [cx + rx, cy - ry], [cx + rx, cy + ry], [cx - rx, cy + ry], [cx - rx, cy - ry]]


def test_polygon_with_hole_lonlat(tmp_path):
    pts = kept_points(DATA / "atl06" / SOUTH)
    lon = np.concatenate([p[1] for p in pts])
    lat = np.concatenate([p[2] for p in pts])
    cx, cy = float(np.median(lon)), float(np.median(lat))
    outer = ring(cx, cy, 3.0, 1.2)
    hole = ring(cx, cy, 2.0, 0.4)   # spans the track's width: cuts every beam into two pieces
    geo = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [outer, hole[::-1]]}}
    path = tmp_path / "poly.geojson"
    path.write_text(json.dumps(geo))
    got = run_subset(tmp_path, SOUTH, "--polygon", path)

    def inside(x, y):
        xy = np.column_stack([x, y])
        return MplPath(outer).contains_points(xy) & ~MplPath(hole).contains_points(xy)
    exp = expected_ids(SOUTH, inside)
    assert got == exp
    # both pieces of every beam's track on either side of the hole are kept
    for beam, ids in exp.items():
        assert np.max(np.diff(ids)) > 100, f"{beam}: the hole should split the track"


def test_multipolygon_in_projected_crs(tmp_path):
    t = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:3031", always_xy=True)
    pts = kept_points(DATA / "atl06" / SOUTH)
    x, y = t.transform(np.concatenate([p[1] for p in pts]), np.concatenate([p[2] for p in pts]))
    q = np.percentile(y, [10, 30, 60, 85])
    xc = float(np.median(x))
    a = ring(xc, (q[0] + q[1]) / 2, 60e3, (q[1] - q[0]) / 2)
    b = ring(xc, (q[2] + q[3]) / 2, 60e3, (q[3] - q[2]) / 2)
    geo = {"type": "MultiPolygon", "coordinates": [[a], [b]]}
    path = tmp_path / "basins.geojson"
    path.write_text(json.dumps(geo))
    got = run_subset(tmp_path, SOUTH, "--polygon", path, "--polygon-crs", "EPSG:3031")

    def inside(lon, lat):
        xy = np.column_stack(t.transform(lon, lat))
        return MplPath(a).contains_points(xy) | MplPath(b).contains_points(xy)
    assert got == expected_ids(SOUTH, inside) and got


def test_kamb_box_on_synthetic_granules_crossing_it(tmp_path):
    from readatl06 import synth
    gdir = tmp_path / "granules"
    paths = synth.generate(gdir, granules=3, seed=7, segments=(10, 11, 12), segments_per_beam=3000,
                           region_box=("EPSG:3031",) + KAMB)
    out = tmp_path / "out"
    assert main(["reduce", str(gdir), "-o", str(out), "--no-progress", "--bbox-xy", *map(str, KAMB),
                 "--crs", "EPSG:3031"]) == 0
    t = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:3031", always_xy=True)
    total = 0
    for p in paths:
        def inside(lon, lat):
            x, y = t.transform(lon, lat)
            return (x >= KAMB[0]) & (x <= KAMB[1]) & (y >= KAMB[2]) & (y <= KAMB[3])
        exp = expected_ids_path(p, inside)
        got = {}
        for f in glob.glob(os.path.join(out, p.name[:-3] + "_gt??_[AD].h5")):
            with h5py.File(f, "r") as o:
                got.setdefault(o.attrs["beam"], []).extend(o["segment_id"][()].tolist())
        assert {b: sorted(v) for b, v in got.items()} == exp
        total += sum(map(len, exp.values()))
    assert total > 1000


def expected_ids_path(path, inside):
    exp = {}
    for beam, lon, lat, seg in kept_points(path):
        m = inside(lon, lat)
        if m.any():
            exp[beam] = sorted(seg[m].tolist())
    return exp
