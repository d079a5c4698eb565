"""One synthetic ATL06 granule: beam arrays, granule metadata, HDF5 file (used by readatl06.synth).

Beam/spot mapping follows the real files: sc_orient=1 (forward): gtNl weak, gtNr strong, spots
gt1l..gt3r = 6..1, pce gt1*=3, gt2*=2, gt3*=1; sc_orient=0 (backward): gtNl strong, spots 1..6,
pce gt1*=1 ... gt3*=3. Pair centres lie 3.3 km apart across track (gt1 left, gt3 right of the
RGT, y_atc positive to the left), the two beams of a pair 90 m apart; the r beam passes a
segment 0.343 s after the l beam.
"""
import datetime
import os
import pathlib
import re
import uuid

import h5py
import numpy as np

from . import orbitgeom as og
from . import h5write
from . import tables as S
from . import values as sv
from .hostile import HOSTILE, make_hostile

BEAMS = h5write.BEAMS
CORRUPT = ("truncated", "empty", "no-beams", "missing-var", "wrong-product")
PAIR_Y = {1: 3300.0, 2: 0.0, 3: -3300.0}          # m, pair centre left of the RGT (y_atc)
SIDE_Y = {"l": 45.0, "r": -45.0}                   # m, beams of a pair are 90 m apart
R_DELAY = 0.343                                    # s, the r beam sees a segment after the l beam
_SPOT_FWD = {"gt1l": 6, "gt1r": 5, "gt2l": 4, "gt2r": 3, "gt3l": 2, "gt3r": 1}
_REF_AZ = {1: 113.6, 2: 159.9, 3: -135.3, 4: -58.4, 5: 117.9, 6: 44.3}   # degrees, per spot
_REF_COELV = {1: 0.203, 2: 0.412, 3: 0.244, 4: 0.252, 5: 0.253, 6: 0.261}
_FLIP0 = float(og.utc_to_delta_time("2018-12-28T00:00:00"))
_FLIP_PERIOD = (float(og.utc_to_delta_time("2023-08-15T23:30:00")) - _FLIP0) / 8.0
_FIRST_ORIENT = float(og.utc_to_delta_time("2018-10-13T23:29:55"))


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
    wander = 6.0 * sv.smooth_noise(rng, plan.n_dense, 3000)       # pointing wander of the pair
    for s in "lr":
        y = PAIR_Y[pair] + SIDE_Y[s] + wander + 0.5 * sv.smooth_noise(rng, plan.n_dense, 500)
        lat, lon, head = og.beam_track(u, plan.rgt, y)
        dt = og.u_to_delta_time(u, plan.orbit) + (R_DELAY if s == "r" else 0.0) \
            + rng.normal(0.0, 1e-5, plan.n_dense)
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
        el, az = sv.along_track(og.solar_position, ids[k], dt[k], lat[k], lon[k], angles=(1,))
        corr = sv.along_track(sv.geophysical_corrections, ids[k], dt[k], lat[k], lon[k])
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
            "dem/geoid_h": sv.along_track(sv.geoid_height, ids[k], lat[k], lon[k]),
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


def _utc(delta_time):
    return og.delta_time_to_utc(delta_time).astype(datetime.datetime)


def _iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def granule_name(t_first, rgt, cycle, region, release, revision, product="ATL06"):
    """ATL06_yyyymmddhhmmss_ttttccss_vvv_rr.h5 (time = first delta_time, UTC, truncated to s)."""
    return f"{product}_{_utc(t_first):%Y%m%d%H%M%S}_{rgt:04d}{cycle:02d}{region:02d}_{release}_{revision}.h5"


def _bounding_polygon(plan):
    """11-vertex polygon around the six tracks (orbit_info/bounding_polygon_lat1/lon1, rel 006)."""
    ids = plan.seg_first + np.linspace(0, plan.n_dense - 1, 5)
    u = og.segment_u(ids)
    la, lo, _ = og.beam_track(u, plan.rgt, np.full(5, PAIR_Y[1] + SIDE_Y["l"]))
    ra, ro, _ = og.beam_track(u[::-1], plan.rgt, np.full(5, PAIR_Y[3] + SIDE_Y["r"]))
    lat, lon = np.concatenate([la, ra, la[:1]]), np.concatenate([lo, ro, lo[:1]])
    return lat, lon


def _control(rng, names, gps, release, revision, uuids, cyc_orb):
    cf = f"CTL_atlas_l3a_is_{int(rng.integers(10 ** 8, 10 ** 9)):09d}.ctl"
    lines = [f"cf_name={cf} atlas_l3a_is", "asas.atl06.surftype=1"]
    span = f"{gps[0]:.4f} {gps[1]:.4f}"
    for key, (fname, version, uid) in names.items():
        lines.append(f"IN_{key}={fname} {span} {version} 01 {uid}")
    lines.append(f"IN_ATL03={uuids['atl03_name']} {span} {release} {revision} {uuids['atl03']} {cyc_orb} 2 2")
    lines.append(f"IN_ATL09={uuids['atl09_name']} {span} {release} {revision} {uuids['atl09']} {cyc_orb} 1 14")
    lines.append(f"OUT_ATL06={uuids['name']} {span} {release} {revision} {uuids['file']} {cyc_orb} 2 2")
    return cf, "\n".join(lines)


def _granule_values(plan, layout, release, revision, t0, t1, sc, ctl):
    """Datasets of ancillary_data, orbit_info and quality_assessment (normalised path -> array)."""
    week0, sow0 = og.gps_week_sow(t0)
    week1, sow1 = og.gps_week_sow(t1)
    i4 = lambda v: np.array([v], np.int32)   # noqa: E731
    v = {"atlas_sdp_gps_epoch": [og.GPS_EPOCH_OFFSET], "control": [ctl.ljust(100000).encode()],
         "data_start_utc": [_iso(_utc(t0)).encode()], "data_end_utc": [_iso(_utc(t1)).encode()],
         "granule_start_utc": [_iso(_utc(t0).replace(microsecond=0)).encode()],
         "granule_end_utc": [_iso(_utc(np.ceil(t1))).encode()],
         "start_delta_time": [t0], "end_delta_time": [t1], "start_gpsweek": i4(week0), "end_gpsweek": i4(week1),
         "start_gpssow": [sow0], "end_gpssow": [sow1], "release": [release.ljust(80).encode()],
         "version": [revision.ljust(80).encode()], "qa_at_interval": [0.0]}
    for se, seg in (("start", plan.seg_first), ("end", plan.seg_first + plan.n_dense - 1)):
        v.update({f"{se}_cycle": i4(plan.cycle), f"{se}_rgt": i4(plan.rgt), f"{se}_region": i4(plan.region),
                  f"{se}_orbit": i4(plan.orbit + og.ORBIT_NUMBER_OFFSET), f"{se}_geoseg": i4(seg)})
    out = {"/ancillary_data/" + k: np.asarray(a) for k, a in v.items()}
    for k, a in S.LAND_ICE_CONSTANTS[layout].items():
        if not k.startswith(".."):
            out["/ancillary_data/land_ice/" + k] = np.asarray(a)
    lat, lon = _bounding_polygon(plan)
    out.update({"/orbit_info/crossing_time": [og.node_time(plan.orbit)], "/orbit_info/cycle_number": [plan.cycle],
                "/orbit_info/lan": [og.node_longitude(plan.rgt)], "/orbit_info/rgt": [plan.rgt],
                "/orbit_info/orbit_number": [plan.orbit + og.ORBIT_NUMBER_OFFSET],
                "/orbit_info/sc_orient": [sc[0]], "/orbit_info/sc_orient_time": [sc[1]],
                "/orbit_info/bounding_polygon_lat1": lat, "/orbit_info/bounding_polygon_lon1": lon,
                "/quality_assessment/qa_granule_fail_reason": [0], "/quality_assessment/qa_granule_pass_fail": [0]})
    return out


def _overrides(plan, release, revision, name, created, uids, t0, t1, extent, cf):
    """Granule-specific attribute values of the root and /METADATA groups."""
    start, end = _utc(t0).replace(microsecond=0), _utc(np.ceil(t1))
    lin = {"start_cycle": plan.cycle, "end_cycle": plan.cycle, "start_rgt": plan.rgt, "end_rgt": plan.rgt,
           "start_orbit": plan.orbit + og.ORBIT_NUMBER_OFFSET, "end_orbit": plan.orbit + og.ORBIT_NUMBER_OFFSET}
    steps = {"runTimeParameters": cf, "stepDateTime": created}
    return {
        "/": {"date_created": created, "identifier_file_uuid": uids["file"], "history": created + ";" + uids["file"],
              "time_coverage_start": _iso(start), "time_coverage_end": _iso(end),
              "time_coverage_duration": float((end - start).total_seconds()),
              "geospatial_lat_min": extent[0], "geospatial_lat_max": extent[1],
              "geospatial_lon_min": extent[2], "geospatial_lon_max": extent[3]},
        "/METADATA/DatasetIdentification": {"creationDate": created, "uuid": uids["file"], "fileName": name,
                                            "VersionID": release},
        "/METADATA/Extent": {"southBoundLatitude": extent[0], "northBoundLatitude": extent[1],
                             "westBoundLongitude": extent[2], "eastBoundLongitude": extent[3],
                             "rangeBeginningDateTime": _iso(_utc(t0)), "rangeEndingDateTime": _iso(_utc(t1))},
        "/METADATA/Lineage/ATL03": dict(lin, fileName=uids["atl03_name"], uuid=uids["atl03"], version=release,
                                        start_region=plan.region, end_region=plan.region,
                                        start_geoseg=plan.seg_first, end_geoseg=plan.seg_first + plan.n_dense - 1),
        "/METADATA/Lineage/ATL09": dict(lin, fileName=uids["atl09_name"], uuid=uids["atl09"], version=release),
        "/METADATA/Lineage/Control": {"fileName": cf},
        "/METADATA/ProcessStep/PGE": steps, "/METADATA/ProcessStep/QA": steps,
        "/METADATA/ProcessStep/Browse": steps, "/METADATA/ProcessStep/Metadata": steps,
        "/METADATA/QADatasetIdentification": {"creationDate": created, "fileName": name[:-3] + ".qa"},
        "/METADATA/SeriesIdentification": {"VersionID": release},
    }


def _group_attrs_fn(layout, release, overrides, sc_orient):
    doi = re.compile(r"ATL06\.\d{3}")

    def group_attrs(npath, beam):
        ov = dict(overrides.get(npath, {}))
        if npath == "/gtx":
            spot, strong, pce = beam_info(beam, sc_orient)
            ov.update({"atlas_pce": f"pce{pce}", "atlas_beam_type": "strong" if strong else "weak",
                       "groundtrack_id": beam, "atmosphere_profile": f"profile_{beam[2]}",
                       "atlas_spot_number": str(spot), "sc_orientation": "Forward" if sc_orient == 1 else "Backward"})
        out = []
        for name, val, typ in S.GROUPS[layout].get(npath, []):
            if name == "history" and name in ov:
                val = ov[name] + ";" + val.split(";", 2)[2]
            elif name in ov:
                val = ov[name]
            elif typ == "str":
                val = doi.sub(f"ATL06.{release}", val)
            out.append([name, val, typ])
        return out
    return group_attrs


def write_granule(outdir, plan, seed, beams, release, revision, corrupt, fill_fraction, bad_quality_fraction):
    """Build and write one granule; returns its path."""
    layout = h5write.layout_release(release)
    rng = np.random.default_rng(np.random.SeedSequence([seed, plan.index]))
    t_nom = float(og.u_to_delta_time(og.segment_u(plan.seg_first), plan.orbit))
    sc = orientation(t_nom)
    sel = () if corrupt == "no-beams" else beams
    data = {}
    for pair in sorted({int(b[2]) for b in (sel or BEAMS)}):       # a pair's values: its own random stream
        prng = np.random.default_rng(np.random.SeedSequence([seed, plan.index, pair]))
        data.update(_pair(prng, plan, pair, layout, fill_fraction, bad_quality_fraction, sc[0]))
    rows = [data[b]["land_ice_segments/delta_time"] for b in (sel or BEAMS)]
    dts = np.concatenate(rows) if sum(r.size for r in rows) else np.array([t_nom])
    t0, t1 = float(dts.min()), float(dts.max())
    lats = np.concatenate([data[b]["land_ice_segments/latitude"] for b in (sel or BEAMS)] + [[np.nan]])
    lons = np.concatenate([data[b]["land_ice_segments/longitude"] for b in (sel or BEAMS)] + [[np.nan]])
    extent = [float(np.nanmin(lats)), float(np.nanmax(lats)), float(np.nanmin(lons)), float(np.nanmax(lons))] \
        if np.isfinite(lats).any() else [0.0, 0.0, 0.0, 0.0]
    name = granule_name(t0, plan.rgt, plan.cycle, plan.region, release, revision)
    uids = {k: str(uuid.UUID(bytes=rng.bytes(16), version=3)) for k in ("file", "atl03", "atl09")}
    uids.update(name=name, atl03_name="ATL03" + name[5:],
                atl09_name=granule_name(og.node_time(plan.orbit), plan.rgt, plan.cycle, 1, release, revision, "ATL09"))
    created = _iso(_utc(t1 + 30 * 86400 + float(rng.integers(0, 86400))).replace(microsecond=0))
    anc = {g.rsplit("/", 1)[1]: (a["fileName"], a["version"], a["uuid"])
           for g, lst in S.GROUPS[layout].items() if g.startswith("/METADATA/Lineage/ANC")
           for a in [{n: v for n, v, _ in lst}]}
    cyc_orb = f"{plan.cycle} {plan.cycle} {plan.orbit + og.ORBIT_NUMBER_OFFSET} " \
              f"{plan.orbit + og.ORBIT_NUMBER_OFFSET} {plan.rgt} {plan.rgt}"
    cf, ctl = _control(rng, anc, (t0 + og.GPS_EPOCH_OFFSET, t1 + og.GPS_EPOCH_OFFSET), release, revision,
                       uids, cyc_orb)
    values = _granule_values(plan, layout, release, revision, t0, t1, sc, ctl)

    def provider(npath, beam):
        if npath.startswith("/gtx/"):
            return data[beam][npath[5:]]
        if npath.startswith("/quality_assessment/gtx/"):
            return data[beam]["qa/" + npath.rsplit("/", 1)[1]]
        return values[npath]
    attrs = _group_attrs_fn(layout, release, _overrides(plan, release, revision, name, created, uids, t0, t1,
                                                        extent, cf), sc[0])
    skip = {("/gtx/land_ice_segments/h_li", sel[0])} if corrupt == "missing-var" and sel else set()
    path = pathlib.Path(outdir) / name
    tmp = path.with_name(f".{name}.{os.getpid()}.tmp")
    try:
        with h5py.File(tmp, "w", track_order=True) as f:
            if corrupt == "wrong-product":
                _write_atl03_like(f, data, sel, values, attrs)
            else:
                h5write.write_tree(f, layout, sel, provider, attrs, skip)
        if corrupt in HOSTILE:
            make_hostile(tmp, corrupt, sel[0] if sel else None)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    if corrupt in ("truncated", "empty"):
        os.truncate(path, path.stat().st_size // 2 if corrupt == "truncated" else 0)
    return path


def _write_atl03_like(f, data, beams, values, attrs):
    """An ATL03-like granule (photon heights, no land_ice_segments) that says ATL03 in its attributes."""
    atl03 = {"short_name": "ATL03", "granule_type": "ATL03", "identifier_product_type": "ATL03", "level": "L2A",
             "title": "ATLAS/ICESat-2 L2A Global Geolocated Photon Data",
             "description": "This data set (ATL03) contains height above the WGS 84 ellipsoid (ITRF2014 reference "
                            "frame), latitude, longitude, and time for all photons downlinked by ATLAS.",
             "identifier_product_doi": "doi:10.5067/ATLAS/ATL03.006"}
    for name, val, typ in attrs("/", None):
        h5write.set_attr(f, name, atl03.get(name, val), typ)
    for k in ("atlas_sdp_gps_epoch", "data_start_utc", "data_end_utc", "release", "version"):
        f.create_dataset("ancillary_data/" + k, data=values["/ancillary_data/" + k])
    for k in ("rgt", "cycle_number", "sc_orient"):
        dtype = np.int16 if k == "rgt" else np.int8
        f.create_dataset("orbit_info/" + k, data=np.asarray(values["/orbit_info/" + k], dtype))
    for beam in beams:
        li = data[beam]
        n = li["land_ice_segments/delta_time"].size
        rep = 3
        h = np.nan_to_num(li["land_ice_segments/fit_statistics/h_mean"], nan=0.0)
        g = f.create_group(beam)
        for k, a in (("delta_time", li["land_ice_segments/delta_time"]), ("h_ph", h.astype(np.float32)),
                     ("lat_ph", li["land_ice_segments/latitude"]), ("lon_ph", li["land_ice_segments/longitude"])):
            g.create_dataset("heights/" + k, data=np.repeat(a, rep), chunks=True, compression="gzip")
        g.create_dataset("heights/signal_conf_ph", data=np.full((n * rep, 5), 4, np.int8), chunks=True)
        g.create_dataset("geolocation/segment_id", data=li["land_ice_segments/segment_id"])
        g.create_dataset("geolocation/segment_ph_cnt", data=np.full(n, rep, np.int32))
        g.create_dataset("geolocation/ph_index_beg", data=1 + rep * np.arange(n, dtype=np.int64))
        g.create_dataset("geolocation/reference_photon_lat", data=li["land_ice_segments/latitude"])
        g.create_dataset("geolocation/reference_photon_lon", data=li["land_ice_segments/longitude"])
