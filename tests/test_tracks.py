import numpy as np
import pytest

from readatl06.parallel.schedule import assign
from readatl06.atl06.track import ASCENDING, DESCENDING, decode_orbit, directions, orbit_id
from readatl06.atl06.masks import fill_mask, quality_mask


def test_turning_latitude_splits_without_losing_points():
    i = np.arange(1001)
    lat = 87.9 - 1e-6 * (i - 400.0) ** 2          # up to the apex at i = 400, then down
    t = i * 0.00282
    d = directions(lat, t, region=4)
    assert d.size == lat.size
    assert np.all(d[:400] == ASCENDING) and np.all(d[401:] == DESCENDING)
    assert d[400] == ASCENDING                        # dlat/dt = 0 at the apex: takes its predecessor's
    assert np.all(np.diff(lat[d == ASCENDING]) > 0) and np.all(np.diff(lat[d == DESCENDING]) < 0)


def test_direction_uses_time_sign_and_edge_cases():
    lat = np.array([-70.0, -70.1, -70.2])
    assert directions(lat, np.array([0.0, 1.0, 2.0])).tolist() == [DESCENDING] * 3
    assert directions(lat, np.array([2.0, 1.0, 0.0])).tolist() == [ASCENDING] * 3
    assert directions(np.array([10.0]), np.array([0.0]), region=2).tolist() == [ASCENDING]
    assert directions(np.array([-10.0]), np.array([0.0]), region=9).tolist() == [DESCENDING]
    assert directions(np.zeros(0), np.zeros(0)).size == 0


def test_fill_and_quality_masks():
    fv = np.float32(np.finfo(np.float32).max)
    h = np.array([1.0, fv, np.nan, 2e4, -5.0], np.float32)
    assert fill_mask(h, fv).tolist() == [True, False, False, True, True]
    assert fill_mask(h, np.array([fv])[0]).tolist() == [True, False, False, True, True]
    q = np.array([0, 0, 0, 0, 1], np.int8)
    assert quality_mask(h, q, "summary").tolist() == [True, False, False, False, False]
    assert quality_mask(h, q, "none").all()
    with pytest.raises(ValueError):
        quality_mask(h, q, "best")


def test_orbit_id_round_trip_and_uniqueness():
    oid = orbit_id(20, 878, 2, 6, 2, 1, 0)
    assert oid == 200878020060210
    assert decode_orbit(oid) == dict(cycle=20, rgt=878, region=2, release=6, revision=2, beam_index=1, direction=0)
    ids = {orbit_id(c, r, g, 6, 1, b, d) for c in (1, 99) for r in (1, 1387) for g in (1, 14)
           for b in range(1, 7) for d in (0, 1)}
    assert len(ids) == 2 * 2 * 2 * 6 * 2 and max(ids) < np.iinfo(np.int64).max
    with pytest.raises(ValueError):
        orbit_id(100, 1, 1, 6, 1, 1, 0)


def test_schedule_balances_and_is_deterministic():
    sizes = [10, 9, 8, 1, 1, 1, 1, 1]
    parts = assign(sizes, 3)
    assert sorted(i for p in parts for i in p) == list(range(8))
    loads = [sum(sizes[i] for i in p) for p in parts]
    assert max(loads) - min(loads) <= 2
    assert assign(sizes, 3) == parts and assign(sizes, 1) == [list(range(8))]
    assert assign([], 4) == [[], [], [], []]
