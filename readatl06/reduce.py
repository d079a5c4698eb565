"""One granule in, per-beam/per-direction tracks out (DESIGN §2). No MPI, no output files here."""
import dataclasses
import json
import time

import numpy as np

from readatl06 import __version__
from readatl06.beams import BEAM_INDEX
from readatl06.errors import GranuleError
from readatl06.read import Granule
from readatl06.schema import BEAMS, DIRECTION_CODE, DIRECTIONS, H_LI_FILL, output_vars
from readatl06.subset import Subset
from readatl06.timeconv import gps_to_decimal_year
from readatl06.tracks import directions, fill_mask, orbit_id, quality_mask

CORE = ("latitude", "longitude", "h_li", "delta_time")


@dataclasses.dataclass
class ReduceOptions:
    vars: tuple = ()                 # OutVar table (schema.output_vars)
    beams: tuple = BEAMS
    strong_only: bool = False
    quality: str = "summary"
    subset: Subset = dataclasses.field(default_factory=Subset)
    selection: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if not self.vars:
            self.vars = output_vars()

    def parameters(self):
        """JSON string of the options, stored in every output file."""
        return json.dumps({"selection": self.selection, **self.subset.as_dict(), "quality": self.quality,
                           "beams": list(self.beams), "strong_only": self.strong_only,
                           "vars": [v.source for v in self.vars if v.kind == "user"]}, sort_keys=True)


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
        return f"{self.granule.stem}_{self.beam}_{DIRECTION_CODE[self.direction]}"

    def __len__(self):
        return len(next(iter(self.data.values()))) if self.data else 0


@dataclasses.dataclass
class GranuleResult:
    tracks: list
    segments: int = 0                # segments read over all beams
    removed: dict = dataclasses.field(default_factory=lambda: {"subset": 0, "fill": 0, "quality": 0})
    notes: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def points(self):
        return sum(len(t) for t in self.tracks)


def _orbit_numbers(g, gname):
    """(rgt, cycle) from orbit_info, else from the file name (NSIDC subsets drop orbit_info)."""
    rgt = g.scalar("/orbit_info/rgt")
    cycle = g.scalar("/orbit_info/cycle_number")
    notes = []
    if rgt is None or cycle is None:
        notes.append("orbit_info/rgt or cycle_number missing: RGT and cycle taken from the file name")
        return np.int16(gname.rgt), np.int8(gname.cycle), notes
    if int(rgt) != gname.rgt or int(cycle) != gname.cycle:
        notes.append(f"orbit_info says RGT {int(rgt)} cycle {int(cycle)}, the name says "
                     f"RGT {gname.rgt} cycle {gname.cycle}; orbit_info used")
    return np.int16(rgt), np.int8(cycle), notes


def reduce_granule(path, gname, opts):
    """Read ``path`` once and return its tracks; GranuleError for a granule that cannot be reduced."""
    t0 = time.perf_counter()
    res = GranuleResult(tracks=[])
    missing = {}
    with Granule(path) as g:
        rgt, cycle, notes = _orbit_numbers(g, gname)
        res.notes.extend(notes)
        epoch = g.gps_epoch
        present = dict(g.beams())
        if not present:
            res.notes.append("no beam groups (gt1l..gt3r) in the granule")
        for beam in opts.beams:
            if beam not in present:
                continue
            if not present[beam]:
                res.notes.append(f"beam {beam} has no land_ice_segments")
                continue
            spot, strength = g.beam_info(beam)
            if opts.strong_only and strength != "strong":
                continue
            _reduce_beam(g, gname, beam, spot, strength, rgt, cycle, epoch, opts, res, missing)
    by_beams = {}
    for source, beams in missing.items():
        by_beams.setdefault(tuple(sorted(beams)), []).append(source)
    for beams, sources in by_beams.items():
        res.notes.append(f"variables missing in beams {' '.join(beams)}, left out of their files: "
                         + ", ".join(sources))
    res.seconds = time.perf_counter() - t0
    return res


def _reduce_beam(g, gname, beam, spot, strength, rgt, cycle, epoch, opts, res, missing):
    lat = g.read(beam, "latitude")
    n = lat.size
    res.segments += n
    lon = g.read(beam, "longitude", n)
    keep = opts.subset.mask(lon, lat) if opts.subset.active else np.ones(n, bool)
    res.removed["subset"] += int(n - keep.sum())
    if not keep.any():
        return
    h_dset = g.dataset(beam, "h_li")
    h = g.read(beam, "h_li", n)
    fill = Granule.fill_value(h_dset)
    ok = fill_mask(h, H_LI_FILL if fill is None else fill)
    res.removed["fill"] += int((keep & ~ok).sum())
    keep &= ok
    if opts.quality != "none":
        if g.dataset(beam, "atl06_quality_summary") is None:
            raise GranuleError(g.name, f"beam {beam}: atl06_quality_summary is missing, needed by "
                                       "--quality summary (use --quality none to keep every valid height)")
        good = quality_mask(h, g.read(beam, "atl06_quality_summary", n), opts.quality)
        res.removed["quality"] += int((keep & ~good).sum())
        keep &= good
    if not keep.any():
        return
    dt = g.read(beam, "delta_time", n)
    direction = directions(lat, dt, gname.region)
    cache = {"latitude": lat, "longitude": lon, "h_li": h, "delta_time": dt}
    for d_code, d_name in enumerate(DIRECTIONS):
        idx = np.flatnonzero(keep & (direction == d_code))
        if idx.size == 0:
            continue
        data, var_attrs = {}, {}
        oid = orbit_id(int(cycle), int(rgt), gname.region, int(gname.release), int(gname.revision),
                       BEAM_INDEX[beam], d_code)
        for v in opts.vars:
            values, attrs = _values(g, beam, v, idx, cache, n, epoch, rgt, cycle, oid)
            if values is None:
                missing.setdefault(v.source, set()).add(beam)
                continue
            data[v.name] = values
            var_attrs[v.name] = attrs
        res.tracks.append(Track(gname, beam, d_name, data, var_attrs, {
            "granule": gname.name, "beam": beam, "direction": d_name, "spot": np.int8(spot),
            "beam_strength": strength, "rgt": np.int16(rgt), "cycle": np.int8(cycle),
            "segment": np.int8(gname.region), "release": gname.release,
            "software": f"readatl06 {__version__}", "parameters": opts.parameters()}))


def _values(g, beam, v, idx, cache, n, epoch, rgt, cycle, oid):
    """(kept values, attributes) of one OutVar, or (None, None) when the granule lacks it."""
    m = idx.size
    attrs = {"units": v.units, "long_name": v.long_name,
             "source": (v.source.replace("/gtx/", f"/{beam}/") if v.source.startswith("/")
                        else f"/{beam}/land_ice_segments/{v.source}")}
    if v.kind == "orbit":
        attrs["source"] = "readatl06 track id (see README)"
        return np.full(m, oid, np.int64), attrs
    if v.kind == "orbitinfo":
        return np.full(m, rgt if v.name == "rgt" else cycle, v.dtype), attrs
    if v.kind in ("gpstime", "utcyear"):
        t = epoch + cache["delta_time"][idx]
        attrs["source"] = f"/ancillary_data/atlas_sdp_gps_epoch + /{beam}/land_ice_segments/delta_time"
        return (t if v.kind == "gpstime" else gps_to_decimal_year(t)), attrs
    dset = g.dataset(beam, v.source)
    if dset is None:
        return None, None
    full = cache.get(v.source)
    if full is None:
        full = g.read(beam, v.source, n if not v.source.startswith("/") else None)
    if full.ndim != 1 or full.shape[0] != n:
        raise GranuleError(g.name, f"beam {beam}: {v.source} has shape {full.shape}, expected ({n},)")
    if v.kind == "user":
        attrs["units"] = Granule.text_attr(dset, "units")
        attrs["long_name"] = Granule.text_attr(dset, "long_name")
    fill = Granule.fill_value(dset)
    if fill is not None:
        attrs["_FillValue"] = fill
    return full[idx], attrs
