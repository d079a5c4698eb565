"""Hostile files and inputs (issue 16, items 6, 8, 9, 13, 14): readatl06.reader.checks on real and hostile
granules, the hostile synth variants, FIFOs among the sources, plots across hemispheres and of bad
granules. Anything that could hang runs in a subprocess with a timeout."""
import glob
import json
import os
import re
import shutil
import time

import h5py
import numpy as np
import pytest

from conftest import DATA, REAL, run_cli
from readatl06 import synth
from readatl06.reader import checks as sanity
from readatl06.errors import GranuleError
from readatl06.reader.checks import check_granule, nonfinite_mask

NORTH = "ATL06_20230816161508_08782002_006_02.h5"                 # 57-58 N, sc_orient 0
SOUTH = "processed_ATL06_20190222031203_08500210_001_01.h5"       # Antarctica, NSIDC subset
# n_seg per beam of the real files (data/README.md)
REAL_LENGTHS = {NORTH: {"gt1l": 1099, "gt1r": 1099, "gt2l": 1136, "gt2r": 1136, "gt3l": 1283, "gt3r": 1283},
                "processed_ATL06_20181214211434_11800102_001_01.h5": {"gt1l": 689, "gt1r": 691}}
SYN = dict(granules=1, segments_per_beam=400, seed=5)

# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    """The same synthetic granule (same seed) clean and in every hostile variant: {kind: path}."""
    root = tmp_path_factory.mktemp("hostile")
    out = {None: synth.generate(root / "clean", **SYN)[0]}
    for kind in synth.HOSTILE:
        out[kind] = synth.generate(root / kind, corrupt=kind, **SYN)[0]
    return out


def hostile_copy(src, dst, edit):
    """Copy a granule and edit it with h5py (``edit(f)``); returns the new path."""
    dst = str(dst)
    shutil.copy(src, dst)
    os.chmod(dst, 0o644)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return dst


def check(path, **kw):
    with h5py.File(path, "r") as f:
        return check_granule(f, os.path.basename(path), **kw)


def fails(path, **kw):
    with pytest.raises(GranuleError) as info:
        check(path, **kw)
    assert str(info.value).startswith(os.path.basename(path) + ": ")
    return info.value.cause


# ---------------------------------------------------------------- sanity on real granules
@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_granules_pass_without_notes(path):
    c = check(path)
    assert c.notes == [] and c.epoch == 1198800018.0 and c.orient_valid
    with h5py.File(path, "r") as f:
        orient = f["orbit_info/sc_orient"][0] if "orbit_info/sc_orient" in f else None
        assert c.sc_orient == orient
        beams = [b for b in sanity.BEAMS if b in f and "land_ice_segments" in f[b]]
        assert sorted(c.lengths) == sorted(beams)
        for b in beams:
            assert c.lengths[b] == f[f"{b}/land_ice_segments/h_li"].shape[0]
            spot, strength = c.beam_info(b, dict(f[b].attrs))
            assert strength == f[b].attrs["atlas_beam_type"].decode()
            assert spot == int(f[b].attrs["atlas_spot_number"].decode())
    for name, lengths in REAL_LENGTHS.items():
        if path.name == name:
            assert {b: c.lengths[b] for b in lengths} == lengths


def test_clean_synthetic_granule_passes(syn):
    c = check(syn[None])
    assert c.notes == [] and c.orient_valid and len(c.lengths) == 6


def test_sources_straight_from_the_output_table(syn):
    """What the reducer will pass: every OutVar's source ('' for the orbit id, repeats for the times)."""
    from readatl06.atl06.schema import output_vars
    table = output_vars(["fit_statistics/n_fit_photons", "/gtx/land_ice_segments/ground_track/x_atc",
                         "/orbit_info/lan", "/ancillary_data/atlas_sdp_gps_epoch"])
    sources = [v.source for v in table]
    assert "" in sources and sources.count("delta_time") == 3      # t_sec, t_year, time
    assert check(syn[None], sources=sources).lengths == check(syn[None]).lengths
    assert check(_real(), sources=sources, beams=("gt1l", "gt3r")).lengths == {"gt1l": 1099, "gt3r": 1283}
    assert check(syn["no-epoch"], sources=sources).epoch == 1198800018.0    # a note, not an error


# ---------------------------------------------------------------- hostile synth variants
def test_string_h_li_names_h_li_and_both_dtypes(syn):
    cause = fails(syn["string-h-li"])
    assert cause == "beam gt1l: land_ice_segments/h_li is stored as |S12 (byte strings), expected float32"
    n = check(syn[None]).lengths["gt2l"]
    assert check(syn["string-h-li"], beams=("gt2l",)).lengths == {"gt2l": n}     # only beams read are checked
    with h5py.File(syn["string-h-li"], "r") as f:
        assert f["gt1l/land_ice_segments/h_li"].dtype == np.dtype("S12")


def test_huge_declared_shape_is_one_line_and_fast(syn):
    t0 = time.perf_counter()
    cause = fails(syn["huge-shape"])
    assert time.perf_counter() - t0 < 1.0
    size = os.path.getsize(syn["huge-shape"])
    assert size < 10 * 2 ** 20
    assert cause.startswith("beam gt1l: land_ice_segments/latitude declares 1,000,000,000,000 values of "
                            "float64 (8.0 TB), but the file is ")
    assert "stores only 0 of its chunks (10,000 values each)" in cause


def test_truncated_latitude_names_latitude(syn):
    n = check(syn[None]).lengths["gt1l"]
    assert fails(syn["short-latitude"]) == (f"beam gt1l: land_ice_segments/latitude has {n - 1} values; the 15 "
                                            f"other variables read have {n} (one value per segment)")


def test_missing_epoch_is_a_note_and_the_standard_is_used(syn):
    c = check(syn["no-epoch"])
    assert c.epoch == 1198800018.0
    assert c.notes == ["missing atlas_sdp_gps_epoch (ancillary_data/atlas_sdp_gps_epoch): the standard "
                       "1198800018.0 s (GPS time of 2018-01-01T00:00:00Z) used"]


def test_sc_orient_7_is_a_note_and_strength_unknown(syn):
    clean, bad = check(syn[None]), check(syn["sc-orient-7"])
    assert clean.sc_orient in (0, 1) and clean.beam_info("gt1l")[1] in ("strong", "weak")
    assert bad.sc_orient is None and not bad.orient_valid
    assert bad.notes == ["orbit_info/sc_orient is 7, outside 0 (backward), 1 (forward), 2 (transition): "
                         "beam strength unknown"]
    with h5py.File(syn["sc-orient-7"], "r") as f:            # the groups' attributes do not lend one
        assert {bad.beam_info(b, dict(f[b].attrs)) for b in sanity.BEAMS} == {(0, "unknown")}


def test_nan_coordinates_pass_the_checks_and_are_masked(syn):
    assert check(syn["nan-coords"]).notes == []
    with h5py.File(syn["nan-coords"], "r") as f, h5py.File(syn[None], "r") as g:
        li, ref = f["gt1l/land_ice_segments"], g["gt1l/land_ice_segments"]
        lat, lon, t = li["latitude"][()], li["longitude"][()], li["delta_time"][()]
        idx = synth.hostile_indices(lat.size)
        bad = nonfinite_mask(lat, lon, t)
        expected = np.zeros(lat.size, bool)
        for v in idx.values():
            expected[v] = True
        assert np.array_equal(bad, expected) and 0 < bad.sum() < lat.size
        assert np.isnan(lat[idx["latitude"]]).all() and np.isposinf(lon[idx["longitude"]]).all()
        assert np.array_equal(lat[~bad], ref["latitude"][()][~bad])     # nothing else touched
        assert not nonfinite_mask(ref["latitude"][()], ref["longitude"][()], ref["delta_time"][()]).any()


def test_nonfinite_and_range_masks():
    lat = np.array([1.0, np.nan, 3.0, 4.0, 95.0])
    lon = np.array([1.0, 2.0, -np.inf, 4.0, 5.0])
    t = np.array([1.0, 2.0, 3.0, np.nan, 5.0])
    assert nonfinite_mask(lat, lon, t).tolist() == [False, True, True, True, False]
    assert nonfinite_mask(lat, lon, np.arange(5)).tolist() == [False, True, True, False, False]   # ints: finite
    assert sanity.out_of_range_mask(lat, np.array([1, 2, 3, 181, 5.0])).tolist() == [False, False, False, True, True]
    with pytest.raises(ValueError, match="shapes differ"):
        nonfinite_mask(lat, lon[:3], t)


# ---------------------------------------------------------------- hand-made hostile copies of a real granule
def _real(name=NORTH):
    return DATA / "atl06" / name


def test_contiguous_huge_dataset(tmp_path):
    def edit(f):
        del f["gt2r/land_ice_segments/h_li"]
        f.create_dataset("gt2r/land_ice_segments/h_li", shape=(10 ** 12,), dtype="f4")   # never written
    cause = fails(hostile_copy(_real(), tmp_path / NORTH, edit))
    assert cause.startswith("beam gt2r: land_ice_segments/h_li declares 1,000,000,000,000 values of float32 (4.0 TB)")
    assert cause.endswith("contiguous data cannot be larger than the file")


def test_granule_wide_variables_are_checked(tmp_path):
    def huge_rgt(f):
        del f["orbit_info/rgt"]
        f.create_dataset("orbit_info/rgt", shape=(10 ** 11,), dtype="i2", chunks=(16,), maxshape=(None,))
    cause = fails(hostile_copy(_real(), tmp_path / "a.h5", huge_rgt))
    assert cause.startswith("orbit_info/rgt declares 100,000,000,000 values of int16")

    def string_rgt(f):
        del f["orbit_info/cycle_number"]
        f["orbit_info/cycle_number"] = np.array([b"20"])
    assert fails(hostile_copy(_real(), tmp_path / "b.h5", string_rgt)) == \
        "orbit_info/cycle_number is stored as |S2 (byte strings), expected int8"


@pytest.mark.parametrize("edit, expected", [
    (lambda li: (li.__delitem__("h_li"), li.create_dataset("h_li", data=np.array(["1.0"] * 1283, dtype=object),
                                                           dtype=h5py.string_dtype())),
     "beam gt3l: land_ice_segments/h_li is stored as |O (variable-length strings or objects), expected float32"),
    (lambda li: (li.__delitem__("latitude"), li.create_dataset("latitude", data=np.zeros((1283, 2)))),
     "beam gt3l: land_ice_segments/latitude has shape (1283, 2), expected 1-D (one value per segment)"),
    (lambda li: (li.__delitem__("h_li"), li.create_group("h_li")),
     "beam gt3l: land_ice_segments/h_li is a group, expected a dataset"),
    (lambda li: (li.__delitem__("latitude"), li.create_dataset("latitude", data=np.zeros(1283, "i4"))),
     "beam gt3l: land_ice_segments/latitude is stored as int32, expected float64"),
    (lambda li: li["geophysical/dac"].resize((1000,)),
     "beam gt3l: land_ice_segments/geophysical/dac has 1,000 values; the 15 other variables read have 1,283 "
     "(one value per segment)"),
])
def test_types_shapes_and_lengths_name_the_variable(tmp_path, edit, expected):
    p = hostile_copy(_real(), tmp_path / NORTH, lambda f: edit(f["gt3l/land_ice_segments"]))
    assert fails(p) == expected


def test_length_tie_lists_both_groups(tmp_path):
    only = ("latitude", "longitude", "h_li", "delta_time")
    p = hostile_copy(_real(), tmp_path / NORTH, lambda f: [f[f"gt1r/land_ice_segments/{v}"].resize((7,))
                                                            for v in only[:2]])
    assert fails(p, sources=only) == ("beam gt1r: the variables disagree in length with no majority "
                                      "(land_ice_segments/latitude, land_ice_segments/longitude: 7; "
                                      "land_ice_segments/h_li, land_ice_segments/delta_time: 1,099)")


def test_user_variables_and_absolute_beam_paths_are_checked(tmp_path):
    p = hostile_copy(_real(), tmp_path / NORTH,
                     lambda f: f["gt2l/land_ice_segments/ground_track/x_atc"].resize((5,)))
    assert check(p).notes == []                                   # not read by default: not checked
    for extra in ("ground_track/x_atc", "/gtx/land_ice_segments/ground_track/x_atc"):
        cause = fails(p, sources=sanity.default_sources() + (extra,))
        assert cause == ("beam gt2l: land_ice_segments/ground_track/x_atc has 5 values; the 16 other variables "
                         "read have 1,136 (one value per segment)")


@pytest.mark.parametrize("value, note, epoch", [
    (np.nan, "ancillary_data/atlas_sdp_gps_epoch is nan, not a GPS time: the standard 1198800018.0 s "
             "(GPS time of 2018-01-01T00:00:00Z) used", 1198800018.0),
    (1198800019.5, "ancillary_data/atlas_sdp_gps_epoch is 1198800019.5 s, not the standard 1198800018.0 s; "
                   "the granule's value used", 1198800019.5),
])
def test_unusable_or_unusual_epoch(tmp_path, value, note, epoch):
    p = hostile_copy(_real(), tmp_path / NORTH, lambda f: f["ancillary_data/atlas_sdp_gps_epoch"].__setitem__(0, value))
    c = check(p)
    assert c.notes == [note] and c.epoch == epoch


@pytest.mark.parametrize("values, note, orient, valid", [
    ([1.5], "orbit_info/sc_orient is 1.5, outside 0 (backward), 1 (forward), 2 (transition): beam strength unknown",
     None, False),
    ([-1], "orbit_info/sc_orient is -1, outside 0 (backward), 1 (forward), 2 (transition): beam strength unknown",
     None, False),
    ([1, 0], "orbit_info/sc_orient changes within the granule (1, 0): the first, 1 (forward), used for every beam",
     1, True),
    ([2], None, 2, True),
])
def test_sc_orient_values(tmp_path, values, note, orient, valid):
    def edit(f):
        del f["orbit_info/sc_orient"]
        f["orbit_info/sc_orient"] = np.array(values, dtype="f8" if 1.5 in values else "i1")
    c = check(hostile_copy(_real(), tmp_path / NORTH, edit))
    assert c.notes == ([note] if note else []) and c.sc_orient == orient and c.orient_valid is valid
    if orient == 2:                                               # transition: the groups' attributes
        with h5py.File(_real(), "r") as f:
            assert c.beam_info("gt1l", dict(f["gt1l"].attrs)) == (1, "strong")


def test_compressible_chunked_data_larger_than_the_file_is_fine(tmp_path):
    with h5py.File(tmp_path / "z.h5", "w") as f:
        f.create_dataset("z", data=np.zeros(10 ** 7), chunks=(10000,), compression="gzip", shuffle=True)
    with h5py.File(tmp_path / "z.h5", "r") as f:
        size = sanity.file_size(f)
        assert 8 * 10 ** 7 > 100 * size
        assert sanity.declared_size_problem(f["z"], size) is None


# ---------------------------------------------------------------- FIFOs and own outputs among the sources
@pytest.fixture
def src_with_fifo(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in (NORTH, SOUTH):
        shutil.copy(_real(name), src / name)
    fifo = src / "ATL06_20190101000000_00010110_006_01.h5"
    os.mkfifo(fifo)
    return src, fifo


def test_fifo_list_finishes_and_lists_the_good_granules(src_with_fifo):
    src, fifo = src_with_fifo
    r = run_cli("list", src, timeout=60)
    assert r.returncode == 0, r.stderr
    assert sorted(os.path.basename(p) for p in r.stdout.split()) == sorted([NORTH, SOUTH])
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("ranks", [None, 2])
def test_fifo_reduce_finishes_and_reduces_the_good_granules(src_with_fifo, tmp_path, ranks):
    src, fifo = src_with_fifo
    out = tmp_path / "out"
    r = run_cli("reduce", src, "-o", out, "--no-progress", ranks=ranks, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "2 granules selected, 2 done" in r.stdout
    names = {os.path.basename(p).split("_gt")[0] for p in glob.glob(str(out / "*_gt??_[AD].h5"))}
    assert names == {NORTH[:-3], SOUTH[:-3]}


def test_fifo_is_refused_by_name(src_with_fifo, tmp_path):
    src, fifo = src_with_fifo
    for args in (("list", src), ("reduce", src, "-o", tmp_path / "o", "--no-progress")):
        r = run_cli(*args, timeout=60)
        assert f"{fifo}: a FIFO (named pipe), not a regular file; not read" in r.stderr


def test_rerun_with_outdir_inside_source_does_not_take_its_outputs(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(_real(NORTH), src / NORTH)
    out = src / "out"
    r1 = run_cli("reduce", src, "-o", out, "--no-progress", timeout=120)
    assert r1.returncode == 0, r1.stderr
    assert len(glob.glob(str(out / "*_gt??_[AD].h5"))) == 6
    r2 = run_cli("reduce", src, "-o", out, "--no-progress", "--overwrite", timeout=120)
    assert r2.returncode == 0, r2.stderr
    assert "1 granules selected" in r2.stdout
    assert "duplicate" not in r2.stderr and "per-beam output" not in r2.stderr
    r3 = run_cli("list", src, timeout=60)                     # list knows no OUTDIR: refused by name
    assert r3.stdout.split() == [str(src / NORTH)]
    assert r3.stderr.count("a readatl06 per-beam output, not a granule") == 6


# ---------------------------------------------------------------- hostile granules through reduce
def test_reduce_hostile_granules_one_line_each_and_good_ones_done(tmp_path):
    src = tmp_path / "src"
    kinds = [None] + list(synth.HOSTILE)
    paths = {k: synth.generate(src, corrupt=k, start=f"2019-01-{i + 1:02d}", **SYN)[0] for i, k in enumerate(kinds)}
    with h5py.File(paths["short-latitude"], "r") as f:
        n = f["gt1l/land_ice_segments/h_li"].shape[0]
    out = tmp_path / "out"
    r = run_cli("reduce", src, "-o", out, "--no-progress", timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "MemoryError" not in r.stderr, r.stderr
    failed = {k: f"FAILED {paths[k].name}: beam gt1l: land_ice_segments/{v}" for k, v in
              (("string-h-li", "h_li is stored as |S12"), ("huge-shape", "latitude declares 1,000,000,000,000"),
               ("short-latitude", f"latitude has {n - 1} values"))}
    for line in failed.values():
        assert line in r.stderr
    records = {}
    with open(out / "readatl06-manifest.jsonl") as fh:
        for line in fh:
            rec = json.loads(line)
            records[rec["granule"]] = rec
    assert {k: records[p.name]["status"] for k, p in paths.items()} == {
        None: "done", "string-h-li": "failed", "huge-shape": "failed", "short-latitude": "failed",
        "nan-coords": "done", "range-coords": "done", "no-epoch": "done", "sc-orient-7": "done"}
    assert any("missing atlas_sdp_gps_epoch" in n for n in records[paths["no-epoch"].name]["notes"])
    for f in glob.glob(str(out / f"{paths['sc-orient-7'].stem}_*.h5")):
        with h5py.File(f, "r") as h:
            assert h.attrs["beam_strength"] == "unknown"
    for kind in ("nan-coords", "range-coords"):
        for f in glob.glob(str(out / f"{paths[kind].stem}_gt1l_*.h5")):
            with h5py.File(f, "r") as h:
                for v in ("lat", "lon", "t_sec", "t_year"):
                    assert np.isfinite(h[v][()]).all(), v
                assert (np.abs(h["lat"][()]) <= 90).all() and (np.abs(h["lon"][()]) <= 180).all()


def test_reduce_drops_nan_points_like_fill_and_keeps_the_rest(syn, tmp_path):
    runs = {}
    for kind in (None, "nan-coords"):
        out = tmp_path / str(kind)
        r = run_cli("reduce", os.path.dirname(syn[kind]), "-o", out, "--no-progress", "--beams", "gt1l",
                    "--vars", "segment_id", timeout=120)
        assert r.returncode == 0, r.stderr
        files = sorted(glob.glob(str(out / "*_gt1l_[AD].h5")))
        with open(out / "readatl06-manifest.jsonl") as fh:
            rec = json.loads(fh.readline())
        data = {}
        for f in files:
            with h5py.File(f, "r") as h:
                data[os.path.basename(f)] = {k: h[k][()] for k in ("segment_id", "lat", "lon", "t_sec", "h_elv")}
        runs[kind] = (data, rec)
    (clean, rc), (bad, rb) = runs[None], runs["nan-coords"]
    assert sorted(bad) == sorted(clean)                       # same direction files
    with h5py.File(syn[None], "r") as f:
        ids = f["gt1l/land_ice_segments/segment_id"][()]
    spoiled = set(ids[np.concatenate(list(synth.hostile_indices(ids.size).values()))].tolist())
    lost = 0
    for name, c in clean.items():
        keep = ~np.isin(c["segment_id"], list(spoiled))
        lost += int((~keep).sum())
        for k in c:
            assert np.array_equal(bad[name][k], c[k][keep]), (name, k)
    assert lost > 0 and rb["points"] == rc["points"] - lost
    removed = lambda r: r["removed"]["fill"] + r["removed"]["quality"] + r["removed"]["invalid"]   # noqa: E731
    assert removed(rb) == removed(rc) + lost


@pytest.mark.parametrize("kind", ["nan-coords", "range-coords"])
def test_invalid_points_removed_counted_and_noted(syn, tmp_path, kind):
    """Issue 22 item 6: a latitude of 95, a longitude of 200, a float64-max delta_time (and NaN/inf)
    at points that would be kept are removed, counted in ``removed.invalid`` and noted per beam —
    in the record and on stderr with the granule's name; the rest is the clean granule's output."""
    runs = {}
    for k in (None, kind):
        out = tmp_path / str(k)
        r = run_cli("reduce", os.path.dirname(syn[k]), "-o", out, "--no-progress", "--vars", "segment_id",
                    "--merge", tmp_path / f"{k}.h5", timeout=120)
        assert r.returncode == 0, r.stderr
        with open(out / "readatl06-manifest.jsonl") as fh:
            rec = json.loads(fh.readline())
        data = {}
        for f in sorted(glob.glob(str(out / "*_gt??_[AD].h5"))):
            with h5py.File(f, "r") as h:
                data[os.path.basename(f)] = {v: h[v][()] for v in ("segment_id", "lat", "lon", "t_sec", "t_year", "time")}
        runs[k] = data, rec, r.stderr
    (clean, rc, _), (bad, rb, err) = runs[None], runs[kind]
    with h5py.File(syn[None], "r") as f:
        ids = f["gt1l/land_ice_segments/segment_id"][()]
    idx = synth.hostile_indices(ids.size)
    spoiled = np.zeros(ids.size, bool)
    for v in idx.values():
        spoiled[v] = True
    assert sorted(bad) == sorted(clean)
    lost = 0
    for name, c in clean.items():
        keep = ~np.isin(c["segment_id"], ids[spoiled]) if "_gt1l_" in name else np.ones(c["lat"].size, bool)
        lost += int((~keep).sum())
        for v in c:
            assert np.array_equal(bad[name][v], c[v][keep]), (name, v)
        assert (np.abs(bad[name]["lat"]) <= 90).all() and np.isfinite(bad[name]["t_year"]).all()
    assert lost > 0 and rb["points"] == rc["points"] - lost
    assert rb["removed"]["invalid"] == int(spoiled.sum()) and rc["removed"]["invalid"] == 0
    assert rb["segments"] == rb["points"] + sum(rb["removed"].values())
    words = {"nan-coords": ("latitude NaN or ±inf", "longitude NaN or ±inf", "delta_time NaN or ±inf"),
             "range-coords": ("latitude outside -90..90", "longitude outside -180..180", "delta_time outside")}[kind]
    notes = [n for n in rb["notes"] if n.startswith("beam gt1l: ")]
    assert len(notes) == 1 and f"{int(spoiled.sum()):,} points removed" in notes[0], rb["notes"]
    for w, v in zip(words, ("latitude", "longitude", "delta_time")):
        assert re.search(re.escape(w) + f"[^,]*: {idx[v].size:,}[,)]", notes[0]), notes[0]
    assert f"note {syn[kind].name}: {notes[0]}" in err                # printed, naming the granule
    with h5py.File(tmp_path / f"{kind}.h5", "r") as h:                # and the merged file
        groups = [h[f"gt1l/{d}"] for d in ("ascending", "descending") if f"gt1l/{d}/lat" in h]
        assert groups and all((np.abs(g["lat"][()]) <= 90).all() and np.isfinite(g["t_year"][()]).all()
                              for g in groups)
