"""ICESat-2 orbit and ground-track geometry for synthetic ATL06 granules.

A circular orbit of inclination 92 degrees over a spherical Earth (radius R_EARTH). The orbit
constants are calibrated on real ATL06 granules (orbit_info/crossing_time and lan of RGT 235,
256, 677 of cycle 1 and RGT 878 of cycle 20), so that RGT, cycle, orbit_number, ascending-node
longitude and time agree with the mission to a few seconds / a few hundredths of a degree:
  * nodal period T_ORBIT = 5657.38 s, 1387 reference ground tracks per exact repeat
    (91 nodal days = 90.83 solar days); cycle 2 starts 2018-12-28, cycle 3 2019-03-29; cycle 1
    data start 2018-10-13 (RGT ~220), its RGT 1 would have been 2018-09-28;
  * the ascending node moves west by 360*91/1387 = 23.62 degrees per orbit relative to Earth.

Granule regions (ATL03/ATL06 "segment" ss in the file name) cut the orbit at the latitudes below
(ascending = northward). Regions 4 and 11 contain the turning latitude (+-88 degrees), so the
track reverses inside those granules.

  region  from        to          direction
  1       0           27 N        ascending
  2       27 N        59.5 N      ascending
  3       59.5 N      80 N        ascending
  4       80 N        80 N        ascending, over 88 N, descending
  5       80 N        59.5 N      descending
  6       59.5 N      27 N        descending
  7       27 N        0           descending
  8       0           27 S        descending
  9       27 S        50 S        descending
  10      50 S        79 S        descending
  11      79 S        79 S        descending, over 88 S, ascending
  12      79 S        50 S        ascending
  13      50 S        27 S        ascending
  14      27 S        0           ascending

All functions take and return numpy arrays (or scalars) in degrees unless stated otherwise.
"""
import datetime as _dt

import numpy as np

from readatl06.atl06.gpstime import gps_minus_utc, utc_to_gps

R_EARTH = 6371008.8                      # m, mean Earth radius
INCLINATION = 92.0                       # degrees
N_RGT = 1387                             # reference ground tracks per repeat cycle
T_ORBIT = 5657.380855142836              # s, nodal period
T0_NODE = 23386805.09932619              # delta_time of the ascending node of cycle 1, RGT 1
LAN_RGT1 = -0.1277                       # degrees east, ascending-node longitude of RGT 1
ORBIT_NUMBER_OFFSET = 202                # orbit_number = orbit index + this (orbits since launch)
OMEGA_REL = 2.0 * np.pi * 91.0 / (N_RGT * T_ORBIT)   # rad/s, Earth rotation relative to the node
N_MEAN = 2.0 * np.pi / T_ORBIT           # rad/s, mean motion (argument of latitude rate)
SEGMENT_LENGTH = 20.0                    # m, ATL06 segment spacing along track
GPS_EPOCH_OFFSET = 1198800018.0          # ancillary_data/atlas_sdp_gps_epoch
SDP_EPOCH = np.datetime64("2018-01-01T00:00:00", "us")
GPS_EPOCH = np.datetime64("1980-01-06T00:00:00", "us")
DATA_START = np.datetime64("2018-10-13T00:00:00", "us")

REGION_LATS = {1: (0.0, 27.0), 2: (27.0, 59.5), 3: (59.5, 80.0), 4: (80.0, 80.0),
               5: (80.0, 59.5), 6: (59.5, 27.0), 7: (27.0, 0.0), 8: (0.0, -27.0),
               9: (-27.0, -50.0), 10: (-50.0, -79.0), 11: (-79.0, -79.0), 12: (-79.0, -50.0),
               13: (-50.0, -27.0), 14: (-27.0, 0.0)}
TURNING_REGIONS = (4, 11)


def _u_of_lat(lat):
    """Argument of latitude (rad, first quadrant) where the orbit reaches latitude |lat|."""
    s = np.sin(np.radians(abs(lat))) / np.sin(np.radians(INCLINATION))
    return float(np.arcsin(min(s, 1.0)))


def region_u_range(region):
    """(u_start, u_end) in radians of argument of latitude (0 = ascending node) of a region."""
    if region not in REGION_LATS:
        raise ValueError(f"region must be 1..14, got {region}")
    a, b = REGION_LATS[region]
    ua, ub = _u_of_lat(a), _u_of_lat(b)
    pi = np.pi
    if region <= 3:
        return ua, ub
    if region == 4:
        return ua, pi - ub
    if region <= 7:
        return pi - ua, pi - ub
    if region <= 10:
        return pi + ua, pi + ub
    if region == 11:
        return pi + ua, 2 * pi - ub
    return 2 * pi - ua, 2 * pi - ub


def turning_u(region):
    """Argument of latitude of the turning point inside region 4 or 11 (None elsewhere)."""
    return {4: np.pi / 2, 11: 1.5 * np.pi}.get(region)


def orbit_index(cycle, rgt):
    return (np.asarray(cycle) - 1) * N_RGT + (np.asarray(rgt) - 1)


def cycle_rgt(index):
    """(cycle, rgt) of an orbit index (0 = cycle 1 RGT 1)."""
    index = np.asarray(index)
    return index // N_RGT + 1, index % N_RGT + 1


def node_time(index):
    """delta_time of the ascending-node crossing of an orbit (orbit_info/crossing_time)."""
    return T0_NODE + np.asarray(index, dtype=np.float64) * T_ORBIT


def node_longitude(rgt):
    """Ascending-node longitude (orbit_info/lan) of a reference ground track, degrees east."""
    lan = LAN_RGT1 - (np.asarray(rgt, dtype=np.float64) - 1) * 360.0 * 91.0 / N_RGT
    return (lan + 180.0) % 360.0 - 180.0


def orbit_at_time(delta_time):
    """Orbit index whose ascending node precedes delta_time."""
    return np.floor((np.asarray(delta_time) - T0_NODE) / T_ORBIT).astype(np.int64)


def track_vectors(u, rgt):
    """Earth-fixed unit position p, unit along-track direction t and left normal l (each (n, 3))
    of the reference ground track of `rgt` at arguments of latitude u (rad)."""
    u = np.asarray(u, dtype=np.float64)
    inc = np.radians(INCLINATION)
    node = np.radians(node_longitude(rgt)) - OMEGA_REL * (u / N_MEAN)
    cu, su, cn, sn, ci, si = np.cos(u), np.sin(u), np.cos(node), np.sin(node), np.cos(inc), np.sin(inc)
    p = np.stack([cu * cn - su * ci * sn, cu * sn + su * ci * cn, su * si], axis=-1)
    dp = np.stack([-su * cn - cu * ci * sn, -su * sn + cu * ci * cn, cu * si], axis=-1)
    dp -= (OMEGA_REL / N_MEAN) * np.stack([-p[..., 1], p[..., 0], np.zeros_like(u)], axis=-1)
    t = dp / np.linalg.norm(dp, axis=-1, keepdims=True)
    return p, t, np.cross(p, t)


def _to_latlon(p):
    lat = np.degrees(np.arcsin(np.clip(p[..., 2], -1.0, 1.0)))
    lon = np.degrees(np.arctan2(p[..., 1], p[..., 0]))
    return lat, lon


def beam_track(u, rgt, y_atc):
    """Latitude, longitude (degrees) and heading (degrees from north, clockwise, -180..180) of a
    track offset y_atc metres to the LEFT of the reference ground track, at arguments of
    latitude u (rad)."""
    p, t, left = track_vectors(u, rgt)
    a = np.asarray(y_atc, dtype=np.float64)[..., None] / R_EARTH
    q = np.cos(a) * p + np.sin(a) * left
    lat, lon = _to_latlon(q)
    lam, phi = np.radians(lon), np.radians(lat)
    east = np.stack([-np.sin(lam), np.cos(lam), np.zeros_like(lam)], axis=-1)
    north = np.stack([-np.sin(phi) * np.cos(lam), -np.sin(phi) * np.sin(lam), np.cos(phi)], axis=-1)
    heading = np.degrees(np.arctan2(np.sum(t * east, -1), np.sum(t * north, -1)))
    return lat, lon, heading


def u_to_delta_time(u, index):
    """delta_time at which the sub-satellite point of orbit `index` is at argument of latitude u."""
    return node_time(index) + np.asarray(u) / N_MEAN


def segment_u(segment_id):
    """Argument of latitude (rad) of the centre of a 20-m segment (segment 1 starts at the node)."""
    return (np.asarray(segment_id, dtype=np.float64) - 0.5) * SEGMENT_LENGTH / R_EARTH


def u_to_segment(u):
    return np.floor(np.asarray(u) * R_EARTH / SEGMENT_LENGTH).astype(np.int64) + 1


def haversine(lat1, lon1, lat2, lon2):
    """Great-circle distance in metres on the R_EARTH sphere."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi, dlam = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlam / 2) ** 2
    return 2 * R_EARTH * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def delta_time_to_utc(delta_time):
    """numpy datetime64[us] (UTC) of ATLAS delta_time (GPS seconds since 2018-01-01)."""
    gps = np.asarray(delta_time, dtype=np.float64) + GPS_EPOCH_OFFSET
    us = np.round((gps - gps_minus_utc(gps)) * 1e6).astype(np.int64)
    return GPS_EPOCH + us.astype("timedelta64[us]")


def utc_to_delta_time(utc):
    """delta_time of a UTC datetime64 / ISO string / datetime."""
    if isinstance(utc, (_dt.date, _dt.datetime)):
        utc = np.datetime64(utc)
    t = np.asarray(np.datetime64(utc, "us") if np.ndim(utc) == 0 else utc, dtype="datetime64[us]")
    sec = (t - GPS_EPOCH).astype(np.int64) / 1e6
    return utc_to_gps(sec) - GPS_EPOCH_OFFSET


def gps_week_sow(delta_time):
    gps = np.asarray(delta_time, dtype=np.float64) + GPS_EPOCH_OFFSET
    week = np.floor(gps / 604800.0)
    return week.astype(np.int64), gps - week * 604800.0


def solar_position(delta_time, lat, lon):
    """Approximate solar elevation and azimuth (degrees, azimuth clockwise from north)."""
    utc = delta_time_to_utc(delta_time)
    days = (utc - np.datetime64("2000-01-01T12:00:00", "us")).astype(np.int64) / 86400e6
    g = np.radians(357.529 + 0.98560028 * days)
    q = 280.459 + 0.98564736 * days
    ecl_lon = np.radians(q + 1.915 * np.sin(g) + 0.020 * np.sin(2 * g))
    eps = np.radians(23.439 - 3.6e-7 * days)
    dec = np.arcsin(np.sin(eps) * np.sin(ecl_lon))
    ra = np.arctan2(np.cos(eps) * np.sin(ecl_lon), np.cos(ecl_lon))
    gmst = np.radians((280.46061837 + 360.98564736629 * days) % 360.0)
    ha = gmst + np.radians(lon) - ra
    phi = np.radians(lat)
    el = np.arcsin(np.sin(phi) * np.sin(dec) + np.cos(phi) * np.cos(dec) * np.cos(ha))
    az = np.arctan2(-np.sin(ha), np.tan(dec) * np.cos(phi) - np.sin(phi) * np.cos(ha))
    return np.degrees(el), (np.degrees(az) + 180.0) % 360.0 - 180.0
