"""Crossovers (docs/crossovers.md): the crossing rule on hand-made lines, the spatial index and tiles against
all-pairs references, known surfaces, synthetic and real granules, output formats, ranks, the plot.

The ``mpi`` test runs under ``mpirun -n 2`` and ``-n 4`` (``--with-mpi``); the others are serial
(one starts ``mpirun -n 2`` itself)."""
import glob
import json
import os

import h5py
import numpy as np
import pytest

from conftest import run_cli, every_rank
from readatl06.xover import crossings as X
from readatl06.xover import run as R
from readatl06.xover import since as S
from readatl06.xover import tiles as Tl
from readatl06.xover import write as W
from readatl06.cli import main
from readatl06.atl06.gpstime import gps_to_decimal_year
from readatl06.atl06.track import orbit_id

T0 = 1_230_000_000.0            # GPS seconds, 2018-12
KAMB = ("-1124782", "81623", "-919821", "-96334")
SOUTH, NORTH = "EPSG:3031", "EPSG:3413"


# ---------------------------------------------------------------- helpers
def lines(xy, orbit=1, t=T0, h=None, max_gap=100.0, beam=1):
    """Lines of one track through the points ``xy`` (N x 2), t_sec rising 1 s per point."""
    xy = np.asarray(xy, float)
    ts = t + np.arange(len(xy), dtype=float)
    h = np.zeros(len(xy)) if h is None else np.asarray(h, float)
    return X.make_lines(xy[:, 0], xy[:, 1], h, gps_to_decimal_year(ts), ts, np.full(len(xy), orbit), beam,
                        max_gap)[0]


def n_cross(a, d):
    found = X.find_crossings(a, d)
    brute = X.brute_force(a, d)
    assert sorted(zip(found[0], found[1])) == sorted(zip(brute[0], brute[1]))
    return found[0].size


def wiggly(rng, n, start, heading, step=20.0, gap_every=None):
    """A track of n points from ``start`` along ``heading`` (radians) with a slow curve, noise, and
    optionally a 150 m gap every ``gap_every`` points."""
    k = np.arange(n)
    ang = heading + 0.2 * np.sin(k / n * 3.0)
    steps = np.full(n, step)
    if gap_every:
        steps[::gap_every] = 150.0
    steps[0] = 0.0
    x = start[0] + np.cumsum(steps * np.cos(ang)) + rng.normal(0, 1.0, n)
    y = start[1] + np.cumsum(steps * np.sin(ang)) + rng.normal(0, 1.0, n)
    return np.column_stack([x, y])


def plane_tracks(rng, n_tracks, n_points, centre, spread):
    """Ascending-ish (north-east) and descending-ish (north-west) tracks around ``centre``."""
    asc, des = [], []
    for k in range(n_tracks):
        s = np.asarray(centre) + rng.uniform(-spread, spread, 2)
        asc.append(wiggly(rng, n_points, s - [n_points * 10, n_points * 10], 0.8, gap_every=97 + k))
        des.append(wiggly(rng, n_points, s + [n_points * 10, -n_points * 10], 2.3, gap_every=89 + k))
    return asc, des


def write_merged(path, tracks, names=(b"handmade.h5",)):
    """A minimal merged file (/granules, /<beam>/<direction>/{lat, lon, h_elv, t_year, t_sec, orbit})."""
    groups = {}
    for t in tracks:
        groups.setdefault((t["beam"], t["direction"]), []).append(t)
    with h5py.File(path, "w") as f:
        f.create_dataset("granules/name", data=np.array(list(names)))
        for (beam, direction), ts in sorted(groups.items()):
            g = f.create_group(f"{beam}/{direction}")
            for name, key, dtype in (("lat", "lat", "f8"), ("lon", "lon", "f8"), ("h_elv", "h", "f4"),
                                     ("t_year", "t_year", "f8"), ("t_sec", "t_sec", "f8"), ("orbit", "orbit", "i8")):
                g.create_dataset(name, data=np.concatenate([np.broadcast_to(np.asarray(t[key], dtype), np.shape(t["lat"]))
                                                             for t in ts]))
            g["h_elv"].attrs["_FillValue"] = np.float32(3.4028235e38)


def handmade_tracks(rng, surface, rate=0.0, north=True):
    """Tracks in the Kamb area (and, with ``north``, ascending-only Arctic tracks that cross nothing),
    h = surface(x, y) + rate * (t_year - 2019)."""
    from readatl06.atl06.subset import transformer
    out = []
    asc, des = plane_tracks(rng, 8, 300, (-600e3, -500e3), 800.0)
    beams = ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")
    for k, xy in enumerate(asc + des):
        direction = "ascending" if k < len(asc) else "descending"
        t_sec = T0 + rng.uniform(0, 200) * 86400 + np.arange(len(xy)) * 0.003
        lon, lat = transformer("EPSG:4326", SOUTH).transform(xy[:, 0], xy[:, 1])
        t_year = gps_to_decimal_year(t_sec)
        beam = beams[k % 6]
        out.append({"beam": beam, "direction": direction, "lon": lon, "lat": lat, "t_sec": t_sec, "t_year": t_year,
                    "h": surface(xy[:, 0], xy[:, 1]) + rate * (t_year - 2019.0),
                    "orbit": orbit_id(2, 100 + k, 12 if direction == "ascending" else 10, 6, 1, beams.index(beam) + 1,
                                      direction == "descending")})
    if north:
        for k in range(3):
            xy = wiggly(rng, 200, (300e3 + 5e3 * k, -2000e3), 1.2)
            lon, lat = transformer("EPSG:4326", NORTH).transform(xy[:, 0], xy[:, 1])
            t_sec = T0 + np.arange(len(xy)) * 0.003
            out.append({"beam": "gt1l", "direction": "ascending", "lon": lon, "lat": lat, "t_sec": t_sec,
                        "t_year": gps_to_decimal_year(t_sec), "h": np.full(len(xy), 2000.0),
                        "orbit": orbit_id(3, 200 + k, 2, 6, 1, 1, 0)})
    return out


def reference(path_or_tracks, max_gap=100.0, crs=SOUTH, south=True):
    """Independent textbook all-pairs computation (parametric s, u from cross products; a two-level
    box test only to skip pairs of 64-line blocks that cannot meet): ``{(orbit_a, orbit_d): [(x, y)]}``."""
    import pyproj
    tf = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    tracks = {"ascending": [], "descending": []}
    for lat, lon, orbit, direction in path_or_tracks:
        keep = (lat < 0) if south else (lat >= 0)
        x, y = tf.transform(lon[keep], lat[keep])
        for o in np.unique(orbit[keep]):
            sel = orbit[keep] == o
            p = np.column_stack([x[sel], y[sel]])
            ok = np.hypot(*(p[1:] - p[:-1]).T) <= max_gap
            closed = ~np.append(ok[1:], False)
            tracks[direction].append((o, p[:-1][ok], (p[1:] - p[:-1])[ok], closed[ok]))
    out = {}
    for oa, pa, ra, ca in tracks["ascending"]:
        for od, pd, rd, cd in tracks["descending"]:
            for i in range(0, len(pa), 64):
                for j in range(0, len(pd), 64):
                    P, Rv, CA = pa[i:i + 64, None], ra[i:i + 64, None], ca[i:i + 64, None]
                    Q, Wv, CD = pd[None, j:j + 64], rd[None, j:j + 64], cd[None, j:j + 64]
                    ends_a, ends_d = np.concatenate([P, P + Rv], 0), np.concatenate([Q, Q + Wv], 1)
                    if (ends_a[..., 0].max() < ends_d[..., 0].min() or ends_a[..., 0].min() > ends_d[..., 0].max()
                            or ends_a[..., 1].max() < ends_d[..., 1].min()
                            or ends_a[..., 1].min() > ends_d[..., 1].max()):
                        continue
                    den = Rv[..., 0] * Wv[..., 1] - Rv[..., 1] * Wv[..., 0]
                    qp = Q - P
                    with np.errstate(divide="ignore", invalid="ignore"):
                        s = (qp[..., 0] * Wv[..., 1] - qp[..., 1] * Wv[..., 0]) / den
                        u = (qp[..., 0] * Rv[..., 1] - qp[..., 1] * Rv[..., 0]) / den
                    hit = (den != 0) & (s >= 0) & (u >= 0) & ((s < 1) | (CA & (s == 1))) & ((u < 1) | (CD & (u == 1)))
                    ii, jj = np.nonzero(hit)
                    pts = P[ii, 0] + s[ii, jj][:, None] * Rv[ii, 0]
                    if ii.size:
                        out.setdefault((int(oa), int(od)), []).extend(map(tuple, pts))
    return out


def merged_points(path):
    with h5py.File(path, "r") as f:
        for b in f:
            if b == "granules":
                continue
            for d in f[b]:
                g = f[b][d]
                yield g["lat"][()], g["lon"][()], g["orbit"][()], d


def assert_matches_reference(cols, ref):
    """Same crossings (count exactly per track pair) at the same points (1 mm)."""
    got = {}
    for o1, o2, x, y in zip(cols["orbit_1"], cols["orbit_2"], cols["x"], cols["y"]):
        key = (int(o1), int(o2)) if o1 % 10 == 0 else (int(o2), int(o1))   # (ascending, descending)
        got.setdefault(key, []).append((x, y))
    assert sorted(got) == sorted(ref)
    for key in ref:
        a, b = np.array(sorted(got[key])), np.array(sorted(ref[key]))
        assert a.shape == b.shape, key
        assert np.abs(a - b).max() < 1e-3, key


# ---------------------------------------------------------------- the crossing rule
def test_known_crossing_of_two_straight_tracks():
    """Ascending along x = 0 (y from -100 to 100), descending along y = 7 (x from 113 down): they cross
    at (0, 7), 35 % along the ascending line (0, 0)-(0, 20) and 65 % along (13, 7)-(-7, 7)."""
    ya = np.arange(-100.0, 101.0, 20.0)
    a = lines(np.column_stack([np.zeros_like(ya), ya]), orbit=10, t=T0, h=100.0 + 0.01 * ya)
    xd = np.arange(113.0, -108.0, -20.0)
    d = lines(np.column_stack([xd, np.full_like(xd, 7.0)]), orbit=21, t=T0 + 10 * 86400, h=200.0 - 0.02 * xd, beam=4)
    ia, jd, s, u, x, y = X.find_crossings(a, d)
    assert ia.size == 1 and (x[0], y[0]) == pytest.approx((0.0, 7.0), abs=1e-12)
    assert (s[0], u[0]) == pytest.approx((0.35, 0.65), abs=1e-12)
    c = X.crossover_columns(a, d, ia, jd, s, u, x, y)
    assert c["h_1"][0] == pytest.approx(100.07, abs=1e-9)            # the ascending track is earlier
    assert c["h_2"][0] == pytest.approx(200.0, abs=1e-9)
    t_a, t_d = T0 + 5 + 0.35, T0 + 10 * 86400 + 5 + 0.65               # points 5 and 6 of each track
    assert c["dt"][0] == pytest.approx((t_d - t_a) / 86400, abs=1e-9)
    assert c["t_1"][0] == pytest.approx(float(gps_to_decimal_year(t_a)), abs=1e-10)
    assert c["t_2"][0] == pytest.approx(float(gps_to_decimal_year(t_d)), abs=1e-10)
    assert c["dh"][0] == pytest.approx(99.93, abs=1e-9)
    assert c["dhdt"][0] == pytest.approx(99.93 / (c["dt"][0] / 365.25))
    assert (c["orbit_1"][0], c["orbit_2"][0], c["beam_1"][0], c["beam_2"][0]) == (10, 21, 1, 4)
    # the later one is track 2 whichever direction it flies
    d_early = lines(np.column_stack([xd, np.full_like(xd, 7.0)]), orbit=21, t=T0 - 86400, h=200.0 - 0.02 * xd)
    c = X.crossover_columns(a, d_early, *X.find_crossings(a, d_early))
    assert (c["orbit_1"][0], c["orbit_2"][0]) == (21, 10) and c["dt"][0] > 0 and c["t_2"][0] > c["t_1"][0]


SQUARE = [(0.0, -40.0), (0.0, -20.0), (0.0, 0.0), (0.0, 20.0), (0.0, 40.0)]


@pytest.mark.parametrize("a_pts, d_pts, expected", [
    (SQUARE, [(-30.0, -10.0), (30.0, -10.0)], 1),                          # plain crossing
    (SQUARE, [(-30.0, 0.0), (30.0, 0.0)], 1),                              # through a vertex of a: once
    (SQUARE, [(-20.0, 0.0), (0.0, 0.0), (20.0, 0.0)], 1),                  # both have a vertex there: once
    (SQUARE, [(30.0, 20.0), (10.0, 20.0), (-10.0, 20.0)], 1),
    ([(0.0, -40.0), (0.0, -20.0), (0.0, 0.0)], [(-30.0, 0.0), (30.0, 0.0)], 1),    # a ends on d: touches once
    ([(0.0, 0.0), (0.0, 20.0)], [(-30.0, 0.0), (30.0, 0.0)], 1),                    # a starts on d
    ([(0.0, -20.0), (0.0, 0.0)], [(0.0, 0.0), (20.0, 5.0)], 1),                      # end point meets start point
    ([(-20.0, -20.0), (0.0, 0.0), (20.0, -20.0)], [(-30.0, 0.0), (30.0, 0.0)], 1),   # touches at a vertex: once
    (SQUARE, [(10.0, -40.0), (10.0, 40.0)], 0),                             # parallel
    (SQUARE, [(0.0, -30.0), (0.0, 10.0)], 0),                               # collinear, overlapping
    (SQUARE, [(0.0, 50.0), (0.0, 70.0)], 0),                                # collinear, apart
    (SQUARE, [(5.0, 5.0), (5.0, 5.0), (-5.0, 5.0)], 1),                      # a zero-length line adds nothing
    (SQUARE, [(5.0, 5.0)], 0),                                              # one-point track: no line
    ([(0.0, 0.0)], [(-30.0, 0.0), (30.0, 0.0)], 0),
])
def test_crossing_rule_at_vertices_ends_parallel_and_collinear(a_pts, d_pts, expected):
    assert n_cross(lines(a_pts), lines(d_pts, orbit=2)) == expected


def test_max_gap_skips_long_lines():
    d = lines([(-30.0, 0.0), (30.0, 0.0)], orbit=2)
    assert n_cross(lines([(0.0, -75.0), (0.0, 75.0)]), d) == 0        # one 150 m line: no line at 100 m
    assert n_cross(lines([(0.0, -75.0), (0.0, 75.0)], max_gap=149.0), d) == 0
    assert n_cross(lines([(0.0, -75.0), (0.0, 75.0)], max_gap=150.0), d) == 1   # at most max_gap: kept
    # a gap splits a track in two runs; the line before it is closed
    a = lines([(0.0, -40.0), (0.0, -20.0), (0.0, 0.0), (0.0, 500.0), (0.0, 520.0)])
    assert list(a["closed"]) == [False, True, True]
    assert n_cross(a, lines([(-30.0, 0.0), (30.0, 0.0)], orbit=2)) == 1


def test_dt_max_keeps_only_pairs_closer_in_time():
    ya = np.arange(-100.0, 101.0, 20.0)
    a = lines(np.column_stack([np.zeros_like(ya), ya]))
    near = lines([(-30.0, 5.0), (30.0, 5.0)], orbit=2, t=T0 + 3 * 86400)
    far = lines([(-30.0, -5.0), (30.0, -5.0)], orbit=3, t=T0 + 30 * 86400)
    d = np.concatenate([near, far])
    found = X.find_crossings(a, d)
    assert X.crossover_columns(a, d, *found)["dt"].size == 2
    kept = X.crossover_columns(a, d, *found, dt_max=10.0)
    assert kept["orbit_2"].tolist() == [2] and kept["dt"][0] == pytest.approx(3.0, abs=1e-4)


# ---------------------------------------------------------------- index and tiles vs all pairs
@pytest.mark.parametrize("size", [None, 3.0, 37.0, 500.0, 5000.0])
def test_spatial_index_equals_brute_force(size):
    rng = np.random.default_rng(7)
    asc, des = plane_tracks(rng, 8, 250, (0.0, 0.0), 600.0)
    a = np.concatenate([lines(p, orbit=10 + k) for k, p in enumerate(asc)])
    d = np.concatenate([lines(p, orbit=50 + k) for k, p in enumerate(des)])
    found, brute = X.find_crossings(a, d, size=size, max_pairs=5000), X.brute_force(a, d)
    assert found[0].size > 50
    assert sorted(zip(found[0], found[1])) == sorted(zip(brute[0], brute[1]))
    order_f, order_b = np.lexsort((found[1], found[0])), np.lexsort((brute[1], brute[0]))
    for k in range(2, 6):                                     # and bit for bit the same values
        assert np.array_equal(found[k][order_f], brute[k][order_b])


@pytest.mark.parametrize("per_rank, nranks", [(1, 1), (8, 3), (400, 1), (3000, 2)])
def test_tiles_count_each_crossing_once(per_rank, nranks):
    """Tiles of any size (down to a few line lengths, so that many crossings lie near tile edges)
    give exactly the rows of one untiled search."""
    rng = np.random.default_rng(3)
    asc, des = plane_tracks(rng, 8, 250, (-600e3, -500e3), 600.0)
    a = np.concatenate([lines(p, orbit=10 + k) for k, p in enumerate(asc)])
    d = np.concatenate([lines(p, orbit=50 + k) for k, p in enumerate(des)])
    whole = X.sort_rows(Tl.concat([Tl.pair_crossings(a, d, None)]))
    xs, ys = np.concatenate([a["x0"], a["x1"], d["x0"], d["x1"]]), np.concatenate([a["y0"], a["y1"], d["y0"], d["y1"]])
    grid = Tl.tile_grid({0: (xs.min(), xs.max(), ys.min(), ys.max())}, nranks, per_rank)
    rec = Tl.tile_records(a, d, grid)
    tiled = X.sort_rows(Tl.concat(Tl.crossings_by_tile(rec, grid, None)))
    assert whole["x"].size > 50
    for k in whole:
        assert np.array_equal(whole[k], tiled[k], equal_nan=True), k


def test_shares_cover_every_row_once():
    rows = [5, 0, 17, 3, 1]
    for n in (1, 2, 3, 7, 30):
        got = sorted((i, r) for rank in range(n) for i, lo, hi in R.shares(rows, n, rank) for r in range(lo, hi))
        assert got == [(i, r) for i, m in enumerate(rows) for r in range(m)]


# ---------------------------------------------------------------- whole runs
@pytest.fixture(scope="module")
def handmade(tmp_path_factory):
    """A merged file of wiggly Kamb-area tracks whose surface is a known function of position and
    time (a plane, rising 0.5 m/yr), plus ascending-only Arctic tracks."""
    d = tmp_path_factory.mktemp("handmade")
    surface = lambda x, y: 1000.0 + 2e-3 * (x + 600e3) - 1e-3 * (y + 500e3)   # noqa: E731
    write_merged(d / "merged.h5", handmade_tracks(np.random.default_rng(11), surface, rate=0.5))
    assert main(["xover", str(d / "merged.h5"), "-o", str(d / "x.h5")]) == 0
    return d


def test_known_surface_dh_is_the_surface_change(handmade):
    cols, attrs = W.read(handmade / "x.h5")
    assert cols["x"].size > 50
    plane = 1000.0 + 2e-3 * (cols["x"] + 600e3) - 1e-3 * (cols["y"] + 500e3)
    for i in (1, 2):      # h linear in x, y and t: linear interpolation is exact (f4 storage ~1e-4 m)
        assert np.abs(cols[f"h_{i}"] - (plane + 0.5 * (cols[f"t_{i}"] - 2019.0))).max() < 2e-4
    assert np.abs(cols["dh"] - 0.5 * (cols["t_2"] - cols["t_1"])).max() < 2e-4
    ok = cols["dt"] > 5
    assert np.abs(cols["dhdt"][ok] - 0.5).max() < 0.01
    assert np.all(cols["t_2"] >= cols["t_1"]) and np.all(cols["dt"] >= 0)


def test_curved_surface_within_linear_interpolation_error(tmp_path):
    """h = 10 m sin(2 pi x / 2 km): along a line of at most L = 30 m the linear interpolation is
    within L^2/8 max|h''| = 5.6 mm of the surface."""
    f = lambda x, y: 1500.0 + 10.0 * np.sin(2 * np.pi * x / 2000.0)    # noqa: E731
    write_merged(tmp_path / "m.h5", handmade_tracks(np.random.default_rng(5), f, north=False))
    assert main(["xover", str(tmp_path / "m.h5"), "-o", str(tmp_path / "x.h5"), "--max-gap", "30"]) == 0
    cols, _ = W.read(tmp_path / "x.h5")
    bound = 30.0 ** 2 / 8 * 10.0 * (2 * np.pi / 2000.0) ** 2 + 2e-4
    assert cols["x"].size > 30
    for i in (1, 2):
        assert np.abs(cols[f"h_{i}"] - f(cols["x"], cols["y"])).max() <= bound
    assert np.abs(cols["dh"]).max() <= 2 * bound


def test_handmade_equals_independent_reference_and_north_has_none(handmade):
    cols, attrs = W.read(handmade / "x.h5")
    assert_matches_reference(cols, reference(list(merged_points(handmade / "merged.h5"))))
    assert reference(list(merged_points(handmade / "merged.h5")), crs=NORTH, south=False) == {}
    assert np.all(cols["lat"] < 0)
    assert attrs["crs"] == "EPSG:3031 where lat < 0, EPSG:3413 where lat >= 0"
    order = np.lexsort((cols["y"], cols["x"], cols["orbit_2"], cols["orbit_1"]))
    assert np.array_equal(order, np.arange(order.size))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """8 synthetic granules (regions 10 and 12) crossing a 10 km box inside the Kamb box, reduced with
    the Kamb box and merged."""
    d = tmp_path_factory.mktemp("synthxo")
    assert main(["synth", str(d / "g"), "--granules", "8", "--segments-per-beam", "600", "--segments", "10", "12",
                 "--bbox-xy", "-865000", "-855000", "-865000", "-855000", "--crs", SOUTH]) == 0
    assert main(["reduce", str(d / "g"), "-o", str(d / "out"), "--merge", str(d / "m.h5"), "--no-progress",
                 "--bbox-xy", *KAMB, "--crs", SOUTH]) == 0
    assert main(["xover", str(d / "m.h5"), "-o", str(d / "x.h5")]) == 0
    return d


def test_synthetic_granules_equal_independent_brute_force(synthetic):
    cols, attrs = W.read(synthetic / "x.h5")
    assert cols["x"].size > 50 and attrs["crs"] == SOUTH
    assert_matches_reference(cols, reference(list(merged_points(synthetic / "m.h5"))))
    from readatl06.synth.values import surface_height   # the surface seen by every track (+ ~0.3 m noise)
    for i in (1, 2):
        assert np.abs(cols[f"h_{i}"] - surface_height(cols["lat"], cols["lon"])).max() < 2.0
    assert np.median(np.abs(cols["dh"])) < 0.6
    assert set(cols["beam_1"]) <= {"gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r"}


def test_outdir_equals_merged_file_and_parquet_equals_hdf5(synthetic):
    assert main(["xover", str(synthetic / "out"), "-o", str(synthetic / "x.parquet")]) == 0
    a, _ = W.read(synthetic / "x.h5")
    b, meta = W.read(synthetic / "x.parquet")
    for k in X.COLUMNS:
        assert np.array_equal(a[k], b[k]), k
    assert meta["max_gap"] == 100.0 and meta["crs"] == SOUTH


def test_mpirun_two_ranks_equal_one(synthetic, handmade):
    for src, out in ((synthetic / "m.h5", synthetic / "x.h5"), (handmade / "merged.h5", handmade / "x.h5")):
        r = run_cli("xover", src, "-o", out.with_name("x2.h5"), "--overwrite", ranks=2)
        assert r.returncode == 0, r.stderr
        assert "on 2 rank(s)" in r.stdout
        a, _ = W.read(out)
        b, _ = W.read(out.with_name("x2.h5"))
        for k in X.COLUMNS:
            assert np.array_equal(a[k], b[k]), k


def test_same_sha256_on_1_2_and_3_ranks_and_across_runs(synthetic):
    """Issue 22, item 15: ``xover -o X.h5`` and ``-o X.parquet`` are the same bytes for any rank count
    and run (the rows are sorted before rank 0 writes them; no object times, no timestamps)."""
    import hashlib

    def sha(p):
        return hashlib.sha256(p.read_bytes()).hexdigest()
    for suffix in ("h5", "parquet"):
        ref = synthetic / f"s1.{suffix}"
        assert main(["xover", str(synthetic / "m.h5"), "-o", str(ref)]) == 0
        assert main(["xover", str(synthetic / "m.h5"), "-o", str(synthetic / f"s1b.{suffix}")]) == 0
        assert sha(synthetic / f"s1b.{suffix}") == sha(ref)
        for ranks in (2, 3):
            out = synthetic / f"s{ranks}.{suffix}"
            r = run_cli("xover", synthetic / "m.h5", "-o", out, ranks=ranks, timeout=120)
            assert r.returncode == 0 and f"on {ranks} rank(s)" in r.stdout, r.stderr
            assert sha(out) == sha(ref), (suffix, ranks)


def test_real_antarctic_tracks_against_independent_brute_force(real_reduced, tmp_path):
    """The real Antarctic granules are both descending (no real ascending pass there), so the CLI
    finds none in either hemisphere; their real geometry (spacing, gaps, curvature) is then tested
    against a mirror image of itself (lon -> 2 lon_c - lon) standing in for ascending tracks."""
    assert main(["xover", str(real_reduced), "-o", str(tmp_path / "x.h5")]) == 0
    cols, attrs = W.read(tmp_path / "x.h5")
    assert cols["x"].size == 0 and "where lat" in attrs["crs"]
    pts = []
    for p in sorted(glob.glob(str(real_reduced / "*_D.h5"))):
        with h5py.File(p, "r") as f:
            lat, lon, orbit = f["lat"][()], f["lon"][()], f["orbit"][()]
        if lat.mean() < 0:
            pts.append((lat, lon, orbit, "descending"))
            lon_c = float(np.median(lon))
            pts.append((lat, 2 * lon_c - lon, orbit - 1, "ascending"))
    assert len(pts) >= 8
    from readatl06.atl06.subset import transformer
    a, d = [], []
    for lat, lon, orbit, direction in pts:
        x, y = transformer(SOUTH).transform(lon, lat)
        zeros = np.zeros(lat.size)
        (a if direction == "ascending" else d).append(X.make_lines(x, y, zeros, zeros, zeros, orbit, 1, 100.0)[0])
    a, d = np.concatenate(a), np.concatenate(d)
    ia, jd, s, u, x, y = X.find_crossings(a, d)
    got = {"orbit_1": a["orbit"][ia], "orbit_2": d["orbit"][jd], "x": x, "y": y}
    ref = reference(pts)
    assert sum(len(v) for v in ref.values()) == ia.size > 20
    assert_matches_reference(got, ref)


def test_outputs_read_back_with_h5py_xarray_and_pyarrow(synthetic):
    import pyarrow.parquet as pq
    import xarray as xr
    with h5py.File(synthetic / "x.h5", "r") as f:
        g = f["xovers"]
        assert g.attrs["crs"] == SOUTH and g.attrs["featureType"] == "point"
        for k in X.COLUMNS:
            assert "long_name" in g[k].attrs, k
        assert g["dh"].attrs["units"] == "m" and g["dt"].attrs["units"] == "days"
        assert g["dhdt"].attrs["units"] == "m/yr" and g["lat"].attrs["standard_name"] == "latitude"
        n = g["x"].shape[0]
    with xr.open_dataset(synthetic / "x.h5", group="xovers", engine="h5netcdf") as ds:
        assert ds.sizes["xover"] == n and str(ds["beam_1"].values[0]).startswith("gt")
        assert set(ds.coords) >= {"lon", "lat"}
    assert main(["xover", str(synthetic / "m.h5"), "-o", str(synthetic / "y.parquet"), "--dt-max", "30"]) == 0
    table = pq.read_table(synthetic / "y.parquet")
    geo = json.loads(table.schema.metadata[b"geo"])
    assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry"
    col = geo["columns"]["geometry"]
    assert col["encoding"] == "WKB" and col["geometry_types"] == ["Point"] and "crs" not in col
    assert col["covering"]["bbox"]["xmin"] == ["bbox", "xmin"]
    wkb = np.frombuffer(b"".join(table["geometry"].to_pylist()), np.dtype([("o", "u1"), ("t", "<u4"), ("x", "<f8"),
                                                                           ("y", "<f8")]))
    assert np.all(wkb["o"] == 1) and np.all(wkb["t"] == 1)
    assert np.array_equal(wkb["x"], table["lon"].to_numpy()) and np.array_equal(wkb["y"], table["lat"].to_numpy())
    assert np.array_equal(table["bbox"].combine_chunks().field("xmin").to_numpy(), table["lon"].to_numpy())
    assert col["bbox"] == pytest.approx([table["lon"].to_numpy().min(), table["lat"].to_numpy().min(),
                                         table["lon"].to_numpy().max(), table["lat"].to_numpy().max()])
    assert str(table.schema.field("beam_1").type).startswith("dictionary")
    full, _ = W.read(synthetic / "x.h5")
    assert 0 < table.num_rows < full["x"].size and table["dt"].to_numpy().max() <= 30.0
    assert table.num_rows == np.count_nonzero(full["dt"] <= 30.0)


def test_plot_xover_writes_a_coloured_png(synthetic, tmp_path):
    import matplotlib.image as mpimg
    from readatl06.plot.xover import plot_xover
    facts = plot_xover(synthetic / "x.h5", tmp_path / "x.png", dpi=60)
    assert facts["n_xovers"] > 50 and facts["crs"] == [SOUTH]
    img = mpimg.imread(tmp_path / "x.png")[..., :3]
    saturation = img.max(axis=2) - img.min(axis=2)
    assert np.count_nonzero(saturation > 0.3) > 200            # red and blue dots, not only grey
    facts = plot_xover(synthetic / "y.parquet", tmp_path / "y.png", dpi=60)
    assert os.path.getsize(tmp_path / "y.png") > 0


def test_plot_xover_of_an_empty_file(real_reduced, tmp_path):
    from readatl06.plot.xover import plot_xover
    assert main(["xover", str(real_reduced), "-o", str(tmp_path / "x.parquet")]) == 0
    assert plot_xover(tmp_path / "x.parquet", tmp_path / "x.png", dpi=50)["n_xovers"] == 0
    assert os.path.getsize(tmp_path / "x.png") > 0


@pytest.mark.parametrize("extra, message", [
    (["-o", "x.csv"], "unknown output format"),
    (["-o", "x.h5", "--crs", "EPSG:4326"], "not a projected CRS"),
    (["-o", "x.h5", "--max-gap", "0"], "--max-gap"),
    (["-o", "x.h5", "--dt-max", "-1"], "--dt-max"),
    (["-o", "exists.h5"], "exists (use --overwrite"),
])
def test_bad_usage_exits_2_before_any_work(handmade, tmp_path, capsys, extra, message):
    (tmp_path / "exists.h5").write_bytes(b"")
    args = [a if not a.endswith((".h5", ".csv")) else str(tmp_path / a) for a in extra]
    assert main(["xover", str(handmade / "merged.h5"), *args]) == 2
    assert message in capsys.readouterr().err
    assert main(["xover", str(tmp_path / "nothing"), "-o", str(tmp_path / "y.h5")]) == 2
    assert not (tmp_path / "x.h5").exists() and not glob.glob(str(tmp_path / ".*tmp*"))


def test_crs_option_projects_everything_in_one_plane(handmade, tmp_path):
    assert main(["xover", str(handmade / "merged.h5"), "-o", str(tmp_path / "x.h5"), "--crs", SOUTH]) == 0
    a, attrs = W.read(tmp_path / "x.h5")
    b, _ = W.read(handmade / "x.h5")
    assert attrs["crs"] == SOUTH
    for k in X.COLUMNS:
        assert np.array_equal(a[k], b[k]), k


# ---------------------------------------------------------------- --since and --append (issue 25)
SINCE = "2019-04-01"           # the synthetic granules of cycle 3 start in April 2019


def granule_times(merged):
    """``{orbit // 100: acquisition time}`` of a merged file's granules, from /granules/name by a
    regular expression of its own (independent of readatl06's name parser)."""
    import datetime
    import re
    out = {}
    with h5py.File(merged, "r") as f:
        for raw in f["granules/name"][()]:
            m = re.search(r"ATL06_(\d{14})_(\d{4})(\d{2})(\d{2})_(\d{3})_(\d{2})", raw.decode())
            t, rgt, cycle, region, release, revision = m.groups()
            key = ((((int(cycle) * 10000 + int(rgt)) * 100 + int(region)) * 1000 + int(release)) * 100
                   + int(revision))
            out[key] = datetime.datetime.strptime(t, "%Y%m%d%H%M%S")
    return out


def assert_same_table(a_path, b_path):
    """Same rows in the same order, same schema and the same metadata (parquet: the same bytes)."""
    a, am = W.read(a_path)
    b, bm = W.read(b_path)
    for k in X.COLUMNS:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k], equal_nan=k == "dhdt"), k
    assert am == bm
    if str(a_path).endswith(".parquet"):
        import pyarrow.parquet as pq
        assert pq.read_schema(a_path).equals(pq.read_schema(b_path), check_metadata=True)


@pytest.fixture(scope="module")
def since_tables(synthetic, tmp_path_factory):
    """The synthetic product before cycle 3 (its granules reduced alone with the same options and
    merged: ``m_old.h5``), its crossover table (``old.parquet``), a full table of the whole product
    (``full.parquet``) and the table of what is new since April 2019 (``since.parquet``)."""
    import shutil
    d = tmp_path_factory.mktemp("since")
    (d / "g").mkdir()
    times = {p.name: p.name.split("_")[1] for p in (synthetic / "g").glob("*.h5")}
    old = [n for n, t in times.items() if t < SINCE.replace("-", "")]
    assert 0 < len(old) < len(times)
    for n in old:
        shutil.copy(synthetic / "g" / n, d / "g" / n)
    assert main(["reduce", str(d / "g"), "-o", str(d / "out"), "--merge", str(d / "m_old.h5"), "--no-progress",
                 "--bbox-xy", *KAMB, "--crs", SOUTH]) == 0
    assert main(["xover", str(d / "m_old.h5"), "-o", str(d / "old.parquet")]) == 0
    assert main(["xover", str(synthetic / "m.h5"), "-o", str(d / "full.parquet")]) == 0
    assert main(["xover", str(synthetic / "m.h5"), "-o", str(d / "since.parquet"), "--since", SINCE]) == 0
    return d


def test_since_finds_exactly_the_crossings_with_a_new_track(synthetic, since_tables):
    import datetime
    full, fm = W.read(since_tables / "full.parquet")
    got, gm = W.read(since_tables / "since.parquet")
    times = granule_times(synthetic / "m.h5")
    t = datetime.datetime.fromisoformat(SINCE)
    new = np.array([times[o1 // 100] >= t or times[o2 // 100] >= t for o1, o2 in zip(full["orbit_1"], full["orbit_2"])])
    assert 0 < np.count_nonzero(new) < new.size           # old x old, old x new and new x new pairs exist
    assert any(times[o // 100] < t for o in full["orbit_1"][new])
    for k in X.COLUMNS:                                    # the full table filtered by granule time, row by row
        assert np.array_equal(got[k], full[k][new], equal_nan=k == "dhdt"), k
    assert gm["since"] == "2019-04-01T00:00:00" and "since" not in fm
    assert gm["crs_rule"] == fm["crs_rule"] and gm["parameters_key"] == fm["parameters_key"]
    assert main(["xover", str(synthetic / "out"), "-o", str(since_tables / "since_dir.parquet"),
                 "--since", "2019-04-01T02:00:00+02:00"]) == 0           # OUTDIR; an offset is converted to UTC
    a, am = W.read(since_tables / "since_dir.parquet")
    assert am["parameters_key"] == gm["parameters_key"] and am["since"] == gm["since"]   # the same product
    for k in X.COLUMNS:
        assert np.array_equal(a[k], got[k], equal_nan=k == "dhdt"), k


@pytest.mark.parametrize("suffix", ["parquet", "h5"])
def test_since_append_equals_the_full_run(synthetic, since_tables, suffix, tmp_path, capsys):
    """Cycle 3 appended to the table of the earlier product: the full run's rows, order, schema
    and metadata -- the same bytes; appended again, nothing changes (no crossing twice)."""
    import hashlib
    import shutil
    full = since_tables / f"full.{suffix}"
    if not full.exists():
        assert main(["xover", str(synthetic / "m.h5"), "-o", str(full)]) == 0
        assert main(["xover", str(since_tables / "m_old.h5"), "-o", str(since_tables / f"old.{suffix}")]) == 0
    out = tmp_path / f"x.{suffix}"
    shutil.copy(since_tables / f"old.{suffix}", out)
    n_old = W.read(out)[0]["x"].size
    assert 0 < n_old < W.read(full)[0]["x"].size
    assert main(["xover", str(synthetic / "m.h5"), "-o", str(out), "--since", SINCE, "--append"]) == 0
    assert f"{n_old} of {n_old} rows kept" in capsys.readouterr().out
    assert_same_table(out, full)
    if suffix == "parquet":
        assert hashlib.sha256(out.read_bytes()).digest() == hashlib.sha256(full.read_bytes()).digest()
    for since in (SINCE, "2019-01-01"):                    # again, and from an earlier time: still the full table
        assert main(["xover", str(synthetic / "m.h5"), "-o", str(out), "--since", since, "--append"]) == 0
        assert_same_table(out, full)
    assert not glob.glob(str(tmp_path / ".*tmp*"))


@pytest.mark.parametrize("extra, message", [
    (["--max-gap", "50"], "was made with max_gap 100.0; this run has 50.0"),
    (["--dt-max", "30"], "was made with dt_max None; this run has 30.0"),
    (["--crs", SOUTH], "was made with crs_rule EPSG:3031 where lat < 0"),
    (["--since", "yesterday"], "xover --since 'yesterday' is not an ISO-8601 date"),
])
def test_append_refuses_a_table_made_otherwise(synthetic, since_tables, tmp_path, capsys, extra, message):
    import shutil
    out = tmp_path / "x.parquet"
    shutil.copy(since_tables / "old.parquet", out)
    before = out.read_bytes()
    assert main(["xover", str(synthetic / "m.h5"), "-o", str(out), "--since", SINCE, "--append", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) <= 2, err
    assert out.read_bytes() == before and not glob.glob(str(tmp_path / ".*tmp*"))


def test_append_refuses_another_product_and_a_missing_table(synthetic, handmade, tmp_path, capsys):
    import shutil
    out = tmp_path / "x.h5"
    shutil.copy(handmade / "x.h5", out)                   # crossings of granules this product does not hold
    with h5py.File(out, "a") as f:                        # (its options otherwise as this run's)
        f["xovers"].attrs["crs_rule"] = "EPSG:3031 where lat < 0, EPSG:3413 where lat >= 0"
        f["xovers"].attrs["parameters_key"] = W.read(synthetic / "x.h5")[1]["parameters_key"]
    assert main(["xover", str(synthetic / "m.h5"), "-o", str(out), "--since", SINCE, "--append"]) == 2
    assert "granules this product does not hold (e.g. cycle 2 RGT 0100 region 12)" in capsys.readouterr().err
    with h5py.File(out, "a") as f:                        # made before --append: no crs_rule
        del f["xovers"].attrs["crs_rule"]
    assert main(["xover", str(synthetic / "m.h5"), "-o", str(out), "--append"]) == 2
    assert "has no crs_rule (made by an earlier readatl06)" in capsys.readouterr().err
    assert main(["xover", str(synthetic / "m.h5"), "-o", str(tmp_path / "none.h5"), "--append"]) == 2
    assert "no such crossover table" in capsys.readouterr().err
    for name, content in (("junk.parquet", b"not parquet"), ("empty.h5", None)):
        if content is None:
            h5py.File(tmp_path / name, "w").close()
        else:
            (tmp_path / name).write_bytes(content)
        assert main(["xover", str(synthetic / "m.h5"), "-o", str(tmp_path / name), "--append"]) == 2
        err = capsys.readouterr().err
        assert f"{tmp_path / name}: not a readatl06 crossover table" in err and len(err.splitlines()) == 1, err
    assert main(["xover", str(handmade / "merged.h5"), "-o", str(tmp_path / "y.h5"), "--since", SINCE]) == 2
    assert "expected ATL06 granule names" in capsys.readouterr().err


def test_new_granules_and_append_logic():
    """The pure parts: keys, a granule replacing another release of one in the table, the rows kept."""
    from readatl06.atl06.names import parse_name
    import datetime
    names = [parse_name(n) for n in ("ATL06_20190101000000_01000212_006_01.h5", "ATL06_20190501000000_02000312_006_01.h5",
                                     "ATL06_20190102000000_03000212_006_02.h5")]
    keys = [S.granule_key(g) for g in names]
    assert keys == [orbit_id(2, 100, 12, 6, 1, 0, 0) // 100, orbit_id(3, 200, 12, 6, 1, 0, 0) // 100,
                    orbit_id(2, 300, 12, 6, 2, 0, 0) // 100]
    superseded = orbit_id(2, 300, 12, 6, 1, 1, 0)           # revision 01 of the third granule
    table = {"orbit_1": np.array([orbit_id(2, 100, 12, 6, 1, 3, 0), superseded, orbit_id(2, 100, 12, 6, 1, 1, 0)]),
             "orbit_2": np.array([orbit_id(3, 200, 12, 6, 1, 2, 1), orbit_id(2, 100, 12, 6, 1, 2, 1),
                                  orbit_id(2, 100, 12, 6, 1, 2, 1)]),
             "x": np.array([1.0, 2.0, 3.0])}
    new, replacing = S.new_granules(names, datetime.datetime(2019, 4, 1), table)
    assert new.tolist() == sorted([keys[1], keys[2]]) and replacing == 1
    cols, kept = S.append(table, {k: v[:0] for k, v in table.items()}, new, S.held_keys(names))
    assert kept == 1 and cols["x"].tolist() == [3.0]       # old x new and the superseded one are gone
    assert S.since_of(None, datetime.datetime(2019, 4, 1)) is None
    assert S.since_of("2019-02-01T00:00:00", datetime.datetime(2019, 4, 1)) == "2019-02-01T00:00:00"


# ---------------------------------------------------------------- under mpirun -n 2 and -n 4
@pytest.mark.mpi(min_size=2)
def test_any_rank_count_gives_identical_rows(mpi_tmp_path):
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    path = mpi_tmp_path / "merged.h5"
    with every_rank(comm):
        if comm.rank == 0:
            surface = lambda x, y: 500.0 + 1e-3 * x    # noqa: E731
            write_merged(path, handmade_tracks(np.random.default_rng(2), surface, rate=-1.0))
    comm.Barrier()
    assert R.run_xover(comm, str(path), str(mpi_tmp_path / "world.h5")) == 0
    assert R.run_xover(comm, str(path), str(mpi_tmp_path / "world.parquet"), dt_max=100.0) == 0
    comm.Barrier()
    with every_rank(comm):
        if comm.rank == 0:
            assert R.run_xover(MPI.COMM_SELF, str(path), str(mpi_tmp_path / "self.h5")) == 0
            a, _ = W.read(mpi_tmp_path / "world.h5")
            b, _ = W.read(mpi_tmp_path / "self.h5")
            c, _ = W.read(mpi_tmp_path / "world.parquet")
            assert a["x"].size > 50
            keep = a["dt"] <= 100.0
            for k in X.COLUMNS:
                assert np.array_equal(a[k], b[k]), k
                assert np.array_equal(a[k][keep], c[k]), k
    comm.Barrier()


def granule_name(track, new):
    """An ATL06 file name for a handmade track's granule (from its orbit id): in January 2019, or
    in March when ``new``."""
    from readatl06.atl06.track import decode_orbit
    o = decode_orbit(track["orbit"])
    day = 1 + o["rgt"] % 28
    return (f"ATL06_2019{3 if new else 1:02d}{day:02d}000000_{o['rgt']:04d}{o['cycle']:02d}{o['region']:02d}_"
            f"{o['release']:03d}_{o['revision']:02d}.h5").encode()


class CountingComm:
    """A communicator that counts the bytes each collective sends from this rank, by name (a
    pickled object by its pickle); anything else it is asked for fails the test."""

    def __init__(self, comm):
        self.comm, self.rank, self.size, self.sent = comm, comm.rank, comm.size, {}

    def _add(self, name, nbytes):
        self.sent.setdefault(name, []).append(int(nbytes))

    def _pickled(self, name, obj):
        import pickle
        self._add(name, len(pickle.dumps(obj)))

    def bcast(self, obj, root=0):
        if self.rank == root:
            self._pickled("bcast", obj)
        return self.comm.bcast(obj, root=root)

    def gather(self, obj, root=0):
        self._pickled("gather", obj)
        return self.comm.gather(obj, root=root)

    def allgather(self, obj):
        self._pickled("allgather", obj)
        return self.comm.allgather(obj)

    def Allreduce(self, send, recv, op):
        self._add("Allreduce", np.asarray(send).nbytes)
        return self.comm.Allreduce(send, recv, op=op)

    def Alltoall(self, send, recv):
        self._add("Alltoall", np.asarray(send).nbytes)
        return self.comm.Alltoall(send, recv)

    def Alltoallv(self, send, recv):
        self._add("Alltoallv", send[0].nbytes)
        return self.comm.Alltoallv(send, recv)

    def Gatherv(self, send, recv, root=0):
        self._add("Gatherv", send[0].nbytes)
        return self.comm.Gatherv(send, recv, root=root)

    def Allgatherv(self, send, recv):
        self._add("Allgatherv", send[0].nbytes)
        return self.comm.Allgatherv(send, recv)

    def Allgather(self, send, recv):
        self._add("Allgather", np.asarray(send).nbytes)
        return self.comm.Allgather(send, recv)

    def Bcast(self, buf, root=0):
        if self.rank == root:
            self._add("Bcast", buf[0].nbytes if isinstance(buf, (list, tuple)) else np.asarray(buf).nbytes)
        return self.comm.Bcast(buf, root=root)


@pytest.mark.mpi(min_size=2)
def test_appended_table_identical_on_any_rank_count_and_collectives_small(mpi_tmp_path):
    """``--since T --append`` at 2 or 4 ranks gives the bytes of one rank and of a full run; per
    rank the collectives send O(P) numbers besides the lines and crossings themselves: no
    allgather of per-tile arrays, the crossings to rank 0 as ROW_DTYPE arrays (107 bytes each)."""
    import datetime
    import hashlib
    import shutil
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    since = datetime.datetime(2019, 2, 1)
    p = mpi_tmp_path
    with every_rank(comm):
        if comm.rank == 0:
            tracks = handmade_tracks(np.random.default_rng(4), lambda x, y: 800.0 + 1e-3 * y, rate=0.3)
            new = [k % 2 == 1 for k in range(len(tracks))]
            write_merged(p / "all.h5", tracks, [granule_name(t, n) for t, n in zip(tracks, new)])
            write_merged(p / "old.h5", [t for t, n in zip(tracks, new) if not n],
                         [granule_name(t, n) for t, n in zip(tracks, new) if not n])
            assert R.run_xover(MPI.COMM_SELF, str(p / "old.h5"), str(p / "old.parquet")) == 0
            assert R.run_xover(MPI.COMM_SELF, str(p / "all.h5"), str(p / "full.parquet")) == 0
            for name in ("world", "self"):
                shutil.copy(p / "old.parquet", p / f"{name}.parquet")
    comm.Barrier()
    counting = CountingComm(comm)
    assert R.run_xover(counting, str(p / "all.h5"), str(p / "world.parquet"), since="2019-02-01", append=True) == 0
    comm.Barrier()
    with every_rank(comm):
        full, _ = W.read(p / "full.parquet")
        old, _ = W.read(p / "old.parquet")
        n_new = full["x"].size - old["x"].size             # with a track of March (every old one is in old.h5)
        assert n_new > 20 and old["x"].size > 10
        if comm.rank == 0:
            assert R.run_xover(MPI.COMM_SELF, str(p / "all.h5"), str(p / "self.parquet"), since=since, append=True) == 0
            digests = {hashlib.sha256((p / f"{n}.parquet").read_bytes()).hexdigest() for n in ("world", "self", "full")}
            assert len(digests) == 1
        sent = counting.sent
        assert set(sent) <= {"bcast", "Bcast", "allgather", "Allgather", "Allreduce", "Alltoall", "Alltoallv",
                             "Gatherv"}
        assert "gather" not in sent and max(sent.get("allgather", [0])) < 64   # small numbers only, no tables
        assert max(sent.get("Allgather", [0])) <= 16                        # a count and a chunk limit
        tiles = 4 * Tl.TILES_PER_RANK * comm.size                          # two hemispheres, rounding up
        assert sum(sent["Allreduce"]) <= 64 + 32 + 16 * tiles              # extents, counts, 2 loads per tile
        assert sum(sent["Alltoall"]) == 8 * comm.size
        rows = comm.allreduce(sum(sent["Gatherv"]))
        assert rows == R.ROW_DTYPE.itemsize * n_new and R.ROW_DTYPE.itemsize == 107
    comm.Barrier()
