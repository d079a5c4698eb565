"""Spatial subsets: lon/lat boxes (antimeridian aware), projected boxes and polygons. Arrays in, masks out."""
import functools
import json

import numpy as np

from readatl06.errors import UsageError


@functools.lru_cache(maxsize=16)
def transformer(crs_to, crs_from="EPSG:4326"):
    """One cached pyproj Transformer per CRS pair (building one costs ~100 ms; using it, microseconds)."""
    import pyproj
    try:
        return pyproj.Transformer.from_crs(crs_from, crs_to, always_xy=True)
    except pyproj.exceptions.CRSError as exc:
        raise UsageError(f"unknown coordinate reference system {crs_to!r}: {exc}") from exc


def lonlat_box_mask(lon, lat, west, east, south, north):
    """Inclusive lon/lat box, its longitudes as :func:`readatl06.atl06.envelopes.box_lons` defines
    them (W and E wrapped to [-180, 180) first; then W > E crosses the antimeridian). Longitudes of
    the points in any 360° range."""
    from readatl06.atl06.envelopes import box_lons, wrap_lon
    lat = np.asarray(lat, dtype=np.float64)
    inlat = (lat >= south) & (lat <= north)
    intervals = box_lons(float(west), float(east))
    if intervals is None:
        return inlat
    lonw = wrap_lon(lon)
    inlon = np.zeros(np.shape(lonw), bool)
    for lo, hi in intervals:
        inlon |= (lonw >= lo) & (lonw <= hi)
    return inlat & inlon


def xy_box_mask(lon, lat, crs, xmin, xmax, ymin, ymax):
    """Inclusive box in a projected CRS (e.g. EPSG:3031)."""
    x, y = transformer(crs).transform(np.asarray(lon, np.float64), np.asarray(lat, np.float64))
    return (x >= xmin) & (x <= xmax) & (y >= ymin) & (y <= ymax)


def _positions(coords):
    """The positions ([x, y, ...]) of GeoJSON ``coordinates``, at any depth of nesting."""
    if isinstance(coords, list) and coords and not isinstance(coords[0], list):
        yield coords
    elif isinstance(coords, list):
        for c in coords:
            yield from _positions(c)


def load_polygon(path):
    """A shapely (Multi)Polygon from a GeoJSON file (geometry, Feature or FeatureCollection)."""
    import shapely.geometry
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except OSError as exc:
        raise UsageError(f"--polygon {path}: cannot be read ({exc.strerror})") from exc
    except json.JSONDecodeError as exc:
        raise UsageError(f"--polygon {path}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise UsageError(f"--polygon {path}: found a JSON {type(doc).__name__}, expected a GeoJSON object")
    geoms = []
    if doc.get("type") == "FeatureCollection":
        features = doc.get("features", [])
        geoms = [f.get("geometry") if isinstance(f, dict) else f for f in
                 (features if isinstance(features, list) else [features])]
    elif doc.get("type") == "Feature":
        geoms = [doc.get("geometry")]
    else:
        geoms = [doc]
    shapes = []
    for g in geoms:
        kind = g.get("type") if isinstance(g, dict) else None
        if kind not in ("Polygon", "MultiPolygon"):
            raise UsageError(f"--polygon {path}: found a {kind} geometry, expected Polygon or MultiPolygon")
        try:
            finite = all(np.isfinite(np.asarray(c, np.float64)).all() for c in _positions(g.get("coordinates")))
            if not finite:
                raise UsageError(f"--polygon {path}: a {kind} with a NaN or infinite vertex, expected finite "
                                 "coordinates")
            shape = shapely.geometry.shape(g)
        except UsageError:
            raise
        except Exception as exc:  # shapely raises several types for malformed coordinates
            raise UsageError(f"--polygon {path}: malformed {kind}: {exc}") from exc
        if shape.is_empty or not shape.area > 0:
            raise UsageError(f"--polygon {path}: a {kind} with no area (no vertices, or all on one line), "
                             "expected a ring around an area")
        shapes.append(shape)
    if not shapes:
        raise UsageError(f"--polygon {path}: no Polygon or MultiPolygon in the file")
    return shapes[0] if len(shapes) == 1 else shapely.union_all(shapes)


def polygon_mask(lon, lat, polygon, crs=None):
    """Points inside or on the boundary of ``polygon`` (holes excluded); edges straight in lon/lat,
    or in the plane of ``crs`` when given."""
    import shapely
    lon = np.asarray(lon, np.float64)
    lat = np.asarray(lat, np.float64)
    if crs:
        x, y = transformer(crs).transform(lon, lat)
    else:
        x, y = lon, lat
    shapely.prepare(polygon)
    return shapely.intersects_xy(polygon, x, y)


class Subset:
    """The spatial subset of a run (any combination of a lon/lat box, a projected box, a polygon)."""

    def __init__(self, bbox=None, bbox_xy=None, crs=None, polygon_path=None, polygon_crs=None):
        self.bbox = [float(v) for v in bbox] if bbox is not None else None
        self.bbox_xy = [float(v) for v in bbox_xy] if bbox_xy is not None else None
        self.crs = crs
        self.polygon_path = polygon_path
        self.polygon_crs = polygon_crs
        if self.bbox is not None:
            w, e, s, n = self.bbox
            if not np.isfinite(self.bbox).all():
                raise UsageError(f"--bbox {w} {e} {s} {n}: expected four finite numbers")
            if not (-90 <= s <= n <= 90):
                raise UsageError(f"--bbox: south {s} and north {n} must satisfy -90 <= S <= N <= 90")
            if not all(-180 <= v <= 360 for v in (w, e)):
                raise UsageError(f"--bbox: west {w} and east {e} must be longitudes in -180..360")
        if crs and self.bbox_xy is None:
            raise UsageError(f"--crs {crs} is used only with --bbox-xy (a polygon's CRS is --polygon-crs)")
        if self.bbox_xy is not None:
            if not crs:
                raise UsageError("--bbox-xy needs --crs (e.g. --crs EPSG:3031)")
            x0, x1, y0, y1 = self.bbox_xy
            if not np.isfinite(self.bbox_xy).all():
                raise UsageError(f"--bbox-xy {x0} {x1} {y0} {y1}: expected four finite numbers")
            if x1 < x0 or y1 < y0:
                raise UsageError(f"--bbox-xy {x0} {x1} {y0} {y1}: expected XMIN XMAX YMIN YMAX")
            transformer(crs)  # fail early on a bad CRS
        self.polygon = load_polygon(polygon_path) if polygon_path else None
        if polygon_crs:
            if self.polygon is None:
                raise UsageError("--polygon-crs needs --polygon")
            transformer(polygon_crs)

    @property
    def active(self):
        return self.bbox is not None or self.bbox_xy is not None or self.polygon is not None

    @functools.cached_property
    def envelopes(self):
        """Lon/lat envelopes of the active parts (readatl06.atl06.envelopes): a kept point lies in all of them."""
        from readatl06.atl06.envelopes import subset_envelopes
        return subset_envelopes(self, transformer)

    @property
    def lat_band(self):
        """(south, north) holding every point the subset keeps, or None when it can keep none."""
        from readatl06.atl06.envelopes import lat_band
        return lat_band(self.envelopes)

    def mask(self, lon, lat):
        ok = np.ones(np.shape(lon), bool)
        if self.bbox is not None:
            ok &= lonlat_box_mask(lon, lat, *self.bbox)
        if self.bbox_xy is not None and ok.any():
            ok &= xy_box_mask(lon, lat, self.crs, *self.bbox_xy)
        if self.polygon is not None and ok.any():
            ok &= polygon_mask(lon, lat, self.polygon, self.polygon_crs)
        return ok

    def as_dict(self):
        polygon = None
        if self.polygon is not None:       # shapely only when there is a polygon (37 ms of start-up)
            import shapely.geometry
            polygon = shapely.geometry.mapping(self.polygon)
        return {"bbox": self.bbox, "bbox_xy": self.bbox_xy, "crs": self.crs, "polygon": polygon,
                "polygon_file": self.polygon_path, "polygon_crs": self.polygon_crs}
