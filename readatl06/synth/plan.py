"""Synthetic ATL06 granules (`readatl06 synth`): schema-faithful files for tests, demos, benchmarks.

Granules follow the real layout (readatl06.synth.tables, read off real 001/003/006 granules) and a
calibrated ICESat-2 orbit (readatl06.synth.orbitgeom). Granule k of a run is a pure function of
(seed, k and the options), so any number of MPI ranks writes the same set of files: the ranks
share the granules by size (largest first onto the least loaded rank, see share()).

Consecutive granules follow the orbit: starting at --start, every orbit (RGT n, n+1, ...) yields
one granule for each requested region, in orbit order. With region_box only the granules whose
reference ground track crosses the box are kept, each positioned so that it crosses the box
(regions 4 and 11 always contain the turning latitude).

With region_box and fit_box=True (the demo's set) the granules are instead cut to the box: the
reference ground tracks that cross the box are taken spread evenly over the angles at which they
cross it (golden-ratio steps through them in order of ascending-node longitude), over `cycles`
consecutive 91-day windows from --start; each track gives one granule per region whose part of
it meets the box, its span cut to that part (all beams, plus a margin): a valid, short granule
(its segment ids, times and metadata describe exactly that span).
"""
import dataclasses
import pathlib
import re

import numpy as np

from . import orbitgeom as og
from .granule import BEAMS, CORRUPT, PAIR_Y, SIDE_Y, write_granule
from .hostile import HOSTILE


@dataclasses.dataclass(frozen=True)
class GranulePlan:
    index: int            # position in the run (0..N-1)
    orbit: int            # orbit index (0 = cycle 1, RGT 1)
    cycle: int
    rgt: int
    region: int
    seg_first: int        # first 20-m segment id of the granule span
    n_dense: int          # number of 20-m segments in the span (per beam, before gaps)


def parse_segments(values):
    """[10, '11', '12-14'] or '10 11 12-14' -> [10, 11, 12, 13, 14] (regions 1..14); ValueError if bad."""
    from readatl06.errors import UsageError
    from readatl06.atl06.names import parse_int_list
    if isinstance(values, (str, int)):
        values = str(values).split()
    try:
        out = sorted(parse_int_list(values, "--segments", 1, 14))
    except UsageError as exc:
        raise ValueError(str(exc)) from None
    if not out:
        raise ValueError("--segments: no region given")
    return out


def _box_test(region_box):
    """Function (lat, lon) -> bool mask for a box (crs, xmin, xmax, ymin, ymax); EPSG:4326 boxes
    are lon/lat (W E S N) with W > E crossing the antimeridian. The reducer's own subset masks."""
    from readatl06.atl06.subset import Subset
    crs, x0, x1, y0, y1 = region_box
    if str(crs).upper() in ("EPSG:4326", "WGS84", "LONLAT"):
        box = Subset(bbox=(x0, x1, y0, y1))
    else:
        box = Subset(bbox_xy=(x0, x1, y0, y1), crs=crs)
    return lambda lat, lon: box.mask(lon, lat)


def _place(rng, region, n_region, m, inside_idx, step):
    """Offset (segments from region start) of an m-segment span, or None when it cannot cross
    the box. inside_idx: coarse indices (every `step` segments) of RGT points inside the box."""
    tu = og.turning_u(region)
    lo, hi = 0, n_region - m
    if tu is not None:
        apex = int((tu - og.region_u_range(region)[0]) * og.R_EARTH / og.SEGMENT_LENGTH)
        f, margin = rng.uniform(0.3, 0.7), m // 10          # turn well inside the span
        lo, hi = max(lo, apex - m + 1 + margin), min(hi, apex - margin)
        if inside_idx is None:
            return int(np.clip(apex - f * m, lo, hi))
    if inside_idx is None:
        return int(rng.integers(lo, hi + 1))
    c = int(rng.choice(inside_idx)) * step
    lo, hi = max(lo, c - m + 1), min(hi, c)
    if lo > hi:
        return None
    return int(rng.integers(lo, hi + 1))


GRANULE_COST = 10000    # segments per beam that cost as much as writing a granule's ~600 datasets
BOX_STEP = 500          # segments (10 km) between the points of the screen of every RGT against the box
BOX_FINE = 10           # segments (200 m) between the points that find a cut span's ends
BOX_PAD = 50            # segments (1 km) added before and after a cut span
BOX_MIN_TRACK = 2500    # segments (50 km): shorter passes through the box (corner clips) are not taken
BOX_MIN_PIECE = 100     # segments (2 km): a region holding less of a track gives no granule
GOLDEN = (np.sqrt(5.0) - 1.0) / 2.0
_OUTER_Y = (PAIR_Y[1] + SIDE_Y["l"] + 10.0, 0.0, PAIR_Y[3] + SIDE_Y["r"] - 10.0)   # outer beams, RGT


def _box_frame(region_box):
    """Function (lat, lon) -> (inside, fx, fy): inside the box (the reducer's inclusive test), and
    the position as fractions (0..1) of the box's width and height."""
    from readatl06.atl06.subset import lonlat_box_mask, transformer
    crs, x0, x1, y0, y1 = region_box
    if str(crs).upper() in ("EPSG:4326", "WGS84", "LONLAT"):
        width = 360.0 if x1 - x0 >= 360 else ((x1 - x0) % 360.0 or 360.0)

        def frame(lat, lon):
            return (lonlat_box_mask(lon, lat, x0, x1, y0, y1), np.mod(np.asarray(lon) - x0, 360.0) / width,
                    (np.asarray(lat) - y0) / (y1 - y0))
        return frame
    tr = transformer(crs)

    def frame(lat, lon):
        x, y = tr.transform(np.asarray(lon, np.float64), np.asarray(lat, np.float64))
        return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1), (x - x0) / (x1 - x0), (y - y0) / (y1 - y0)
    return frame


def _region_offsets(region, step):
    u0, u1 = og.region_u_range(region)
    n_region = int((u1 - u0) * og.R_EARTH / og.SEGMENT_LENGTH)
    return u0, n_region, np.unique(np.append(np.arange(0, n_region, step), n_region - 1))


def _screen(frame, regions):
    """Every reference ground track against the box at once (points BOX_STEP apart): {rgt:
    {region: (first, last)}}, the segment offsets (from the region start) of its points inside."""
    rgts = np.arange(1, og.N_RGT + 1)
    out = {}
    for region in regions:
        u0, _, off = _region_offsets(region, BOX_STEP)
        u = u0 + (off + 0.5) * og.SEGMENT_LENGTH / og.R_EARTH
        lat, lon, _ = og.beam_track(u, 1, np.zeros(off.size))     # every RGT is RGT 1 turned east
        turn = og.node_longitude(rgts) - og.node_longitude(1)
        lon = (lon[None, :] + turn[:, None] + 180.0) % 360.0 - 180.0
        m = frame(np.broadcast_to(lat, lon.shape).ravel(), lon.ravel())[0].reshape(lon.shape)
        for i in np.flatnonzero(m.any(axis=1)):
            k = np.flatnonzero(m[i])
            out.setdefault(int(rgts[i]), {})[region] = (int(off[k[0]]), int(off[k[-1]]))
    return out


def _cut(frame, region, rgt, coarse):
    """(first segment id, number of segments) of the part of region `region` of RGT `rgt` that any
    beam spends in the box (BOX_FINE apart, padded by BOX_PAD), or None when under BOX_MIN_PIECE."""
    u0, n_region, _ = _region_offsets(region, BOX_STEP)
    lo, hi = max(coarse[0] - BOX_STEP, 0), min(coarse[1] + BOX_STEP, n_region - 1)
    off = np.unique(np.append(np.arange(lo, hi + 1, BOX_FINE), hi))
    u = u0 + (off + 0.5) * og.SEGMENT_LENGTH / og.R_EARTH
    m = np.zeros(off.size, bool)
    for y in _OUTER_Y:
        lat, lon, _ = og.beam_track(u, rgt, np.full(off.size, y))
        m |= frame(lat, lon)[0]
    k = np.flatnonzero(m)
    if k.size == 0 or off[k[-1]] - off[k[0]] + 1 < BOX_MIN_PIECE:
        return None
    first, last = max(int(off[k[0]]) - BOX_PAD, 0), min(int(off[k[-1]]) + BOX_PAD, n_region - 1)
    return int(og.u_to_segment(u0)) + first, last - first + 1


def _plan_box(granules, seed, regions, t_start, frame, cycles):
    """The plans of a run cut to the box (fit_box). The tracks that cross the box (at least
    BOX_MIN_TRACK of them inside) are ordered by the longitude of their ascending node, which
    fixes where and at which angle a track crosses the box (every RGT is one ground track turned
    about the pole); the k-th track taken is the one nearest position (phase + k * golden ratio)
    mod 1 in that order, phase drawn from the seed, so that any number of them is spread evenly
    over the angles, and it is flown in 91-day window k % cycles."""
    screen = _screen(frame, regions)
    cand = [r for r in sorted(screen) if sum(b - a + 1 for a, b in screen[r].values()) >= BOX_MIN_TRACK]
    if not cand:
        raise ValueError("no reference ground track of the requested regions crosses region_box")
    lon = np.mod(og.node_longitude(np.array(cand)), 360.0)
    srt = np.argsort(lon, kind="stable")
    gap = int(np.argmax(np.diff(np.append(lon[srt], lon[srt][0] + 360.0))))   # start after the widest gap
    pos = np.empty(len(cand))
    pos[np.roll(srt, -(gap + 1))] = (np.arange(len(cand)) + 0.5) / len(cand)
    phase = float(np.random.default_rng(np.random.SeedSequence([seed, 17])).random())
    taken = np.zeros((cycles, len(cand)), bool)
    o_start = int(og.orbit_at_time(t_start)) + 1
    plans, k = [], 0
    while len(plans) < granules and not taken.all():
        window = k % cycles
        dist = np.abs(pos - (phase + k * GOLDEN) % 1.0)
        dist[taken[window]] = np.inf
        j = int(np.argmin(dist))
        if not np.isfinite(dist[j]):           # every track of this window is taken: next window
            k += 1
            continue
        taken[window, j] = True
        rgt = cand[j]
        cut = [(region, _cut(frame, region, rgt, screen[rgt][region])) for region in regions if region in screen[rgt]]
        cut = [(region, c) for region, c in cut if c is not None]
        if not cut or len(plans) + len(cut) > granules:
            continue
        k += 1
        orbit = o_start + window * og.N_RGT + (rgt - 1 - o_start) % og.N_RGT
        cycle, rgt_ = og.cycle_rgt(orbit)
        for region, (seg_first, m) in cut:
            plans.append((orbit, region, int(cycle), int(rgt_), seg_first, m))
    if len(plans) < granules:
        raise ValueError(f"region_box is crossed by tracks for only {len(plans)} granules in {cycles} "
                         f"cycle(s) of regions {','.join(map(str, regions))}; ask for fewer or more cycles")
    plans.sort()
    return [GranulePlan(j, o, c, r, region, s, m) for j, (o, region, c, r, s, m) in enumerate(plans)]


def plan_granules(granules, seed=0, segments=(10, 11, 12), start="2019-01-01", segments_per_beam=10000,
                  size_spread=0.0, region_box=None, fit_box=False, cycles=1):
    """The N granule plans of a run (identical on every rank). fit_box (with region_box): granules
    cut to the box over `cycles` 91-day windows (segments_per_beam and size_spread unused)."""
    regions = parse_segments(segments)
    if granules < 0:
        raise ValueError("granules must be >= 0")
    if isinstance(start, str):
        start = start.strip().rstrip("Zz")
    try:
        t_start = float(og.utc_to_delta_time(np.datetime64(start, "us")))
    except (TypeError, ValueError):
        raise ValueError(f"bad start time {start!r} (ISO-8601 date or date-time, UTC)") from None
    if t_start < og.utc_to_delta_time(og.DATA_START):
        raise ValueError("start must not be before 2018-10-13 (ICESat-2 data start)")
    if segments_per_beam < 10:
        raise ValueError("segments_per_beam must be >= 10")
    if fit_box and region_box is None:
        raise ValueError("fit_box needs region_box")
    if int(cycles) != cycles or cycles < 1:
        raise ValueError("cycles must be an integer >= 1")
    if fit_box:
        return _plan_box(granules, seed, regions, t_start, _box_frame(region_box), int(cycles)) if granules else []
    inside = _box_test(region_box) if region_box is not None else None
    plans, orbit = [], int(og.orbit_at_time(t_start))
    first_orbit = orbit
    while len(plans) < granules:
        if orbit - first_orbit > 2 * og.N_RGT:
            raise ValueError("no granule of the requested regions crosses region_box")
        for region in regions:
            u0, u1 = og.region_u_range(region)
            if og.u_to_delta_time(u0, orbit) < t_start:
                continue
            rng = np.random.default_rng(np.random.SeedSequence([seed, orbit, region, 7]))
            n_region = int((u1 - u0) * og.R_EARTH / og.SEGMENT_LENGTH)
            m = segments_per_beam
            if size_spread > 0:
                m = int(round(m * rng.lognormal(-0.5 * size_spread ** 2, size_spread)))
            m = int(np.clip(m, 10, n_region))
            idx, step = None, 100
            if inside is not None:
                cu = u0 + np.arange(0, n_region, step) * og.SEGMENT_LENGTH / og.R_EARTH
                lat, lon, _ = og.beam_track(cu, og.cycle_rgt(orbit)[1], np.zeros(cu.size))
                idx = np.flatnonzero(inside(lat, lon))
                if idx.size == 0:
                    continue
            off = _place(rng, region, n_region, m, idx, step)
            if off is None:
                continue
            cycle, rgt = og.cycle_rgt(orbit)
            plans.append(GranulePlan(len(plans), orbit, int(cycle), int(rgt), region,
                                     int(og.u_to_segment(u0)) + off, m))
            if len(plans) == granules:
                break
        orbit += 1
    return plans


def generate(outdir, granules=1, seed=0, segments=(10, 11, 12), start="2019-01-01", segments_per_beam=10000,
             size_spread=0.0, beams=None, release="006", corrupt=None, fill_fraction=0.05,
             bad_quality_fraction=0.1, rank=0, size=1, region_box=None, revision="01", fit_box=False, cycles=1):
    """Write synthetic ATL06 granules into outdir; returns the paths this rank wrote.

    rank/size split the N granules (share(): by size); the set of files for a seed does not
    depend on size. region_box=(crs, xmin, xmax, ymin, ymax) keeps only granules crossing the
    box (e.g. ("EPSG:3031", -1124782, 81623, -919821, -96334) for the Kamb ice stream box, or
    ("EPSG:4326", W, E, S, N)); with fit_box=True the granules are cut to the box and spread over
    `cycles` 91-day windows (the demo's set, see the module's docstring). corrupt: one of CORRUPT
    or HOSTILE (.hostile), applied to every granule. Bad arguments raise ValueError before
    anything is written."""
    plans, opts = prepare(granules, seed, segments, start, segments_per_beam, size_spread, beams, release,
                          corrupt, fill_fraction, bad_quality_fraction, region_box, revision, fit_box, cycles)
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    return [write_granule(outdir, plans[i], **opts) for i in share(plans, rank, size)]


def share(plans, rank, size):
    """Indices of the plans that rank `rank` of `size` writes: largest first onto the least loaded
    rank (readatl06.parallel.schedule.assign; a granule costs its segments plus a fixed part for its ~600
    datasets). The set of files does not depend on `size`: each granule is a pure function of
    (seed, its index, the options)."""
    from readatl06.parallel.schedule import assign
    return assign([p.n_dense + GRANULE_COST for p in plans], size)[rank]


def prepare(granules, seed, segments, start, segments_per_beam, size_spread, beams, release, corrupt,
            fill_fraction, bad_quality_fraction, region_box=None, revision="01", fit_box=False, cycles=1):
    """Check the arguments and plan the run: (plans, options of write_granule); ValueError if bad."""
    if corrupt is not None and corrupt not in CORRUPT + HOSTILE:
        raise ValueError(f"corrupt must be one of {', '.join(CORRUPT + HOSTILE)}")
    if beams and not set(beams) <= set(BEAMS):
        raise ValueError(f"beams must be among {' '.join(BEAMS)}")
    beams = tuple(BEAMS if not beams else [b for b in BEAMS if b in set(beams)])
    if not re.fullmatch(r"\d{3}", str(release)) or not re.fullmatch(r"\d{2}", str(revision)):
        raise ValueError("release must be 3 digits (e.g. 006), revision 2 digits (e.g. 01)")
    if not 0 <= fill_fraction < 1 or not 0 <= bad_quality_fraction <= 1:
        raise ValueError("fill_fraction must be in [0, 1), bad_quality_fraction in [0, 1]")
    plans = plan_granules(granules, seed, segments, start, segments_per_beam, size_spread, region_box,
                          fit_box, cycles)
    opts = dict(seed=seed, beams=beams, release=str(release), revision=str(revision), corrupt=corrupt,
                fill_fraction=fill_fraction, bad_quality_fraction=bad_quality_fraction)
    return plans, opts
