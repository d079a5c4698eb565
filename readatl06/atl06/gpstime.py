"""GPS time -> UTC with leap seconds: datetimes, UTC decimal years and CF seconds since 2018. Pure numpy.

GPS seconds count from 1980-01-06T00:00:00 UTC with no leap seconds; UTC has inserted 18 leap
seconds since then (GPS - UTC = 18 s since 2017-01-01). ATL06 ``delta_time`` counts GPS seconds
from ``atlas_sdp_gps_epoch`` = 1198800018 s (= 2018-01-01T00:00:00 UTC).
"""
import numpy as np

GPS_EPOCH_POSIX = 315964800  # 1980-01-06T00:00:00Z as POSIX seconds
CF_EPOCH_POSIX = 1514764800  # 2018-01-01T00:00:00Z as POSIX seconds: the epoch of the CF ``time``
CF_TIME_UNITS = "seconds since 2018-01-01T00:00:00Z"

# UTC dates at whose start a leap second had just been inserted (IERS Bulletin C), after the GPS epoch.
LEAP_DATES = np.array([
    "1981-07-01", "1982-07-01", "1983-07-01", "1985-07-01", "1988-01-01", "1990-01-01",
    "1991-01-01", "1992-07-01", "1993-07-01", "1994-07-01", "1996-01-01", "1997-07-01",
    "1999-01-01", "2006-01-01", "2009-01-01", "2012-07-01", "2015-07-01", "2017-01-01",
], dtype="datetime64[s]")
# The same instants on the GPS scale: the k-th leap (1-based) shifts GPS ahead of UTC by k s.
_LEAP_POSIX = LEAP_DATES.astype(np.int64)
_LEAP_GPS = (_LEAP_POSIX - GPS_EPOCH_POSIX + np.arange(1, len(LEAP_DATES) + 1)).astype(np.float64)
# ... and on the UTC scale, as seconds since the GPS epoch (POSIX - GPS_EPOCH_POSIX).
_LEAP_UTC = (_LEAP_POSIX - GPS_EPOCH_POSIX).astype(np.float64)


def gps_minus_utc(t_gps):
    """Leap seconds between GPS and UTC (s) at GPS times ``t_gps`` (s since the GPS epoch)."""
    return np.searchsorted(_LEAP_GPS, np.asarray(t_gps, dtype=np.float64), side="right")


def utc_to_gps(t_utc):
    """UTC seconds since the GPS epoch (``POSIX - GPS_EPOCH_POSIX``, no leap seconds counted) ->
    GPS seconds: ``t_utc`` plus the leap seconds inserted by then."""
    t = np.asarray(t_utc, dtype=np.float64)
    return t + np.searchsorted(_LEAP_UTC, t, side="right")


def _same_bin(edges, t):
    """The bin of ``edges`` (searchsorted, right) that holds every value of ``t``, or None."""
    if not t.size:
        return None
    lo, hi = np.searchsorted(edges, [np.min(t), np.max(t)], side="right")
    return lo if lo == hi else None


def gps_to_posix(t_gps):
    """GPS seconds -> POSIX seconds (UTC, no leap seconds counted), float64."""
    t = np.asarray(t_gps, dtype=np.float64)
    leaps = _same_bin(_LEAP_GPS, t)          # a granule spans minutes: one leap count for all, usually
    return t - (gps_minus_utc(t) if leaps is None else leaps) + GPS_EPOCH_POSIX


# Start (POSIX s) of every year 1970 .. 2200, for a table lookup instead of datetime64 conversions.
_YEARS = np.arange(1970, 2202, dtype=np.int64)
_YEAR_START = (_YEARS - 1970).astype("datetime64[Y]").astype("datetime64[s]").astype(np.int64)


def posix_to_decimal_year(t_posix):
    """POSIX seconds (UTC) -> decimal year: year + elapsed fraction of that calendar year."""
    t = np.asarray(t_posix, dtype=np.float64)
    whole = np.floor(t)
    if t.size and _YEAR_START[0] <= np.min(whole) and np.max(whole) < _YEAR_START[-1]:
        one = _same_bin(_YEAR_START, whole)
        k = np.searchsorted(_YEAR_START, whole, side="right") - 1 if one is None else one - 1
        start = _YEAR_START[k]
        return _YEARS[k] + (t - start) / (_YEAR_START[k + 1] - start)
    year = whole.astype("datetime64[s]").astype("datetime64[Y]")
    start = year.astype("datetime64[s]").astype(np.int64)
    length = (year + 1).astype("datetime64[s]").astype(np.int64) - start
    return year.astype(np.int64) + 1970 + (t - start) / length


def gps_to_decimal_year(t_gps):
    """GPS seconds since 1980-01-06 -> UTC decimal year (leap seconds applied)."""
    return posix_to_decimal_year(gps_to_posix(t_gps))


def gps_to_cf_seconds(t_gps):
    """GPS seconds -> UTC seconds since 2018-01-01T00:00:00Z (``CF_TIME_UNITS``), float64:
    ``t_gps - leap seconds + GPS_EPOCH_POSIX - CF_EPOCH_POSIX``. Both float64 steps are exact for
    GPS times 2014-2038 (the sum stays within one binade, the difference is Sterbenz-exact), so it
    decodes to the instants of :func:`gps_to_datetime64`."""
    return gps_to_posix(t_gps) - CF_EPOCH_POSIX


def gps_to_datetime64(t_gps):
    """GPS seconds -> numpy datetime64[us] in UTC."""
    return (gps_to_posix(t_gps) * 1e6).round().astype(np.int64).astype("datetime64[us]")
