"""Synthetic ATL06 granules (`readatl06 synth`): schema-faithful files for tests, demos, benchmarks.

Granules follow the real layout (readatl06.synth_schema, read off real 001/003/006 granules) and a
calibrated ICESat-2 orbit (readatl06.orbitgeom). Granule k of a run is a pure function of
(seed, k and the options), so any number of MPI ranks writes the same set of files: rank r
writes the granules k with k % size == r.

Consecutive granules follow the orbit: starting at --start, every orbit (RGT n, n+1, ...) yields
one granule for each requested region, in orbit order. With region_box only the granules whose
reference ground track crosses the box are kept, each positioned so that it crosses the box
(regions 4 and 11 always contain the turning latitude).
"""
import dataclasses
import os
import pathlib
import re
import time
import uuid

import numpy as np

from . import orbitgeom as og
from . import synth_h5
from . import synth_schema as S
from . import synth_values as sv

BEAMS = synth_h5.BEAMS
CORRUPT = ("truncated", "empty", "no-beams", "missing-var", "wrong-product")
PAIR_Y = {1: 3300.0, 2: 0.0, 3: -3300.0}          # m, pair centre left of the RGT (y_atc)
SIDE_Y = {"l": 45.0, "r": -45.0}                   # m, beams of a pair are 90 m apart
R_DELAY = 0.343                                    # s, the r beam sees a segment after the l beam
_SPOT_FWD = {"gt1l": 6, "gt1r": 5, "gt2l": 4, "gt2r": 3, "gt3l": 2, "gt3r": 1}
_REF_AZ = {1: 113.6, 2: 159.9, 3: -135.3, 4: -58.4, 5: 117.9, 6: 44.3}   # degrees, per spot
_REF_COELV = {1: 0.203, 2: 0.412, 3: 0.244, 4: 0.252, 5: 0.253, 6: 0.261}
_FLIP0 = og.utc_to_delta_time("2018-12-28T00:00:00")
_FLIP_PERIOD = (og.utc_to_delta_time("2023-08-15T23:30:00") - _FLIP0) / 8.0
_FIRST_ORIENT = og.utc_to_delta_time("2018-10-13T23:29:55")
_PGE_VERSION = {"001": "4.1", "003": "Version 4.3", "006": "Version 5.0"}


@dataclasses.dataclass(frozen=True)
class GranulePlan:
    index: int            # position in the run (0..N-1)
    orbit: int            # orbit index (0 = cycle 1, RGT 1)
    cycle: int
    rgt: int
    region: int
    seg_first: int        # first 20-m segment id of the granule span
    n_dense: int          # number of 20-m segments in the span (per beam, before gaps)


def orientation(delta_time):
    """(sc_orient, sc_orient_time): forward (1) until 2018-12-28, then yaw flips every ~211 days
    (backward first; consistent with real granules of 2018 and 2023)."""
    if delta_time < _FLIP0:
        return 1, _FIRST_ORIENT
    j = np.floor((delta_time - _FLIP0) / _FLIP_PERIOD)
    return (0 if j % 2 == 0 else 1), float(_FLIP0 + j * _FLIP_PERIOD)


def beam_info(beam, sc_orient):
    """Group attributes of a beam: (spot number, strong?, pce) for the spacecraft orientation."""
    spot = _SPOT_FWD[beam] if sc_orient == 1 else 7 - _SPOT_FWD[beam]
    strong = (beam[-1] == "r") == (sc_orient == 1)
    pce = {1: 3, 2: 2, 3: 1}[int(beam[2])] if sc_orient == 1 else int(beam[2])
    return spot, strong, pce


def parse_segments(values):
    """[10, '11', '12-14'] -> [10, 11, 12, 13, 14] (regions 1..14)."""
    out = []
    for v in values:
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+))?\s*", str(v))
        if not m:
            raise ValueError(f"bad segment (region) {v!r}")
        a, b = int(m.group(1)), int(m.group(2) or m.group(1))
        out.extend(range(a, b + 1))
    if not out or any(r < 1 or r > 14 for r in out):
        raise ValueError("segments (regions) must be in 1..14")
    return sorted(set(out))


def _box_test(region_box):
    """Function (lat, lon) -> bool mask for a box (crs, xmin, xmax, ymin, ymax); EPSG:4326 boxes
    are lon/lat with xmin > xmax crossing the antimeridian."""
    crs, x0, x1, y0, y1 = region_box
    if str(crs).upper() in ("EPSG:4326", "WGS84", "LONLAT"):
        def inside(lat, lon):
            inlon = (lon >= x0) & (lon <= x1) if x0 <= x1 else (lon >= x0) | (lon <= x1)
            return inlon & (lat >= y0) & (lat <= y1)
        return inside
    import pyproj
    tr = pyproj.Transformer.from_crs("EPSG:4326", crs, always_xy=True)

    def inside(lat, lon):
        x, y = tr.transform(lon, lat)
        return (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)
    return inside


def _place(rng, region, n_region, m, inside_idx, step):
    """Offset (segments from region start) of an m-segment span, or None when it cannot cross
    the box. inside_idx: coarse indices (every `step` segments) of RGT points inside the box."""
    tu = og.turning_u(region)
    lo, hi = 0, n_region - m
    if tu is not None:
        apex = int((tu - og.region_u_range(region)[0]) * og.R_EARTH / og.SEGMENT_LENGTH)
        f = rng.uniform(0.3, 0.7)
        lo, hi = max(lo, apex - m + 1), min(hi, apex)
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
    t_start = float(og.utc_to_delta_time(np.datetime64(start, "us")))
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


def _pair(rng, plan, pair, layout, fill_fraction, bad_quality_fraction, sc_orient):
    """Arrays of the two beams of a pair: {beam: {relpath: array}} (relpath below gtx/)."""
    ids = plan.seg_first + np.arange(plan.n_dense)
    u = og.segment_u(ids)
    strong_side = "r" if sc_orient == 1 else "l"
    p = {s: min(fill_fraction * (0.4 if s == strong_side else 1.6), 0.97) for s in "lr"}
    keep, valid_l, valid_r = sv.pair_rows(rng, plan.n_dense, p["l"], p["r"])
    valid = {"l": valid_l, "r": valid_r}
    flags = {
        "bsnow_conf": sv.block_values(rng, keep.size, 14, [-3, -2, 0, 1, 2, 127], [.6, .25, .05, .04, .02, .04]),
        "cloud_flg_asr": sv.block_values(rng, keep.size, 14, [0, 1, 2, 3, 4, 5], [.3, .2, .1, .1, .1, .2]),
        "cloud_flg_atm": sv.block_values(rng, keep.size, 14, [0, 1, 2, 3, 4, 5], [.2, .4, .1, .1, .1, .1]),
        "layer_flag": sv.block_values(rng, keep.size, 14, [0, 1], [.5, .5]),
        "msw_flag": sv.block_values(rng, keep.size, 14, [-1, 0, 1, 2, 3, 4, 5], [.05, .4, .3, .1, .1, .03, .02]),
    }
    geo, surf = {}, {}
    for s in "lr":
        beam = f"gt{pair}{s}"
        y = PAIR_Y[pair] + SIDE_Y[s] + 4.0 * sv.smooth_noise(rng, plan.n_dense, 3000)
        lat, lon, head = og.beam_track(u, plan.rgt, y)
        dt = og.u_to_delta_time(u, plan.orbit) + (R_DELAY if s == "r" else 0.0) \
            + rng.normal(0.0, 2e-4, plan.n_dense)
        h = sv.surface_height(lat, lon) + 0.3 * sv.smooth_noise(rng, plan.n_dense, 5)
        geo[s], surf[s] = (lat, lon, head, dt, y), h
    dy = (surf["l"] - surf["r"])[keep] / (SIDE_Y["l"] - SIDE_Y["r"])
    dy = np.where(valid_l & valid_r, dy, np.nan)
    out = {}
    for s in "lr":
        beam, (lat, lon, head, dt, y) = f"gt{pair}{s}", geo[s]
        spot, strong, _ = beam_info(beam, sc_orient)
        v, k = valid[s], keep
        nan = np.where(v, 1.0, np.nan)
        f, qs = sv.fit_statistics(rng, v, strong, bad_quality_fraction)
        x_atc = og.SEGMENT_LENGTH * ids[k] - 0.5 * og.SEGMENT_LENGTH
        hs = surf[s][k]
        h_mean = hs + f["h_li_sigma"] * rng.standard_normal(k.sum())
        fpb, tx = f["bias_correction/fpb_med_corr"], f["bias_correction/tx_med_corr"]
        el, az = og.solar_position(dt[k], lat[k], lon[k])
        corr = sv.geophysical_corrections(dt[k], lat[k], lon[k])
        dx = np.gradient(hs, x_atc) if hs.size > 1 else np.zeros(hs.size)
        gs = (5.0, 5.0, 0.142) if layout == "006" else (20.0, 20.0, 0.3)
        m = k.sum()
        f.update({
            "delta_time": dt[k], "latitude": lat[k], "longitude": lon[k],
            "segment_id": ids[k].astype(np.int32), "atl06_quality_summary": qs,
            "h_li": (h_mean + fpb + tx) * nan, "fit_statistics/h_mean": h_mean * nan,
            "fit_statistics/dh_fit_dx": (dx + rng.normal(0, 0.002, m)) * nan,
            "fit_statistics/dh_fit_dy": dy,
            "sigma_geo_h": np.sqrt(gs[2] ** 2 + (gs[0] * dx) ** 2 + (gs[1] * np.nan_to_num(dy)) ** 2) * nan,
            "dem/dem_flag": np.where(lat[k] < -60, 4, np.where(lat[k] > 60, 1, 2)).astype(np.int8),
            "dem/dem_h": surf[s][k] + 3.0 * sv.smooth_noise(rng, m, 50),
            "dem/geoid_h": sv.geoid_height(lat[k], lon[k]),
            "dem/geoid_free2mean": corr.pop("geoid_free2mean"),
            "geophysical/bckgrd": (1e3 + 2e5 * np.maximum(np.sin(np.radians(el)), 0)) * (1 if strong else .25)
            * rng.uniform(0.7, 1.3, m),
            "geophysical/e_bckgrd": np.zeros(m) * nan,
            "geophysical/r_eff": rng.lognormal(np.log(0.04 if strong else 0.1), 0.5, m) * nan,
            "geophysical/neutat_delay_total": 2.42 * np.exp(-hs / 7500.0) + rng.normal(0, 1e-4, m),
            "geophysical/solar_elevation": el, "geophysical/solar_azimuth": az,
            "ground_track/ref_azimuth": _REF_AZ[spot] + 0.05 * sv.smooth_noise(rng, m, 200),
            "ground_track/ref_coelv": _REF_COELV[spot] + 2e-4 * sv.smooth_noise(rng, m, 200),
            "ground_track/seg_azimuth": head[k], "ground_track/x_atc": x_atc,
            "ground_track/y_atc": y[k] * nan,
            "ground_track/sigma_geo_at": np.full(m, gs[0]), "ground_track/sigma_geo_xt": np.full(m, gs[1]),
            "ground_track/sigma_geo_r": np.full(m, gs[2]),
        })
        for name, val in corr.items():
            f["geophysical/" + name] = val
        for name, val in flags.items():
            f["geophysical/" + name] = val[k]
        bs = flags["bsnow_conf"][k]
        f["geophysical/bsnow_conf"] = np.where(bs == 127, np.nan, bs)
        f["geophysical/bsnow_h"] = np.where((bs >= 1) & (bs < 127), rng.uniform(50, 500, m), np.nan)
        f["geophysical/bsnow_od"] = np.where((bs >= 1) & (bs < 127), rng.uniform(0.05, 0.5, m), np.nan)
        data = {"land_ice_segments/" + n: a for n, a in f.items()}
        sss = np.full(plan.n_dense, 3, np.int8)
        sss[np.flatnonzero(k)[v]] = f["fit_statistics/signal_selection_source"][v]
        dense_idx = np.flatnonzero(k)
        rh = sv.residual_histogram(rng, layout, dense_idx, v, dt[k], lat[k], lon[k], x_atc, ids[k],
                                   f["fit_statistics/n_fit_photons"], f["fit_statistics/h_robust_sprd"],
                                   S.BIN_TOP_H_006)
        data.update({"residual_histogram/" + n: a for n, a in rh.items()})
        sq = sv.segment_quality(dt, lat, lon, ids, sss, plan.seg_first % 100000 + 1)
        data.update({"segment_quality/" + n: a for n, a in sq.items()})
        data.update({"qa/" + n: a for n, a in sv.qa_records(dt, lat, lon, sss).items()})
        out[beam] = data
    return out


from .synth_granule import write_granule  # noqa: E402  (uses the helpers above)


def generate(outdir, granules=1, seed=0, segments=(10, 11, 12), start="2019-01-01", segments_per_beam=10000,
             size_spread=0.0, beams=None, release="006", corrupt=None, fill_fraction=0.05,
             bad_quality_fraction=0.1, rank=0, size=1, region_box=None, revision="01"):
    """Write synthetic ATL06 granules into outdir; returns the paths this rank wrote.

    rank/size split the N granules (k % size == rank); the set of files for a seed does not
    depend on size. region_box=(crs, xmin, xmax, ymin, ymax) keeps only granules crossing the
    box (e.g. ("EPSG:3031", -1124782, 81623, -919821, -96334) for the Kamb ice stream box, or
    ("EPSG:4326", W, E, S, N)). corrupt: one of CORRUPT, applied to every granule."""
    if corrupt is not None and corrupt not in CORRUPT:
        raise ValueError(f"corrupt must be one of {', '.join(CORRUPT)}")
    beams = tuple(BEAMS if not beams else [b for b in BEAMS if b in set(beams)])
    if beams and len(beams) != len(set(beams)):
        raise ValueError("bad beams")
    if not re.fullmatch(r"\d{3}", str(release)) or not re.fullmatch(r"\d{2}", str(revision)):
        raise ValueError("release must be 3 digits (e.g. 006), revision 2 digits (e.g. 01)")
    if not 0 <= fill_fraction < 1 or not 0 <= bad_quality_fraction <= 1:
        raise ValueError("fill_fraction must be in [0, 1), bad_quality_fraction in [0, 1]")
    plans = plan_granules(granules, seed, segments, start, segments_per_beam, size_spread, region_box)
    outdir = pathlib.Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    opts = dict(seed=seed, beams=beams, release=str(release), revision=str(revision), corrupt=corrupt,
                fill_fraction=fill_fraction, bad_quality_fraction=bad_quality_fraction)
    return [write_granule(outdir, p, **opts) for p in plans if p.index % size == rank]


def new_uuid(rng):
    return str(uuid.UUID(bytes=rng.bytes(16), version=3))


def add_arguments(parser):
    """Options of `readatl06 synth`."""
    parser.add_argument("outdir", metavar="OUTDIR", help="folder for the granules (created)")
    parser.add_argument("--granules", type=int, default=4, metavar="N", help="number of granules (default 4)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default 0)")
    parser.add_argument("--segments", nargs="+", default=["10-12"], metavar="SS",
                        help="granule regions 1..14, e.g. 10 11 12 or 10-12 (default 10-12)")
    parser.add_argument("--start", default="2019-01-01", metavar="DATE",
                        help="first acquisition time, ISO date or date-time UTC (default 2019-01-01)")
    parser.add_argument("--segments-per-beam", type=int, default=10000, metavar="M",
                        help="20-m segments per beam in a granule span (default 10000)")
    parser.add_argument("--size-spread", type=float, default=0.0, metavar="SIGMA",
                        help="lognormal sigma of granule sizes (default 0: all the same)")
    parser.add_argument("--beams", nargs="+", choices=BEAMS, metavar="BEAM", help="beams to write (default all six)")
    parser.add_argument("--release", default="006", help="ATL06 release, 001/003/006 layouts (default 006)")
    parser.add_argument("--corrupt", choices=CORRUPT, help="write broken granules of this kind (for tests)")
    parser.add_argument("--fill-fraction", type=float, default=0.05, help="fraction of h_li fill values (default 0.05)")
    parser.add_argument("--bad-quality-fraction", type=float, default=0.1,
                        help="fraction of valid heights with atl06_quality_summary=1 (default 0.1)")
    box = parser.add_mutually_exclusive_group()
    box.add_argument("--bbox", nargs=4, type=float, metavar=("W", "E", "S", "N"),
                     help="keep only granules whose track crosses this lon/lat box")
    box.add_argument("--bbox-xy", nargs=4, type=float, metavar=("XMIN", "XMAX", "YMIN", "YMAX"),
                     help="keep only granules whose track crosses this projected box (--crs)")
    parser.add_argument("--crs", default="EPSG:3031", help="CRS of --bbox-xy (default EPSG:3031)")
    return parser


def run(args, comm):
    """Run `readatl06 synth` on every rank of comm; returns the exit status."""
    t0 = time.perf_counter()
    box = None
    if getattr(args, "bbox", None):
        box = ("EPSG:4326",) + tuple(args.bbox)
    elif getattr(args, "bbox_xy", None):
        box = (args.crs,) + tuple(args.bbox_xy)
    try:
        paths = generate(args.outdir, granules=args.granules, seed=args.seed, segments=args.segments,
                         start=args.start, segments_per_beam=args.segments_per_beam,
                         size_spread=args.size_spread, beams=args.beams, release=args.release,
                         corrupt=args.corrupt, fill_fraction=args.fill_fraction,
                         bad_quality_fraction=args.bad_quality_fraction, rank=comm.rank,
                         size=comm.size, region_box=box)
    except ValueError as exc:
        if comm.rank == 0:
            print(f"readatl06 synth: error: {exc}", file=os.sys.stderr)
        return 2
    nbytes = sum(p.stat().st_size for p in paths)
    comm.barrier()
    if comm.rank == 0:
        dt = time.perf_counter() - t0
        print(f"synth: {args.granules} granules in {args.outdir} ({comm.size} ranks, "
              f"rank 0 wrote {len(paths)}: {nbytes / 1e6:.1f} MB) in {dt:.1f} s")
    return 0
