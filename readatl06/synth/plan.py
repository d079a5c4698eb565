"""Synthetic ATL06 granules (`readatl06 synth`): schema-faithful files for tests, demos, benchmarks.

Granules follow the real layout (readatl06.synth.tables, read off real 001/003/006 granules) and a
calibrated ICESat-2 orbit (readatl06.synth.orbitgeom). Granule k of a run is a pure function of
(seed, k and the options), so any number of MPI ranks writes the same set of files: rank r
writes the granules k with k % size == r.

Consecutive granules follow the orbit: starting at --start, every orbit (RGT n, n+1, ...) yields
one granule for each requested region, in orbit order. With region_box only the granules whose
reference ground track crosses the box are kept, each positioned so that it crosses the box
(regions 4 and 11 always contain the turning latitude).
"""
import dataclasses
import pathlib
import re

import numpy as np

from . import orbitgeom as og
from .granule import BEAMS, CORRUPT, write_granule
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
    from readatl06.names import parse_int_list
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
    from readatl06.subset import Subset
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


def plan_granules(granules, seed=0, segments=(10, 11, 12), start="2019-01-01", segments_per_beam=10000,
                  size_spread=0.0, region_box=None):
    """The N granule plans of a run (identical on every rank)."""
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
             bad_quality_fraction=0.1, rank=0, size=1, region_box=None, revision="01"):
    """Write synthetic ATL06 granules into outdir; returns the paths this rank wrote.

    rank/size split the N granules (k % size == rank); the set of files for a seed does not
    depend on size. region_box=(crs, xmin, xmax, ymin, ymax) keeps only granules crossing the
    box (e.g. ("EPSG:3031", -1124782, 81623, -919821, -96334) for the Kamb ice stream box, or
    ("EPSG:4326", W, E, S, N)). corrupt: one of CORRUPT or HOSTILE (.hostile), applied to every granule.
    Bad arguments raise ValueError before anything is written."""
    plans, opts = prepare(granules, seed, segments, start, segments_per_beam, size_spread, beams, release,
                          corrupt, fill_fraction, bad_quality_fraction, region_box, revision)
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    return [write_granule(outdir, p, **opts) for p in plans if p.index % size == rank]


def prepare(granules, seed, segments, start, segments_per_beam, size_spread, beams, release, corrupt,
            fill_fraction, bad_quality_fraction, region_box=None, revision="01"):
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
    plans = plan_granules(granules, seed, segments, start, segments_per_beam, size_spread, region_box)
    opts = dict(seed=seed, beams=beams, release=str(release), revision=str(revision), corrupt=corrupt,
                fill_fraction=fill_fraction, bad_quality_fraction=bad_quality_fraction)
    return plans, opts
