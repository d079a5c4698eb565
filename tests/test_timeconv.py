import datetime as dt

import numpy as np

from readatl06.atl06.gpstime import gps_minus_utc, gps_to_datetime64, gps_to_decimal_year

EPOCH_2018 = 1198800018.0   # atlas_sdp_gps_epoch


def gps_of(utc, leaps):
    """Hand computation: GPS seconds of a UTC instant with ``leaps`` leap seconds since 1980."""
    return (utc - dt.datetime(1980, 1, 6)).total_seconds() + leaps


def test_delta_time_zero_is_2018_exactly():
    assert gps_to_decimal_year(EPOCH_2018 + 0.0) == 2018.0
    assert gps_to_datetime64(EPOCH_2018) == np.datetime64("2018-01-01T00:00:00")


def test_mid_year_and_leap_year_instants():
    # 2018-07-02T12:00:00 UTC is 182.5 days into a 365-day year
    assert gps_to_decimal_year(gps_of(dt.datetime(2018, 7, 2, 12), 18)) == 2018 + 182.5 / 365
    # 2020-03-01T00:00:00 UTC is 60 days into the 366-day year 2020
    assert abs(gps_to_decimal_year(gps_of(dt.datetime(2020, 3, 1), 18)) - (2020 + 60 / 366)) < 1e-12
    # 2024-12-31T18:00:00 UTC, leap year
    assert abs(gps_to_decimal_year(gps_of(dt.datetime(2024, 12, 31, 18), 18)) - (2024 + 365.75 / 366)) < 1e-12


def test_leap_seconds_applied_not_tai():
    assert gps_minus_utc(0.0) == 0
    assert gps_minus_utc(EPOCH_2018) == 18
    # the last leap second: 2016-12-31T23:59:60 then 2017-01-01T00:00:00 (GPS - UTC goes 17 -> 18)
    t2017 = gps_of(dt.datetime(2017, 1, 1), 18)
    assert gps_to_decimal_year(t2017) == 2017.0
    assert gps_minus_utc(t2017 - 1.5) == 17
    # astropy's Time(..., format="gps").decimalyear is on TAI, 37 s away from UTC: not us
    assert abs((gps_to_decimal_year(EPOCH_2018) - 2018.0) * 365 * 86400) < 1e-3


def test_vectorised_and_monotonic():
    t = EPOCH_2018 + np.linspace(0, 5 * 365.25 * 86400, 10001)
    y = gps_to_decimal_year(t)
    assert y.shape == t.shape and np.all(np.diff(y) > 0)


def test_year_table_equals_calendar_conversion_bit_for_bit():
    """The fast year-table path gives the very bits of the datetime64 calendar path, also at year
    boundaries, before 1970 and after 2200 (where the calendar path is used)."""
    from readatl06.atl06.gpstime import posix_to_decimal_year

    def calendar(t):
        year = np.floor(t).astype("datetime64[s]").astype("datetime64[Y]")
        start = year.astype("datetime64[s]").astype(np.int64)
        length = (year + 1).astype("datetime64[s]").astype(np.int64) - start
        return year.astype(np.int64) + 1970 + (t - start) / length

    rng = np.random.default_rng(3)
    edges = np.array([np.datetime64(f"{y}-01-01", "s").astype(np.int64) for y in range(1971, 2200, 7)], float)
    t = np.concatenate([rng.uniform(0, 7.2e9, 20000), edges, edges - 0.25, edges - 1e-6, edges + 1e-6])
    assert posix_to_decimal_year(t).tobytes() == calendar(t).tobytes()
    for y in (1999, 2018, 2024):          # one year for all points (the usual granule): the scalar path
        start = float(np.datetime64(f"{y}-01-01", "s").astype(np.int64))
        within = start + rng.uniform(0, 365 * 86400, 1000)
        assert posix_to_decimal_year(within).tobytes() == calendar(within).tobytes()
    for outside in (np.array([-1e9, 5.0]), np.array([7.3e9, 1e10])):
        assert posix_to_decimal_year(outside).tobytes() == calendar(outside).tobytes()


def test_gps_to_posix_one_leap_count_equals_per_point():
    from readatl06.atl06.gpstime import gps_to_posix
    t2017 = gps_of(dt.datetime(2017, 1, 1), 18)
    for t in (EPOCH_2018 + np.arange(0, 600, 0.37), t2017 + np.arange(-3, 3, 0.25)):
        want = t - gps_minus_utc(t) + 315964800
        assert gps_to_posix(t).tobytes() == want.tobytes()
