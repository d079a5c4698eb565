"""The one track type (the kept points of one beam in one direction of one granule), the orbit
direction of each point and the unique track id. Pure numpy."""
import dataclasses

import numpy as np

from readatl06.outputs.outdir import beam_file_name

ASCENDING, DESCENDING = 0, 1
# Regions 1-3 and 12-14 are flown northward, 5-10 southward; 4 and 11 hold the turning latitudes.
_REGION_DIRECTION = {r: ASCENDING for r in (1, 2, 3, 4, 12, 13, 14)} | {r: DESCENDING for r in range(5, 12)}


def directions(lat, t, region=None):
    """Per point: 0 ascending / 1 descending, from the sign of dlat/dt along the track.

    Central differences inside, one-sided at the ends, so every point gets a direction, also
    the apex of a turning-latitude granule (regions 4 and 11), where dlat/dt passes zero: a
    point with dlat/dt exactly 0 takes the direction of its predecessor. A single point falls
    back to the direction its region is flown in.
    """
    lat = np.asarray(lat, dtype=np.float64)
    n = lat.size
    if n == 0:
        return np.zeros(0, np.int8)
    if n == 1:
        return np.full(1, _REGION_DIRECTION.get(region, ASCENDING), np.int8)
    t = np.asarray(t, dtype=np.float64)
    dlat = np.gradient(lat)
    dt = np.gradient(t)
    rate = np.where(dt != 0, dlat * np.sign(dt), dlat)
    out = np.where(rate < 0, DESCENDING, ASCENDING).astype(np.int8)
    zero = rate == 0
    if zero.any():
        # carry the last non-zero direction forward (the first one backwards for a leading run)
        idx = np.where(~zero, np.arange(n), -1)
        np.maximum.accumulate(idx, out=idx)
        first = np.argmax(~zero) if (~zero).any() else -1
        idx[idx < 0] = first
        out = out[idx] if first >= 0 else np.full(n, _REGION_DIRECTION.get(region, ASCENDING), np.int8)
    return out


def orbit_id(cycle, rgt, region, release, revision, beam_index, direction):
    """Decimal track id: ``cycle*1e13 + rgt*1e9 + region*1e7 + release*1e4 + revision*1e2 + beam*10 + dir``.

    beam_index: gt1l=1 .. gt3r=6; direction: 0 ascending, 1 descending. Read it left to right:
    ``20_0878_02_006_02_1_0`` -> cycle 20, RGT 878, region 2, release 006, revision 02, gt1l, ascending.
    """
    fields = (cycle, rgt, region, release, revision, beam_index, direction)
    limits = (100, 10000, 100, 1000, 100, 10, 2)
    for value, limit in zip(fields, limits):
        if not 0 <= int(value) < limit:
            raise ValueError(f"orbit id field {value} is outside 0..{limit - 1}")
    c, t, g, r, v, b, d = (int(x) for x in fields)
    return (((((c * 10000 + t) * 100 + g) * 1000 + r) * 100 + v) * 10 + b) * 10 + d


def decode_orbit(orbit):
    """Inverse of ``orbit_id``: dict of cycle, rgt, region, release, revision, beam_index, direction."""
    o = int(orbit)
    out = {}
    for key, base in (("direction", 10), ("beam_index", 10), ("revision", 100), ("release", 1000),
                      ("region", 100), ("rgt", 10000)):
        o, out[key] = divmod(o, base)
    out["cycle"] = o
    return out


@dataclasses.dataclass
class Track:
    """The kept points of one beam in one direction of one granule, in along-track order."""

    granule: object                  # names.GranuleName
    beam: str
    direction: str                   # ascending | descending
    data: dict                       # output name -> 1-D array
    var_attrs: dict                  # output name -> {units, long_name, source[, _FillValue]}
    attrs: dict                      # file attributes

    @property
    def stem(self):
        """The name of the track's per-beam file without ``.h5``."""
        return beam_file_name(self.granule.stem, self.beam, self.direction)[:-len(".h5")]

    def __len__(self):
        return len(next(iter(self.data.values()))) if self.data else 0
