"""Skips by granule bounds and slice reads give exactly the full-read output (issue: a box reads
only what is inside it). Every real granule and multi-chunk synthetic granules (regions 3, 4, 10,
11: monotonic and turning tracks) against a set of subsets; the full-read path decodes every beam
whole (``shortcuts=False``, ``--full-read``)."""
import json

import h5py
import numpy as np
import pyproj
import pytest

from readatl06.atl06 import envelopes as bounds
from readatl06.atl06.names import parse_name
from readatl06.reduce.granule import ReduceOptions, reduce_granule
from readatl06.atl06.subset import Subset

from conftest import REAL, run_cli, every_rank

BEAMS = ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    """Four granules of 25,000 segments per beam (3 latitude chunks), one per region 3, 4, 10, 11,
    and one with NaN coordinates (hostile)."""
    d = tmp_path_factory.mktemp("slices")
    for argv in ([d / "in", "--granules", "4", "--segments", "3", "4", "10", "11", "--segments-per-beam", "25000",
                  "--seed", "5"],
                 [d / "nan", "--granules", "1", "--segments", "10", "--segments-per-beam", "25000", "--seed", "6",
                  "--corrupt", "nan-coords"],
                 [d / "am", "--granules", "1", "--segments-per-beam", "25000", "--seed", "7",
                  "--bbox", "179.5", "-179.5", "-75", "-70", "--fit-box"]):     # am: crosses the antimeridian
        r = run_cli("synth", *argv)
        assert r.returncode == 0, r.stderr             # a generator that failed is no empty folder to test
    return d


def _points(path):
    """lon, lat of every segment of the granule (an independent h5py read)."""
    lon, lat = [], []
    with h5py.File(path, "r") as f:
        for b in BEAMS:
            g = f.get(f"{b}/land_ice_segments")
            if g is not None and "latitude" in g:
                lat.append(g["latitude"][()])
                lon.append(g["longitude"][()])
    return np.concatenate(lon), np.concatenate(lat)


def _polygon_file(tmp_path, name, ring):
    p = tmp_path / f"{name}.geojson"
    p.write_text(json.dumps({"type": "Polygon", "coordinates": [[list(map(float, v)) for v in ring]]}))
    return str(p)


def _subsets(path, tmp_path):
    """Subsets placed relative to the granule's own points: (name, Subset, expect), expect one of
    'points' (keeps some), 'inside' (holds a
    segment, kept or not), 'skip' (bounds must skip it), 'empty' (holds none), None (any)."""
    lon, lat = _points(path)
    finite = np.isfinite(lon) & np.isfinite(lat)
    lon, lat = lon[finite], lat[finite]
    s, n = float(lat.min()), float(lat.max())
    w, e = float(lon.min()), float(lon.max())
    mid = 0.5 * (s + n)
    third = (n - s) / 6
    one = len(lat) // 3
    out = [
        ("band", Subset(bbox=[-180, 180, mid - third, mid + third]), "points"),
        ("box", Subset(bbox=[w - 0.01, e + 0.01, mid - third, mid + third]), "points"),
        ("point", Subset(bbox=[lon[one] - 1e-9, lon[one] + 1e-9, lat[one] - 1e-9, lat[one] + 1e-9]), "inside"),
        ("near-miss", Subset(bbox=[-180, 180, min(90, n + 0.02), min(90, n + 0.05)]), "empty"),
        ("far", Subset(bbox=[_wrap(w + 90), _wrap(w + 100), -10, 10]), "skip"),
        ("all-but-its-longitudes", Subset(bbox=[_wrap(e + 1), _wrap(w - 1), -90, 90]), "empty"),
        ("antimeridian-wide", Subset(bbox=[150, -100, -90, 90]), None),
        ("w0", Subset(bbox=[0, 200, s, mid]), None),
        ("w0-full", Subset(bbox=[0, 360, mid, n]), "points"),
    ]
    # a polygon with one vertex exactly at a segment: it grazes the track at that point
    gx, gy = float(lon[one]), float(lat[one])
    ring = [(gx, gy), (gx + 1.0, gy + 0.3), (gx + 1.0, gy - 0.3), (gx, gy)]
    if w + 0.5 < gx < e - 0.5:
        ring = [(gx, gy), (e + 1.0, gy + 0.3), (e + 1.0, gy - 0.3), (gx, gy)]
    out.append(("polygon-graze", Subset(polygon_path=_polygon_file(tmp_path, "graze", ring)), None))
    crs = "EPSG:3031" if s < 0 else "EPSG:3413"
    x, y = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(lon, lat)
    xm, ym = np.median(x), np.median(y)
    out.append(("xy-box", Subset(bbox_xy=[xm - 20e3, xm + 20e3, ym - 20e3, ym + 20e3], crs=crs), "points"))
    out.append(("xy-pole", Subset(bbox_xy=[-1e6, 1e6, -1e6, 1e6], crs=crs), None))
    out.append(("xy-far", Subset(bbox_xy=[-xm - 5e3, -xm + 5e3, -ym - 5e3, -ym + 5e3], crs=crs), None))
    poly_xy = [(xm - 30e3, ym - 30e3), (xm + 30e3, ym - 30e3), (xm, ym + 30e3), (xm - 30e3, ym - 30e3)]
    out.append(("polygon-xy", Subset(polygon_path=_polygon_file(tmp_path, "xy", poly_xy), polygon_crs=crs), None))
    return out


def _wrap(x):
    return float((x + 180) % 360 - 180)


def _same(fast, full, parameters=True):
    """Identical tracks: names, attributes (``parameters`` too, unless False) and every value bit for bit."""
    assert [t.stem for t in fast.tracks] == [t.stem for t in full.tracks]
    for a, b in zip(fast.tracks, full.tracks):
        skip = () if parameters else ("parameters",)
        assert {k: v for k, v in a.attrs.items() if k not in skip} == {k: v for k, v in b.attrs.items() if k not in skip}
        assert list(a.data) == list(b.data)
        for k in a.data:
            assert a.data[k].dtype == b.data[k].dtype, k
            assert a.data[k].tobytes() == b.data[k].tobytes(), (a.stem, k)
            assert a.var_attrs[k].keys() == b.var_attrs[k].keys()


def _check_granule(path, tmp_path, subsets=None):
    gname = parse_name(path)
    for name, subset, expect in subsets or _subsets(path, tmp_path):
        fast = reduce_granule(str(path), gname, ReduceOptions(subset=subset))
        full = reduce_granule(str(path), gname, ReduceOptions(subset=subset, shortcuts=False))
        where = f"{path.name} / {name}"
        assert full.skipped is None, where
        _same(fast, full)
        if fast.skipped:                                  # never skip a granule with a point inside
            assert full.points == 0, where
            assert fast.skipped.startswith("outside the subset"), where
        else:
            assert fast.removed == full.removed, where
            assert fast.segments == full.segments, where
            assert fast.bytes_read <= full.bytes_read, where
        if expect == "points":
            assert full.points > 0, where
        elif expect == "inside":                          # in the subset (kept unless fill or quality)
            assert full.segments - full.removed["subset"] >= 1, where
        elif expect == "empty":
            assert full.points == 0, where
        elif expect == "skip":
            assert fast.skipped and fast.bytes_read == 0, where


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_granules_equal_full_reads(path, tmp_path):
    _check_granule(path, tmp_path)


def test_synthetic_granules_equal_full_reads(synth_dir, tmp_path):
    paths = sorted((synth_dir / "in").glob("*.h5")) + sorted((synth_dir / "nan").glob("*.h5"))
    assert {parse_name(p).region for p in paths} == {3, 4, 10, 11}
    for path in paths:
        _check_granule(path, tmp_path)


def _forms(a, b):
    """Every way of writing the lon/lat box from ``a`` eastward to ``b`` (both in [-180, 180)) as
    ``--bbox W E`` within -180..360: each edge as it is, +360 or -360 (W >= 180, W <= -180, the 0/360
    forms, W > E across the antimeridian)."""
    ws = [w for w in (a, a + 360.0, a - 360.0) if -180.0 <= w <= 360.0]
    es = [e for e in (b, b + 360.0, b - 360.0) if -180.0 <= e <= 360.0]
    return [(w, e) for w in ws for e in es if e - w < 360.0]


def _antimeridian_subsets(path):
    """Boxes across and near the antimeridian, placed on the granule's own points, each in all its
    forms: {box: [(form, Subset)]}."""
    lon, lat = _points(path)
    finite = np.isfinite(lon) & np.isfinite(lat)
    lon, lat = lon[finite], lat[finite]
    s, n = float(lat.min()), float(lat.max())
    mid, third = 0.5 * (s + n), (n - s) / 3
    m = float(lon[len(lon) // 3])
    boxes = {"half": (_wrap(m - 0.4), _wrap(m)),                   # part of the granule's longitudes
             "all-but": (_wrap(m), _wrap(m - 0.4)),                # across 180: all but that part
             "near-180": (179.9, -179.9), "from-180": (-180.0, _wrap(m)),
             "issue-350-10": (-10.0, 10.0), "issue-350-m": (-10.0, _wrap(m))}
    out = {}
    for box, (a, b) in boxes.items():
        out[box] = [(f"{box} {w:g} {e:g}", Subset(bbox=[w, e, mid - third, mid + third])) for w, e in _forms(a, b)]
    return out


def _check_antimeridian(path, tmp_path):
    """Every form of every box: the default equals --full-read, and all forms keep the same points."""
    gname = parse_name(path)
    boxes = _antimeridian_subsets(path)
    edges = [s.bbox[:2] for forms in boxes.values() for _, s in forms]
    assert any(w > e and w >= 180 for w, e in edges)
    for box, forms in boxes.items():
        _check_granule(path, tmp_path, [(name, subset, None) for name, subset in forms])
        first = reduce_granule(str(path), gname, ReduceOptions(subset=forms[0][1], shortcuts=False))
        for name, subset in forms[1:]:
            other = reduce_granule(str(path), gname, ReduceOptions(subset=subset, shortcuts=False))
            _same(first, other, parameters=False)           # the same points; the options as given differ
            assert first.removed == other.removed, f"{path.name} / {name}"
    return edges


def _both_360(edges):
    return any(w >= 180 and e >= 180 for w, e in edges)


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_antimeridian_boxes_real_granules(path, tmp_path):
    edges = _check_antimeridian(path, tmp_path)
    if _points(path)[0][0] < 0:
        assert _both_360(edges)                                 # W and E both in the 0..360 form


def test_antimeridian_boxes_synthetic_granules(synth_dir, tmp_path):
    am = sorted((synth_dir / "am").glob("*.h5"))
    assert len(am) == 1
    lon, _ = _points(am[0])
    assert lon.min() < -179.9 and lon.max() > 179.9                # the track crosses 180°
    edges = []
    for path in sorted((synth_dir / "in").glob("*.h5")) + am:
        edges += _check_antimeridian(path, tmp_path)
    assert _both_360(edges)


def test_box_across_the_antimeridian_on_the_command_line(real_dir, tmp_path):
    """Issue 22 item 3: ``--bbox 350 10 55 60`` is -10..10 (no point of these granules), and
    ``--bbox 350 158.7 57 59`` is -10..158.7 — with and without --full-read."""
    from readatl06.cli import main
    kept = {}
    for box in (["350", "10", "55", "60"], ["350", "158.7", "57", "59"], ["-10", "158.7", "57", "59"]):
        for extra in ([], ["--full-read"]):
            out = tmp_path / f"{'_'.join(box)}{''.join(extra)}"
            assert main(["reduce", str(real_dir), "-o", str(out), "--no-progress", "--bbox", *box, *extra]) == 0
            recs = [json.loads(x) for x in (out / "readatl06-manifest.jsonl").read_text().splitlines()]
            lons = np.concatenate([h5py.File(p, "r")["lon"][()] for p in sorted(out.glob("*_gt*.h5"))] or [[]])
            kept[(tuple(box), bool(extra))] = sum(r["points"] for r in recs), lons
    for box in (("350", "10", "55", "60"), ("350", "158.7", "57", "59"), ("-10", "158.7", "57", "59")):
        (a, la), (b, lb) = kept[(box, False)], kept[(box, True)]
        assert a == b and np.array_equal(la, lb), box
    assert kept[(("350", "10", "55", "60"), True)][0] == 0
    n, lons = kept[(("350", "158.7", "57", "59"), True)]
    assert n > 0 and lons.min() >= -10 and lons.max() <= 158.7
    assert n == kept[(("-10", "158.7", "57", "59"), True)][0]


def test_slice_reads_decode_less(synth_dir):
    """A band inside the middle of three latitude chunks: latitude decodes its first, last and
    middle chunks, every other variable only the middle one — not much more than 40 % of the bytes of the whole
    granule's reduce, and fewer than the full-read path with the same band."""
    path = next((synth_dir / "in").glob("*_??????03_*.h5"))
    lon, lat = _points(path)
    s, n = np.nanmin(lat), np.nanmax(lat)
    band = Subset(bbox=[-180, 180, s + 0.55 * (n - s), s + 0.7 * (n - s)])
    gname = parse_name(path)
    fast = reduce_granule(str(path), gname, ReduceOptions(subset=band))
    full = reduce_granule(str(path), gname, ReduceOptions(subset=band, shortcuts=False))
    whole = reduce_granule(str(path), gname, ReduceOptions())
    assert fast.points == full.points > 0
    assert fast.bytes_read < full.bytes_read
    assert fast.bytes_read < 0.6 * whole.bytes_read       # the middle chunk holds 40 % of the segments


def test_beam_search_skips_a_granule_without_bounds(synth_dir, tmp_path):
    """With the bounds attributes gone, a box beside the track is found empty from the first and
    last latitude chunks of each beam, and recorded with that reason."""
    import shutil
    src = next((synth_dir / "in").glob("*_??????10_*.h5"))
    path = tmp_path / src.name
    shutil.copy(src, path)
    with h5py.File(path, "r+") as f:
        for k in ("geospatial_lat_min", "geospatial_lat_max", "geospatial_lon_min", "geospatial_lon_max"):
            del f.attrs[k]
        for k in ("bounding_polygon_lat1", "bounding_polygon_lon1"):
            f["orbit_info"].pop(k, None)
    lon, lat = _points(path)
    box = Subset(bbox=[-180, 180, np.nanmax(lat) + 0.5, np.nanmax(lat) + 1.0])
    res = reduce_granule(str(path), parse_name(path), ReduceOptions(subset=box))
    assert res.points == 0 and res.skipped == "outside the subset by every beam's latitude range (first and last chunks)"
    assert res.removed["subset"] == res.segments == lat.size


def test_skip_is_recorded_as_empty_with_reason(real_dir, tmp_path):
    out = tmp_path / "out"
    r = run_cli("reduce", "--all-releases", real_dir, "-o", out, "--bbox", "10", "20", "-10", "10", "--no-progress")
    assert r.returncode == 0, r.stderr
    records = [json.loads(x) for x in (out / "readatl06-manifest.jsonl").read_text().splitlines()]
    assert len(records) == len(REAL)
    assert all(r["status"] == "empty" and r["reason"].startswith("outside the subset by its") for r in records)
    assert all(r["bytes_read"] == 0 for r in records)


def test_envelopes_hold_the_subset():
    """Envelope arithmetic: antimeridian intervals, a polar box holds the pole."""
    e = bounds.bbox_envelope(170, -170, -10, 10)
    assert e.lons == ((170.0, 180.0), (-180.0, -170.0))
    assert bounds.bbox_envelope(0, 360, 0, 1).lons is None
    assert bounds.box_lons(350, 10) == ((-10.0, 10.0),) == bounds.box_lons(-10, 10)     # wrapped first
    assert bounds.box_lons(350, 158.7) == ((-10.0, 158.7),)
    assert bounds.box_lons(170, 190) == bounds.box_lons(170, -170) == bounds.box_lons(170, 190 - 360)
    assert bounds.box_lons(190, 200) == ((-170.0, -160.0),) and bounds.box_lons(-180, 180) is None
    assert bounds.box_lons(10, 360) == ((10.0, 180.0), (-180.0, 0.0))
    assert e.overlaps(bounds.Envelope(-5, 5, ((-175.0, -172.0),)))
    assert not e.overlaps(bounds.Envelope(-5, 5, ((0.0, 10.0),)))
    polar = Subset(bbox_xy=[-1e5, 1e5, -1e5, 1e5], crs="EPSG:3031").envelopes[0]
    assert polar.north < -88 and polar.south == -90 and polar.lons is None
    fp = bounds.attrs_footprint(57.0, 59.0, 179.5, -179.5)       # crosses the antimeridian
    assert fp.overlaps(bounds.bbox_envelope(-179.8, -179.7, 58, 58.1))
    assert not fp.overlaps(bounds.bbox_envelope(-170, -160, 58, 58.1))


@pytest.mark.mpi(min_size=2)
def test_subset_run_identical_with_any_rank_count(mpi_tmp_path, mpi_real_dir):
    """A box that skips most granules by their bounds: the dynamic schedule on every rank gives the
    per-beam files and the records (status, reason, points) of one rank."""
    from mpi4py import MPI

    from readatl06.atl06.names import Selection
    from readatl06.reduce.run import run_reduce
    from test_mpi import assert_same, file_contents
    comm = MPI.COMM_WORLD
    opts = ReduceOptions(subset=Subset(bbox=[-134.5, -134.0, 58.6, 58.9]))
    world, one = str(mpi_tmp_path / "world"), str(mpi_tmp_path / "one")
    assert run_reduce(comm, [str(mpi_real_dir)], Selection(all_releases=True), opts, world, schedule_how="dynamic") == 0
    with every_rank(comm):
        if comm.rank == 0:
            assert run_reduce(MPI.COMM_SELF, [str(mpi_real_dir)], Selection(all_releases=True), opts, one) == 0
            assert_same(file_contents(world), file_contents(one))
            recs = []
            for out in (world, one):
                with open(f"{out}/readatl06-manifest.jsonl") as fh:
                    recs.append(sorted((r["granule"], r["status"], r.get("reason"), r["points"])
                                       for r in map(json.loads, fh)))
            assert recs[0] == recs[1]
            skipped = [r for r in recs[0] if r[2] and r[2].startswith("outside the subset by its")]
            assert 0 < len(skipped) < len(REAL) and all(r[3] == 0 for r in skipped)
    comm.Barrier()
