"""One granule in, per-beam/per-direction tracks out (docs/output.md). No MPI, no output files here."""
import contextlib
import dataclasses
import json
import time

import numpy as np

from readatl06 import __version__
from readatl06.atl06.beams import BEAM_INDEX
from readatl06.errors import GranuleError
from readatl06.reader import slices
from readatl06.atl06.envelopes import outside
from readatl06.reader.granule import Granule
from readatl06.atl06.schema import BEAMS, COMPRESSIONS, COORDINATES, DIRECTIONS, H_LI_FILL, output_vars
from readatl06.atl06.subset import Subset
from readatl06.atl06.gpstime import gps_to_cf_seconds, gps_to_decimal_year
from readatl06.reader.checks import check_beam, check_granule, file_size, invalid_points
from readatl06.atl06.track import Track, directions, orbit_id
from readatl06.atl06.masks import fill_mask, quality_mask

SOFTWARE = f"readatl06 {__version__}"
# Why segments were not kept, as counted in a record's ``removed``: outside the subset, a position or
# time that is not one (NaN, ±inf, out of range: reader.checks.invalid_points), h_li fill, quality.
REMOVED = ("subset", "invalid", "fill", "quality")


@dataclasses.dataclass
class ReduceOptions:
    vars: tuple = ()                 # OutVar table (schema.output_vars)
    beams: tuple = BEAMS
    strong_only: bool = False
    quality: str = "summary"
    subset: Subset = dataclasses.field(default_factory=Subset)
    selection: dict = dataclasses.field(default_factory=dict)

    compression: str = "deflate"     # per-beam (and merged) files: deflate | none; not in parameters()
    shortcuts: bool = True           # skips by granule bounds and slice reads (False: --full-read)
    _parameters: str = dataclasses.field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        if not self.vars:
            self.vars = output_vars()
        self.beams = tuple(dict.fromkeys(self.beams))      # a beam named twice is reduced once
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression {self.compression!r}: expected one of {', '.join(COMPRESSIONS)}")

    def parameters(self):
        """JSON string of the options that decide the data, stored in every output file (built once)."""
        if self._parameters is None:
            self._parameters = json.dumps({
                "selection": self.selection, **self.subset.as_dict(), "quality": self.quality,
                "beams": list(self.beams), "strong_only": self.strong_only,
                "vars": [v.source for v in self.vars if v.kind == "user"]}, sort_keys=True)
        return self._parameters


@dataclasses.dataclass
class GranuleResult:
    tracks: list
    segments: int = 0                # segments read over all beams
    removed: dict = dataclasses.field(default_factory=lambda: dict.fromkeys(REMOVED, 0))
    notes: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    read_seconds: float = 0.0        # reading and decoding the granule's data (the rest: filtering)
    bytes_read: int = 0
    looked_up: set = dataclasses.field(default_factory=set)   # variables looked for (a beam kept points)
    found: set = dataclasses.field(default_factory=set)       # ... and found in at least one beam
    skipped: str = None              # why no beam data were read (outside the subset by its bounds)
    beams_outside: int = 0           # beams found outside the subset from a few latitude chunks

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
    """Read ``path`` once and return its tracks; GranuleError for a granule that cannot be reduced.
    ``path`` may also be an open ``readatl06.reader.granule.Granule`` (e.g. a remote one); its opener closes it."""
    t0 = time.perf_counter()
    res = GranuleResult(tracks=[])
    missing = {}
    with (contextlib.nullcontext(path) if isinstance(path, Granule) else Granule(path)) as g:
        if opts.subset.active and opts.shortcuts:
            res.skipped = outside(g.footprints(), opts.subset.envelopes)
            if res.skipped:                 # (a remote granule: its metadata were fetched)
                res.read_seconds, res.bytes_read = g.read_seconds, g.bytes_read
                res.seconds = time.perf_counter() - t0
                return res
        # Each beam is checked when the reducer gets to it, on the datasets its plan opens (with a
        # subset: latitude first, the rest only for a beam the latitude search does not rule out).
        check = check_granule(g.file, g.name, (), [v.source for v in opts.vars])
        rgt, cycle, notes = _orbit_numbers(g, gname)
        res.notes.extend(check.notes + notes)
        epoch = check.epoch
        present = dict(g.beams())
        absent = [b for b in opts.beams if b not in present]
        if not present:
            res.notes.append("no beam groups (gt1l..gt3r) in the granule")
        elif absent:
            res.notes.append(f"beam{'s' if len(absent) > 1 else ''} {' '.join(absent)} not in the granule")
        for beam in opts.beams:
            if beam not in present:
                continue
            if not present[beam]:
                res.notes.append(f"beam {beam} has no land_ice_segments")
                continue
            spot, strength = g.beam_info(beam) if check.orient_valid else (0, "unknown")
            if opts.strong_only and strength != "strong":
                continue
            before, tracks = dict(res.removed), len(res.tracks)
            _reduce_beam(g, gname, beam, spot, strength, rgt, cycle, epoch, opts, res, missing)
            if len(res.tracks) == tracks:
                _note_emptied(res, beam, before)
        res.read_seconds, res.bytes_read = g.read_seconds, g.bytes_read
    reduced = [b for b in opts.beams if present.get(b)]
    if reduced and res.beams_outside == len(reduced) and not res.tracks:
        res.skipped = "outside the subset by every beam's latitude range (first and last chunks)"
    by_beams = {}
    for source, beams in missing.items():
        by_beams.setdefault(tuple(sorted(beams)), []).append(source)
    for beams, sources in by_beams.items():
        res.notes.append(f"variables missing in beams {' '.join(beams)}, left out of their files: "
                         + ", ".join(sources))
    res.seconds = time.perf_counter() - t0
    return res


def _note_emptied(res, beam, before):
    """A note for a beam that kept no point: it has no segments, or filters other than the subset
    removed its last points (a beam wholly outside the subset is not noted: that is the subset)."""
    lost = {k: res.removed[k] - before.get(k, 0) for k in res.removed}
    total = sum(lost.values())
    if total == 0:
        res.notes.append(f"beam {beam} has no segments")
    elif lost["subset"] < total:
        why = ", ".join(f"{k} {v:,}" for k, v in lost.items() if v)
        res.notes.append(f"beam {beam}: no point left of its {total:,} segments (removed: {why})")


def _searched(opts):
    return opts.subset.active and opts.shortcuts


def _coordinates(plan, region, opts):
    """(n, first, lat, lon, dt) of a beam: its coordinates and times from segment ``first`` on —
    only the range a subset can keep (plus a point of context each side, for the along-track
    direction) when the latitude search finds it and the range passes ``slices.trusted``, else all.
    None when the search shows the beam holds no point of the subset (nothing else is read)."""
    g, size = plan.granule, file_size(plan.granule.file)
    sources = [v.source for v in opts.vars]
    if not _searched(opts):
        check_beam(g.file, g.name, plan.beam, sources, size, plan.dataset)
        n = plan.length("latitude")
        return n, 0, plan.read("latitude", n), plan.read("longitude", n), plan.read("delta_time", n)
    check_beam(g.file, g.name, plan.beam, ("latitude",), size, plan.dataset)
    n = plan.length("latitude")
    rng = slices.span(plan, n, opts.subset.lat_band, region)
    if rng is not None and rng[0] == rng[1]:
        return None
    check_beam(g.file, g.name, plan.beam, sources, size, plan.dataset)
    if rng is not None:
        i0, i1 = rng
        a, b = max(0, i0 - 1), min(n, i1 + 1)
        rows = np.arange(a, b)
        lat, lon, dt = (plan.read(s, n, rows) for s in ("latitude", "longitude", "delta_time"))
        if slices.trusted(lat, lon, dt):
            return n, a, lat, lon, dt
    return n, 0, plan.read("latitude", n), plan.read("longitude", n), plan.read("delta_time", n)


def _reduce_beam(g, gname, beam, spot, strength, rgt, cycle, epoch, opts, res, missing):
    plan = g.beam(beam)
    coords = _coordinates(plan, gname.region, opts)
    if coords is None:                      # outside the subset, from a few latitude chunks
        n = plan.length("latitude")
        res.segments += n
        res.removed["subset"] += n
        res.beams_outside += 1
        return
    n, first, lat, lon, dt = coords
    res.segments += n
    bad, reasons = invalid_points(lat, lon, dt)     # no position or no time: removed, counted, noted
    valid = ~bad
    n_bad = int(bad.sum())
    res.removed["invalid"] += n_bad
    if n_bad:
        res.notes.append(f"beam {beam}: {n_bad:,} point{'s' if n_bad > 1 else ''} removed with a position or "
                         f"time that is not one ({', '.join(f'{w}: {k:,}' for w, k in reasons.items())})")
    keep = valid.copy()
    if opts.subset.active:                  # rows not read (slice reads) are outside the subset
        keep[valid] = opts.subset.mask(lon[valid], lat[valid])
        res.removed["subset"] += int(n - n_bad - keep.sum())
    cand = np.flatnonzero(keep)             # in the range read; + first: in the beam
    if not cand.size:
        return
    rows = cand + first if opts.subset.active else None
    h = plan.read("h_li", n, rows)
    h = h if rows is not None else h[cand]
    fill = plan.var("h_li").fill
    ok = fill_mask(h, H_LI_FILL if fill is None else fill)
    res.removed["fill"] += int(cand.size - ok.sum())
    if opts.quality != "none":
        if plan.var("atl06_quality_summary") is None:
            raise GranuleError(g.name, f"beam {beam}: atl06_quality_summary is missing, needed by "
                                       "--quality summary (use --quality none to keep every valid height)")
        q = plan.read("atl06_quality_summary", n, rows)
        good = quality_mask(h, q if rows is not None else q[cand], opts.quality)
        res.removed["quality"] += int((ok & ~good).sum())
        ok &= good
    if not ok.any():
        return
    local = cand[ok]
    kept = local + first
    direction = np.zeros(lat.size, np.int8)
    direction[valid] = directions(lat[valid], dt[valid], gname.region)   # NaN must not spread
    direction = direction[local]
    # Every variable once per beam, at the kept points; the directions then take their parts.
    columns = {}
    for v in opts.vars:
        values, attrs = _values(plan, v, kept, n, epoch)
        res.looked_up.add(v.source)
        if values is None:
            missing.setdefault(v.source, set()).add(beam)
        else:
            res.found.add(v.source)
            columns[v.name] = values, attrs
    for d_code, d_name in enumerate(DIRECTIONS):
        part = direction == d_code
        m = int(part.sum())
        if m == 0:
            continue
        oid = orbit_id(int(cycle), int(rgt), gname.region, int(gname.release), int(gname.revision),
                       BEAM_INDEX[beam], d_code)
        data, var_attrs = {}, {}
        for v in opts.vars:
            if v.name not in columns:
                continue
            values, attrs = columns[v.name]
            if v.kind == "orbit":
                values = np.full(m, oid, np.int64)
            elif v.kind == "orbitinfo":
                values = np.full(m, rgt if v.name == "rgt" else cycle, v.dtype)
            else:
                values = values[part] if m < part.size else values
            data[v.name] = values
            var_attrs[v.name] = attrs
        res.tracks.append(Track(gname, beam, d_name, data, var_attrs, {
            "granule": gname.name, "beam": beam, "direction": d_name, "spot": np.int8(spot),
            "beam_strength": strength, "rgt": np.int16(rgt), "cycle": np.int8(cycle),
            "segment": np.int8(gname.region), "release": gname.release,
            "software": SOFTWARE, "parameters": opts.parameters()}))


def _values(plan, v, kept, n, epoch):
    """(values at the kept points, attributes) of one OutVar, or (None, None) when the granule lacks it.
    Track ids and orbit numbers are made per direction: here only their attributes (values ``()``)."""
    beam = plan.beam
    attrs = {"units": v.units, "long_name": v.long_name,
             "source": (v.source.replace("/gtx/", f"/{beam}/") if v.source.startswith("/")
                        else f"/{beam}/land_ice_segments/{v.source}"), **dict(v.cf)}
    if v.name not in COORDINATES:
        attrs["coordinates"] = " ".join(COORDINATES)
    if v.kind == "orbit":
        attrs["source"] = "readatl06 track id (see README)"
        return (), attrs
    if v.kind == "orbitinfo":
        return (), attrs
    convert = {"gpstime": np.asarray, "utcyear": gps_to_decimal_year, "utctime": gps_to_cf_seconds}.get(v.kind)
    if convert is not None:          # every time from the same GPS seconds
        t = epoch + plan.read("delta_time", n, kept)
        attrs["source"] = f"/ancillary_data/atlas_sdp_gps_epoch + /{beam}/land_ice_segments/delta_time"
        return convert(t), attrs
    var = plan.var(v.source)
    if var is None:
        return None, None
    values = plan.read(v.source, n, kept)
    if v.kind == "user":
        attrs["units"] = var.text_attr("units")
        attrs["long_name"] = var.text_attr("long_name")
    if var.fill is not None:
        attrs["_FillValue"] = var.fill
    return values, attrs
