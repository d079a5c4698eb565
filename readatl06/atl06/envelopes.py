"""Where a subset can hold points, and where a granule's points can be: lon/lat envelopes that let a
granule or a beam be skipped before its data are read (arrays and numbers in, answers out; no I/O).

Everything here is conservative: an envelope holds every point its subset can keep (projected
boxes and polygons are densified and widened by their sampling step), and a granule's footprint is
its declared bounds widened by MARGIN_DEG. When unsure (bounds missing, out of range, near a pole)
the answer is "may overlap", so a skip never drops a point: tests compare against full reads.
"""
import dataclasses

import numpy as np

MARGIN_DEG = 0.1        # granule bounds widened by this much latitude (~11 km); release 006 attributes
                        # were seen to miss the outermost segments by 1e-4 degrees
POLAR_LAT = 87.0        # footprints reaching beyond this latitude: longitudes are not trusted
DENSIFY = 256           # samples per edge of a projected box / per polygon ring segment run


@dataclasses.dataclass(frozen=True)
class Envelope:
    """A latitude band and longitude intervals (None: every longitude) holding a region."""
    south: float
    north: float
    lons: tuple = None          # ((lo, hi), ...)

    def overlaps(self, other):
        if isinstance(other, Union):
            return other.overlaps(self)
        if self.north < other.south or other.north < self.south:
            return False
        if self.lons is None or other.lons is None:
            return True
        return any(a <= d and c <= b for a, b in self.lons for c, d in other.lons)


@dataclasses.dataclass(frozen=True)
class Union:
    """Several envelopes (the parts of a MultiPolygon): a region overlaps it when it overlaps one."""
    parts: tuple

    @property
    def south(self):
        return min(p.south for p in self.parts)

    @property
    def north(self):
        return max(p.north for p in self.parts)

    def overlaps(self, other):
        return any(p.overlaps(other) for p in self.parts)


EVERYWHERE = Envelope(-90.0, 90.0, None)


def _wrap(x):
    return (x + 180.0) % 360.0 - 180.0


def wrap_lon(x):
    """Longitudes (scalar or array) to [-180, 180): +180 is -180, the same meridian. Exact (no rounding)
    for values in [-540, 540), which covers data longitudes and ``--bbox`` edges (-180..360)."""
    a = np.asarray(x, dtype=np.float64)
    out = np.where(a >= 180.0, a - 360.0, np.where(a < -180.0, a + 360.0, a))
    far = ~((out >= -180.0) & (out < 180.0)) & np.isfinite(out)
    if far.any():                                      # beyond one turn either way: modulo
        out = np.where(far, (a + 180.0) % 360.0 - 180.0, out)
    return out if out.ndim else float(out)


def box_lons(west, east):
    """The longitudes of a lon/lat box ``--bbox W E S N`` — the one definition that the point mask
    (:func:`readatl06.atl06.subset.lonlat_box_mask`), the subset's envelope and the map outline use.

    A box with ``E - W >= 360`` holds every longitude (None). Otherwise W and E are first wrapped to
    [-180, 180); then ``W <= E`` is the interval [W, E] and ``W > E`` runs from W eastward across the
    antimeridian to E: [W, 180] and [-180, E]. So ``350 10`` is -10..10, ``350 158.7`` is
    -10..158.7, ``170 190`` and ``170 -170`` are 170..180 and -180..-170. Returns intervals in
    [-180, 180], edges inclusive."""
    if east - west >= 360.0:
        return None
    w, e = wrap_lon(west), wrap_lon(east)
    if w <= e:
        return ((w, e),)
    return ((w, 180.0), (-180.0, e))


def lon_intervals(west, east):
    """Intervals in [-180, 180] of the longitudes from ``west`` eastward to ``east`` (None: all)."""
    if not (np.isfinite(west) and np.isfinite(east)) or east - west >= 360.0:
        return None
    w = _wrap(west)
    e = w + (east - west) % 360.0 if east != west else w
    if e <= 180.0:
        return ((w, e),)
    return ((w, 180.0), (-180.0, e - 360.0))


def bbox_envelope(west, east, south, north):
    """``--bbox`` W E S N: its longitudes as :func:`box_lons` defines them."""
    return Envelope(south, north, box_lons(west, east))


def _ring_envelope(lon, lat, pole_inside):
    """The envelope of a closed region from its densified boundary (lon/lat arrays)."""
    if not (np.all(np.isfinite(lon)) and np.all(np.isfinite(lat))):
        return EVERYWHERE
    lat_step = float(np.max(np.abs(np.diff(lat)))) if lat.size > 1 else 0.0
    south, north = float(lat.min()) - lat_step - 1e-6, float(lat.max()) + lat_step + 1e-6
    if pole_inside[0]:
        north = 90.0
    if pole_inside[1]:
        south = -90.0
    if any(pole_inside):
        return Envelope(max(south, -90.0), min(north, 90.0), None)
    unwrapped = np.degrees(np.unwrap(np.radians(lon)))
    if abs(unwrapped[-1] - unwrapped[0]) > 180.0:      # the ring winds round a pole after all
        return Envelope(max(south, -90.0), min(north, 90.0), None)
    lon_step = float(np.max(np.abs(np.diff(unwrapped)))) if lon.size > 1 else 0.0
    lo, hi = float(unwrapped.min()) - lon_step - 1e-6, float(unwrapped.max()) + lon_step + 1e-6
    return Envelope(max(south, -90.0), min(north, 90.0), lon_intervals(lo, hi))


def _densified(xs, ys, per_edge=DENSIFY):
    """A closed ring with ``per_edge`` samples on each of its edges."""
    xs, ys = np.append(xs, xs[0]), np.append(ys, ys[0])
    t = np.linspace(0.0, 1.0, per_edge, endpoint=False)
    x = (xs[:-1, None] + (xs[1:] - xs[:-1])[:, None] * t).ravel()
    y = (ys[:-1, None] + (ys[1:] - ys[:-1])[:, None] * t).ravel()
    return np.append(x, x[0]), np.append(y, y[0])


def projected_envelope(transformer, rings, contains):
    """The lon/lat envelope of a region given in a projected plane: ``rings`` its boundary rings as
    (x, y) vertex arrays, ``contains(x, y)`` whether a projected point is inside; ``transformer``
    maps lon/lat to x/y (always_xy)."""
    lons, lats = [], []
    for xs, ys in rings:
        x, y = _densified(np.asarray(xs, float), np.asarray(ys, float),
                          max(8, DENSIFY * 4 // max(1, len(xs))))
        lon, lat = transformer.transform(x, y, direction="INVERSE")
        lons.append(np.asarray(lon, float))
        lats.append(np.asarray(lat, float))
    poles = []
    for pole in (90.0, -90.0):
        px, py = transformer.transform(0.0, pole)
        poles.append(bool(np.isfinite(px) and np.isfinite(py) and contains(px, py)))
    envs = [_ring_envelope(lo, la, poles) for lo, la in zip(lons, lats)]
    return envs[0] if len(envs) == 1 else Union(tuple(envs))


def polygon_rings(polygon):
    """Exterior rings (x, y arrays) of a shapely Polygon or MultiPolygon (holes only shrink it)."""
    parts = getattr(polygon, "geoms", [polygon])
    return [np.asarray(p.exterior.coords, float).T for p in parts]


def subset_envelopes(subset, transformer_of):
    """One envelope per active part of a ``subset.Subset`` (a point must be in all of them).
    ``transformer_of(crs)``: a cached lon/lat -> crs pyproj Transformer."""
    envs = []
    if subset.bbox is not None:
        envs.append(bbox_envelope(*subset.bbox))
    if subset.bbox_xy is not None:
        x0, x1, y0, y1 = subset.bbox_xy
        ring = (np.array([x0, x1, x1, x0]), np.array([y0, y0, y1, y1]))
        envs.append(projected_envelope(transformer_of(subset.crs), [ring],
                                       lambda x, y: x0 <= x <= x1 and y0 <= y <= y1))
    if subset.polygon is not None:
        poly = subset.polygon
        if subset.polygon_crs:
            import shapely
            envs.append(projected_envelope(transformer_of(subset.polygon_crs), polygon_rings(poly),
                                           lambda x, y: shapely.intersects_xy(poly, x, y)))
        else:   # edges straight in lon/lat, compared with the data's longitudes as they are
            parts = [Envelope(b[1], b[3], ((b[0], b[2]),)) for b in (p.bounds for p in getattr(poly, "geoms", [poly]))]
            envs.append(parts[0] if len(parts) == 1 else Union(tuple(parts)))
    return envs


def lat_band(envs):
    """The latitudes (south, north) every envelope allows, or None when they share none."""
    south = max((e.south for e in envs), default=-90.0)
    north = min((e.north for e in envs), default=90.0)
    return (south, north) if south <= north else None


def _lon_margin(south, north):
    edge = min(89.9, max(abs(south), abs(north)) + MARGIN_DEG)
    return MARGIN_DEG / np.cos(np.radians(edge))


def attrs_footprint(lat_min, lat_max, lon_min, lon_max):
    """The footprint declared by geospatial_lat/lon_min/max (``lon_min > lon_max``: the granule
    crosses the antimeridian), widened by the margin; None when the values are not usable."""
    vals = [lat_min, lat_max, lon_min, lon_max]
    if any(v is None or not np.isfinite(v) for v in vals):
        return None
    if not (-90 <= lat_min <= lat_max <= 90 and -180 <= lon_min <= 180 and -180 <= lon_max <= 180):
        return None
    south, north = max(-90.0, lat_min - MARGIN_DEG), min(90.0, lat_max + MARGIN_DEG)
    if max(abs(south), abs(north)) > POLAR_LAT:
        return Envelope(south, north, None)
    m = _lon_margin(south, north)
    east = lon_max if lon_min <= lon_max else lon_max + 360.0
    return Envelope(south, north, lon_intervals(lon_min - m, east + m))


def polygon_footprint(lat, lon):
    """The footprint of orbit_info/bounding_polygon_lat1/lon1 (vertex arrays), widened by the
    margin; None when unusable."""
    lat, lon = np.asarray(lat, float).ravel(), np.asarray(lon, float).ravel()
    if lat.size < 3 or lat.size != lon.size or not (np.all(np.isfinite(lat)) and np.all(np.isfinite(lon))):
        return None
    if np.any(np.abs(lat) > 90) or np.any(np.abs(lon) > 180) or not np.any(lat != lat[0]):
        return None
    south, north = max(-90.0, lat.min() - MARGIN_DEG), min(90.0, lat.max() + MARGIN_DEG)
    if max(abs(south), abs(north)) > POLAR_LAT:
        return Envelope(south, north, None)
    unwrapped = np.degrees(np.unwrap(np.radians(lon)))
    if abs(unwrapped[-1] - unwrapped[0]) > 180.0:
        return Envelope(south, north, None)
    m = _lon_margin(south, north)
    return Envelope(south, north, lon_intervals(unwrapped.min() - m, unwrapped.max() + m))


def outside(footprints, envs):
    """The reason a granule holds no point of the subset, or None when it may hold one.
    ``footprints``: [(label, Envelope or None)]."""
    for label, fp in footprints:
        if fp is not None and not all(fp.overlaps(e) for e in envs):
            return f"outside the subset by its {label}"
    return None
