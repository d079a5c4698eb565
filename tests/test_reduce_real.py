"""Every output value of every real granule against an independent h5py read of the source."""
import glob
import json
import os

import h5py
import numpy as np
import pytest

from conftest import REAL
from readatl06.atl06.schema import OUTPUT_VARS
from readatl06.atl06.gpstime import gps_to_decimal_year
from readatl06.atl06.track import decode_orbit

FLT_MAX = np.finfo(np.float32).max
BEAMS = ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")


def expected_kept(lis):
    """Independent: h_li not fill/NaN, quality summary 0, |h_li| < 1e4."""
    h = lis["h_li"][()]
    fv = np.asarray(lis["h_li"].attrs["_FillValue"]).ravel()[0]
    return (h != fv) & ~np.isnan(h) & (lis["atl06_quality_summary"][()] == 0) & (np.abs(h) < 1e4)


def outputs(outdir, stem, beam):
    return sorted(glob.glob(os.path.join(outdir, f"{stem}_{beam}_[AD].h5")))


@pytest.mark.parametrize("src", REAL, ids=lambda p: p.name)
def test_values_equal_source_at_kept_segments(src, real_reduced):
    stem = src.name[:-3]
    with h5py.File(src, "r") as f:
        epoch = f["ancillary_data/atlas_sdp_gps_epoch"][0]
        sc = int(f["orbit_info/sc_orient"][0]) if "orbit_info/sc_orient" in f else None
        for beam in BEAMS:
            files = outputs(real_reduced, stem, beam)
            if beam not in f or "land_ice_segments" not in f[beam]:
                assert files == []
                continue
            lis = f[beam]["land_ice_segments"]
            kept = expected_kept(lis)
            seg = lis["segment_id"][()]
            got_ids = []
            for path in files:
                with h5py.File(path, "r") as o:
                    n = o["lat"].shape[0]
                    assert n > 0
                    idx = np.searchsorted(seg, o["segment_id"][()])
                    assert np.array_equal(seg[idx], o["segment_id"][()])
                    assert np.all(np.diff(idx) > 0), "along-track order"
                    got_ids.append(idx)
                    for v in OUTPUT_VARS:
                        if v.kind != "segment":
                            continue
                        if v.name not in o:
                            assert v.source not in lis, f"{v.name} missing although the source has it"
                            continue
                        src_vals = lis[v.source][()][idx]
                        out = o[v.name][()]
                        assert out.dtype == src_vals.dtype == np.dtype(v.dtype), v.name
                        assert out.tobytes() == src_vals.tobytes(), f"{path}:{v.name} not bit-exact"
                        assert o[v.name].attrs["units"] and o[v.name].attrs["long_name"]
                        assert o[v.name].attrs["source"] == f"/{beam}/land_ice_segments/{v.source}"
                        if "_FillValue" in lis[v.source].attrs:
                            assert o[v.name].attrs["_FillValue"] == np.asarray(
                                lis[v.source].attrs["_FillValue"]).ravel()[0]
                    # no fill value in the primary variables
                    assert not np.any(o["h_elv"][()] == FLT_MAX) and not np.any(np.isnan(o["h_elv"][()]))
                    assert not np.any(o["s_elv"][()] == FLT_MAX)
                    t = epoch + lis["delta_time"][()][idx]
                    assert np.array_equal(o["t_sec"][()], t)
                    assert np.array_equal(o["t_year"][()], gps_to_decimal_year(t))
                    rgt, cycle = int(f["orbit_info/rgt"][0]), int(f["orbit_info/cycle_number"][0])
                    assert np.all(o["rgt"][()] == rgt) and o["rgt"].dtype == np.int16
                    assert np.all(o["cycle"][()] == cycle) and o["cycle"].dtype == np.int8
                    a = o.attrs
                    direction = "ascending" if path.endswith("_A.h5") else "descending"
                    assert a["direction"] == direction and a["beam"] == beam and a["granule"] == src.name
                    assert a["rgt"] == rgt and a["cycle"] == cycle
                    assert a["segment"] == int(stem.split("_")[-3][-2:])
                    assert a["release"] == stem.split("_")[-2]
                    assert a["software"].startswith("readatl06 ")
                    assert json.loads(a["parameters"])["quality"] == "summary"
                    # beam strength and spot from sc_orient (or, in subsets, the group attributes)
                    expected_strength = (f[beam].attrs["atlas_beam_type"].decode() if sc is None else
                                         ("strong" if beam[-1] == {1: "r", 0: "l"}[sc] else "weak"))
                    assert a["beam_strength"] == expected_strength
                    assert a["spot"] == int(f[beam].attrs["atlas_spot_number"])
                    # direction: the sign of dlat/dt of these points
                    dlat = np.diff(o["lat"][()])
                    assert np.all(dlat >= 0) if direction == "ascending" else np.all(dlat <= 0)
                    orbit = np.unique(o["orbit"][()])
                    assert orbit.size == 1
                    dec = decode_orbit(orbit[0])
                    assert (dec["rgt"], dec["cycle"], dec["direction"]) == (rgt, cycle, int(direction == "descending"))
                    assert dec["beam_index"] == BEAMS.index(beam) + 1
            got = np.sort(np.concatenate(got_ids)) if got_ids else np.zeros(0, int)
            assert np.array_equal(got, np.flatnonzero(kept)), f"{beam}: kept set differs"


def test_orbit_ids_unique_per_file(real_reduced):
    seen = {}
    for p in glob.glob(os.path.join(real_reduced, "*.h5")):
        with h5py.File(p, "r") as o:
            oid = int(o["orbit"][0])
        assert oid not in seen, (p, seen.get(oid))
        seen[oid] = p
    assert len(seen) == 43   # 8 granules: 6+6+6+6+5+2+6+6 beam-direction files


def test_manifest_counts(real_reduced):
    with open(os.path.join(real_reduced, "readatl06-manifest.jsonl")) as fh:
        recs = [json.loads(x) for x in fh]
    assert sorted(r["granule"] for r in recs) == sorted(p.name for p in REAL)
    for r in recs:
        assert r["status"] == "done"
        pts = 0
        for name in r["outputs"]:
            with h5py.File(os.path.join(real_reduced, name), "r") as o:
                pts += o["lat"].shape[0]
        assert pts == r["points"]
        assert r["segments"] == r["points"] + sum(r["removed"].values())
