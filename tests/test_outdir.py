"""The one reader of an OUTDIR (readatl06.outputs.outdir): the per-beam file name, the index of one
listing, the metadata of a per-beam file, and reduce --resume planning with one listing of OUTDIR."""
import json
import os

import h5py
import numpy as np

from readatl06.atl06.names import Selection, parse_name
from readatl06.atl06.track import Track
from readatl06.outputs import manifest
from readatl06.outputs.outdir import BEAM_FILE_RE, TrackFile, beam_file_name, list_beam_files
from readatl06.outputs.trackfile import output_path

STEM = "ATL06_20190101001723_00540211_006_01"
OTHER = "processed_ATL06_20190102001723_00540311_006_01"


def test_beam_file_name_is_the_pattern_and_the_track_file():
    name = beam_file_name(STEM, "gt2r", "descending")
    assert name == f"{STEM}_gt2r_D.h5"
    m = BEAM_FILE_RE.fullmatch(name)
    assert (m["stem"], m["beam"], m["direction"]) == (STEM, "gt2r", "D")
    t = Track(parse_name(STEM + ".h5"), "gt1l", "ascending", {}, {}, {})
    assert t.stem + ".h5" == beam_file_name(STEM, "gt1l", "ascending")
    assert output_path("out", t) == os.path.join("out", f"{STEM}_gt1l_A.h5")


def test_index_groups_the_per_beam_files_of_each_granule(tmp_path):
    taken = {f"{STEM}_gt1l_A.h5": 5, f"{STEM}_gt3r_D.h5": 7, f"{OTHER}_gt2l_A.h5": 11, "x_gt1r_D.h5": 0}
    resembling = [f"{STEM}_gt4l_A.h5", f"{STEM}_gt1l_X.h5", f"{STEM}_gt1l_A.h5.tmp", f".{STEM}_gt1l_A.h5.tmp-12",
                  f".{STEM}_gt1l_A.h5", f"{STEM}_gt1l.h5", f"{STEM}_gt1l_A.hdf5", f"{STEM}_gtl1_A.h5",
                  f"{STEM}_gt1l_A_x.h5", f"{STEM}_GT1L_A.h5", "_gt1l_A.h5", f"{STEM}.h5", "readatl06-manifest.jsonl"]
    for name, size in taken.items():
        (tmp_path / name).write_bytes(b"x" * size)
    for name in resembling:
        (tmp_path / name).write_bytes(b"y")
    (tmp_path / f"{OTHER}_gt3l_A.h5").mkdir()                 # a folder is no per-beam file
    (tmp_path / f"{OTHER}_gt3r_D.h5").symlink_to(tmp_path / f"{STEM}_gt3r_D.h5")   # a link to one is
    index = list_beam_files(tmp_path)
    assert index.sizes == dict(sorted({**taken, f"{OTHER}_gt3r_D.h5": 7}.items()))
    assert index.of(STEM) == {f"{STEM}_gt1l_A.h5": 5, f"{STEM}_gt3r_D.h5": 7}
    assert index.of(OTHER) == {f"{OTHER}_gt2l_A.h5": 11, f"{OTHER}_gt3r_D.h5": 7}
    assert index.of("x") == {"x_gt1r_D.h5": 0} and index.of("ATL06_nothing") == {}
    assert sorted(index.by_stem) == sorted([STEM, OTHER, "x"]) and len(index) == 5
    assert index.paths() == [str(tmp_path / n) for n in sorted(index.sizes)]
    assert len(list_beam_files(tmp_path / f"{OTHER}_gt3l_A.h5")) == 0


def test_track_file_open_reads_metadata_and_tolerates_foreign_attributes(tmp_path):
    p = tmp_path / f"{STEM}_gt1l_A.h5"
    with h5py.File(p, "w") as f:
        f.attrs["granule"] = np.bytes_(STEM + ".h5")
        f.attrs["beam"], f.attrs["direction"] = "gt1l", "ascending"
        f["lat"] = np.arange(4.0)
        f["lat"].attrs["units"] = b"degrees_north"
        f["lon"] = np.arange(4, dtype=">f4")
        f.create_dataset("obs", (4,), "f4").make_scale("This is a netCDF dimension but not a netCDF variable.")
    t = TrackFile.open(str(p), read=("lon", "nothing"))
    assert t.granule == parse_name(STEM + ".h5") and (t.beam, t.direction, len(t)) == ("gt1l", "ascending", 4)
    assert t.var_dtypes == {"lat": "<f8", "lon": ">f4"} and t.shapes == {"lat": (4,), "lon": (4,)}
    assert t.var_attrs["lat"] == {"units": "degrees_north"} and t.attrs["granule"] == STEM + ".h5"
    assert list(t.values) == ["lon"] and t.values["lon"].tolist() == [0, 1, 2, 3]
    head = TrackFile.open(str(p), variables=False)
    assert head.var_dtypes == {} and head.values == {} and head.attrs == t.attrs
    with h5py.File(p, "r+") as f:
        del f.attrs["granule"], f.attrs["beam"]
        f.attrs["direction"] = "sideways"
    t = TrackFile.open(str(p))
    assert t.granule is None and t.beam is None and t.direction == "sideways"


# ---------------------------------------------------------------- reduce --resume: one listing of OUTDIR
def _reduced_outdir(tmp_path, n, key):
    """``n`` granule files (names only) and an OUTDIR where each has two per-beam files and a done record."""
    src, out = tmp_path / f"src{n}", tmp_path / f"out{n}"
    src.mkdir()
    out.mkdir()
    records = []
    for i in range(n):
        name = f"ATL06_201901{1 + i // 24:02d}{i % 24:02d}1723_{540 + i:04d}0211_006_01.h5"
        (src / name).write_bytes(b"")
        outputs = [beam_file_name(name[:-3], b, "ascending") for b in ("gt1l", "gt2r")]
        for j, o in enumerate(outputs):
            (out / o).write_bytes(b"z" * (10 + j))
        records.append({"granule": name, "status": "done", "params": key, "outputs": outputs,
                        "sizes": {o: 10 + j for j, o in enumerate(outputs)}, "run": "r", "started": str(i), "rank": 0})
    with open(out / manifest.MAIN, "w") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in records)
    return src, out


def test_resume_planning_lists_outdir_once_whatever_the_granules(tmp_path, monkeypatch):
    """reduce --resume plans from ONE listing of the per-beam files (with their sizes), then a lookup
    per granule: the listings of OUTDIR (os.scandir, which glob uses too, and os.listdir) are as many
    for 40 granules as for 1, and a file no longer at its recorded size is still seen."""
    from readatl06.reduce import plan as run
    key = "k" * 16
    real_scandir, real_listdir, real_list_beam_files = os.scandir, os.listdir, run.list_beam_files
    counts = {}
    for n in (1, 40):
        src, out = _reduced_outdir(tmp_path, n, key)
        listings, beam_listings = [], []

        def scandir(path=".", out=out, listings=listings):
            if os.path.realpath(path) == os.path.realpath(out):
                listings.append(path)
            return real_scandir(path)

        def listdir(path=".", out=out, listings=listings):
            if os.path.realpath(path) == os.path.realpath(out):
                listings.append(path)
            return real_listdir(path)

        def counted_list_beam_files(folder, beam_listings=beam_listings):
            beam_listings.append(folder)
            return real_list_beam_files(folder)

        with monkeypatch.context() as m:
            m.setattr(os, "scandir", scandir)
            m.setattr(os, "listdir", listdir)
            m.setattr(run, "list_beam_files", counted_list_beam_files)
            plan = run.make_plan([str(src)], Selection(), str(out), key, resume=True)
        assert plan.error is None and len(plan.skipped) == n and plan.items == []
        assert beam_listings == [str(out)]
        counts[n] = len(listings)
        first = min(n for n in os.listdir(out) if n.endswith(".h5"))
        (out / first).write_bytes(b"changed size")                             # no longer as recorded
        plan = run.make_plan([str(src)], Selection(), str(out), key, resume=True)
        assert len(plan.skipped) == n - 1 and len(plan.items) == 1 and len(plan.items[0][3]) == 2
    assert counts[1] == counts[40], counts


def test_planning_stats_no_granule_after_listing_it(tmp_path, monkeypatch):
    """The sizes the plan balances the ranks with come from the stat that listed each granule: no
    os.stat or getsize of a SOURCE file by the plan itself, for 1 granule as for 40."""
    from readatl06.reduce import plan as run
    key = "k" * 16
    real_stat = os.stat
    for n in (1, 40):
        src, out = _reduced_outdir(tmp_path, n, key)
        stats = []

        def counted_stat(path, *a, src=src, stats=stats, **k):
            if os.path.dirname(os.path.abspath(os.fspath(path))) == str(src) and str(path).endswith(".h5"):
                stats.append(path)
            return real_stat(path, *a, **k)

        (src / os.listdir(src)[0]).write_bytes(b"x" * 7)
        with monkeypatch.context() as m:
            m.setattr(os, "stat", counted_stat)
            plan = run.make_plan([str(src)], Selection(), str(out), key, resume=False, overwrite=True)
        assert plan.error is None and len(plan.items) == n and stats == []
        assert sorted(plan.items.sizes()) == [0] * (n - 1) + [7]


def test_a_resubmission_s_plan_holds_no_path_or_record_per_file(tmp_path):
    """--resume over N done granules (issue 23, memory per rank): rank 0 keeps a compact Brief per
    record (not the record), the broadcast plan holds ~60 bytes a skipped granule and ~12 an output
    (no path, no checksum: rank 0 keeps the raw 32-byte checksums and hands each rank its share), and
    what the plan gives back is what the records say."""
    import hashlib
    import pickle
    import tracemalloc
    from readatl06.reduce import plan as run
    key, n = "k" * 16, 300
    src, out = _reduced_outdir(tmp_path, n, key)
    lines = (out / manifest.MAIN).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    for r in records:                                  # the checksums, and what a real record carries besides
        r["sha256"] = {o: hashlib.sha256((out / o).read_bytes()).hexdigest() for o in r["outputs"]}
        r.update(path=str(src / r["granule"]), points=123456, bytes_read=10 ** 7, notes=[], vars={},
                 timings={"read": 0.1, "filter": 0.05, "write": 0.02}, removed={"fill": 1, "quality": 2})
    (out / manifest.MAIN).write_text("".join(json.dumps(r) + "\n" for r in records))

    tracemalloc.start()
    briefs = manifest.read_briefs(str(out))
    held = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert held / n < 900, held / n                    # a dict per record: ~2,900 bytes here, ~10 KB real
    for r in records:
        b = briefs[r["granule"]]
        assert (b["granule"], b.get("status"), b.get("params")) == (r["granule"], "done", key)
        assert (b.get("outputs"), b.get("sizes"), b.get("sha256")) == (r["outputs"], r["sizes"], r["sha256"])

    plan = run.make_plan([str(src)], Selection(), str(out), key, resume=True)
    assert plan.error is None and len(plan.skipped) == n and plan.items == []
    assert list(plan.skipped) == [r["granule"] for r in records]
    travels = len(pickle.dumps(plan.skipped, protocol=5))
    assert travels / n < 110, travels / n              # ~5,000 bytes a granule as paths, dicts and hex
    assert len(plan.skipped.digests) == 32 * 2 * n and b"sha" not in pickle.dumps(plan.skipped)
    copy = pickle.loads(pickle.dumps(plan.skipped))
    assert len(copy.digests) == 0
    for k, r in enumerate(records):
        assert copy.outputs(k) == [(o, r["sizes"][o]) for o in r["outputs"]]
        assert copy.paths(k) == [os.path.join(str(out), o) for o in r["outputs"]]
        share = plan.skipped.share(k, n)           # rank k of n checks granule k alone
        assert plan.skipped.checks(k, share, 0)[0] == [(os.path.join(str(out), o), r["sha256"][o])
                                                       for o in r["outputs"]]
    assert copy.granule_bytes() == [sum(r["sizes"].values()) for r in records]


def test_a_record_of_an_unusual_form_is_kept_as_it_is():
    """A Brief keeps what it cannot store compactly (another folder's names, a size that is no
    integer, a checksum in capitals or of another length) exactly as the record has it."""
    stem = "ATL06_20190101000000_05400211_006_01"
    base = {"granule": stem + ".h5", "status": "done", "params": "p", "outputs": [stem + "_gt1l_A.h5"],
            "sizes": {stem + "_gt1l_A.h5": 10}, "sha256": {stem + "_gt1l_A.h5": "ab" * 32}}
    odd = [{"outputs": ["other_gt1l_A.h5"]}, {"sizes": {stem + "_gt1l_A.h5": True}},
           {"sizes": {stem + "_gt1l_A.h5": "10"}}, {"sha256": {stem + "_gt1l_A.h5": "AB" * 32}},
           {"sha256": {stem + "_gt1l_A.h5": "ab"}}, {"sha256": {stem + "_gt1l_A.h5": "0" * 64}},
           {"outputs": "x"}, {"sizes": []}, {"sha256": None}, {"sha256": {}}, {"sizes": {}}]
    for change in [{}] + odd:
        r = {**base, **change}
        b = manifest.Brief(r)
        for k in ("outputs", "sizes", "sha256"):
            assert b.get(k, "absent") == r.get(k, "absent") or (k == "sha256" and r.get(k) is None and
                                                               b.get(k) in (None, {})), (change, k)
        on_disk = {stem + "_gt1l_A.h5": 10}
        assert manifest.complete(b, on_disk) == manifest.complete(r, on_disk), change
        assert manifest.digest_of(b, stem + "_gt1l_A.h5") == manifest.digest_of(r, stem + "_gt1l_A.h5"), change
