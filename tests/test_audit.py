"""The audit of issue 22, through the command line where a user meets each finding: times with a UTC
offset (item 5), a beam named twice (item 7), missing and emptied beams (item 9), ``--vars`` whose
output name is taken (item 13), and files planted in a shared output folder (item 2). Each test
failed on the code before its fix."""
import json
import os
import shutil

import h5py
import numpy as np
import pytest

from conftest import DATA, REAL
from readatl06.cli import main

MANIFEST = "readatl06-manifest.jsonl"
NORTH = "ATL06_20230816161508_08782002_006_02.h5"
ONLY_GT3 = "processed_ATL06_20181115223845_07380102_001_01.h5"     # holds only gt3l and gt3r


def cli(capsys, *args):
    """``main(args)`` in this process: (exit status, stdout, stderr)."""
    capsys.readouterr()
    rc = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return rc, out, err


def records(outdir):
    with open(os.path.join(outdir, MANIFEST)) as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture
def one(tmp_path):
    """A folder holding a copy of one real granule."""
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(DATA / "atl06" / NORTH, d / NORTH)
    return d


# ----------------------------------------------------------------------------- item 5
def test_start_and_end_with_utc_offset_are_converted_to_utc(capsys, real_dir):
    """01:00+02:00 is 23:00Z the day before: the two granules of 2018-10-14T00:10 are inside."""
    want = sorted(p.name for p in REAL if "_20181014001049_" in p.name)
    assert len(want) == 2
    for start, end in (("2018-10-14T01:00:00+02:00", "2018-10-14T03:00:00+02:00"),
                       ("2018-10-13T18:00:00-05:00", "2018-10-13T20:00:00-0500"),
                       ("2018-10-13T23:00:00Z", "2018-10-14T01:00:00Z")):
        rc, out, err = cli(capsys, "list", "--all-releases", real_dir, "--start", start, "--end", end)
        assert rc == 0, err
        assert sorted(os.path.basename(p) for p in out.split()) == want, (start, end)
    rc, out, _ = cli(capsys, "list", "--all-releases", real_dir, "--start", "2018-10-14T02:10:50+02:00", "--end", "2018-10-14")
    assert rc == 0 and out.split() == []           # 00:10:50Z: after both (00:10:49Z)


# ----------------------------------------------------------------------------- item 7
def test_a_beam_named_twice_is_reduced_once(capsys, one, tmp_path):
    ref = tmp_path / "ref"
    rc, out, err = cli(capsys, "reduce", one, "-o", ref, "--no-progress", "--beams", "gt1l")
    assert rc == 0, err
    points = records(ref)[0]["points"]
    assert points > 0
    out_dir = tmp_path / "twice"
    for extra in ([], ["--overwrite"]):
        rc, out, err = cli(capsys, "reduce", one, "-o", out_dir, "--no-progress", "--beams", "gt1l", "gt1l", *extra)
        assert rc == 0, err
        rec = records(out_dir)[-1]
        assert rec["status"] == "done" and rec["points"] == points
        assert len(rec["outputs"]) == len(set(rec["outputs"])) == len(records(ref)[0]["outputs"])
        assert f"{points} points kept" in out
    rc, out, err = cli(capsys, "reduce", one, "-o", tmp_path / "m", "--no-progress", "--beams", "gt1l", "gt1l",
                       "--merge", tmp_path / "m.h5")
    assert rc == 0 and "Traceback" not in err, err
    with h5py.File(tmp_path / "m.h5", "r") as f:
        assert sum(f[f"gt1l/{d}/lat"].shape[0] for d in ("ascending", "descending") if f"gt1l/{d}/lat" in f) == points


# ----------------------------------------------------------------------------- item 9
def test_missing_and_emptied_beams_are_noted(capsys, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(DATA / "atl06" / ONLY_GT3, src / ONLY_GT3)
    emptied = src / NORTH                      # gt2r: every height a fill value
    shutil.copy(DATA / "atl06" / NORTH, emptied)
    os.chmod(emptied, 0o644)
    with h5py.File(emptied, "r+") as f:
        h = f["gt2r/land_ice_segments/h_li"]
        n = h.shape[0]
        h[...] = np.full(n, h.attrs["_FillValue"])
    rc, out, err = cli(capsys, "reduce", src, "-o", tmp_path / "out", "--no-progress")
    assert rc == 0, err
    notes = {r["granule"]: r["notes"] for r in records(tmp_path / "out")}
    assert "beams gt1l gt1r gt2l gt2r not in the granule" in notes[ONLY_GT3]
    assert f"note {ONLY_GT3}: beams gt1l gt1r gt2l gt2r not in the granule" in err
    assert f"beam gt2r: no point left of its {n:,} segments (removed: fill {n:,})" in notes[NORTH]
    assert not [x for x in notes[NORTH] if x.startswith(("beam gt1", "beam gt3", "beam gt2l"))]
    rc, out, err = cli(capsys, "reduce", src, "-o", tmp_path / "one", "--no-progress", "--beams", "gt3r", "gt1l")
    assert rc == 0, err
    notes = {r["granule"]: r["notes"] for r in records(tmp_path / "one")}
    assert "beam gt1l not in the granule" in notes[ONLY_GT3]
    assert not [x for x in notes[NORTH] if "not in the granule" in x]


# ----------------------------------------------------------------------------- item 13
@pytest.mark.parametrize("names, both", [
    (["fit_statistics/snr"], ("fit_statistics/snr", "fit_statistics/snr_significance")),
    (["fit_statistics/n_fit_photons", "/gtx/residual_histogram/n_fit_photons"],
     ("fit_statistics/n_fit_photons", "/gtx/residual_histogram/n_fit_photons")),
    (["/gtx/land_ice_segments/dem/lat"], ("dem/lat", "latitude")),
])
def test_vars_whose_output_name_is_taken_are_refused(capsys, one, tmp_path, names, both):
    rc, out, err = cli(capsys, "reduce", one, "-o", tmp_path / "o", "--no-progress", "--vars", *names)
    assert rc == 2, err
    lines = [ln for ln in err.splitlines() if "error" in ln]
    assert len(lines) == 1 and all(b in lines[0] for b in both), err
    assert not (tmp_path / "o" / MANIFEST).exists()


def test_vars_the_table_already_reads_are_taken_once(capsys, one, tmp_path):
    """The same variable twice, or a default one again (also in its absolute form): no error, no copy."""
    rc, out, err = cli(capsys, "reduce", one, "-o", tmp_path / "o", "--no-progress", "--beams", "gt1l", "--vars",
                       "fit_statistics/n_fit_photons", "fit_statistics/n_fit_photons", "h_li",
                       "/gtx/land_ice_segments/h_li_sigma")
    assert rc == 0, err
    f = sorted((tmp_path / "o").glob("*_gt1l_*.h5"))[0]
    with h5py.File(f, "r") as h:
        assert json.loads(h.attrs["parameters"])["vars"] == ["fit_statistics/n_fit_photons"]
        assert "n_fit_photons" in h and "h_li" not in h and "h_li_sigma" not in h


# ----------------------------------------------------------------------------- item 2
# Files planted in a shared output folder at the names readatl06 writes: a symbolic link to a file
# of the victim's (or a hard link, a FIFO) is refused with one line and the victim's file is never
# written. The runs here are in this process, so the temporary names' pid is os.getpid().
PRECIOUS = b"the victim's file\n"


@pytest.fixture(scope="module")
def reduced(tmp_path_factory):
    """An OUTDIR with the per-beam files of two real granules (copied by each test that writes)."""
    d = tmp_path_factory.mktemp("planted")
    src = d / "in"
    src.mkdir()
    for name in (NORTH, "ATL06_20181014001049_02350102_003_01.h5"):
        shutil.copy(DATA / "atl06" / name, src / name)
    assert main(["reduce", str(src), "-o", str(d / "out"), "--no-progress"]) == 0
    return d


@pytest.fixture
def victim(tmp_path):
    p = tmp_path / "victim.txt"
    p.write_bytes(PRECIOUS)
    return p


def one_error(rc, err, *words):
    lines = [ln for ln in err.splitlines() if "error:" in ln or "FAILED" in ln]
    assert rc in (1, 2) and len(lines) == 1, err
    assert "Traceback" not in err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def plant(path, victim, kind="symlink"):
    if kind == "symlink":
        os.symlink(victim, path)
    elif kind == "hardlink":
        os.link(victim, path)
    else:
        os.mkfifo(path)
    return path


def outdir_copy(reduced, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reduced / "out", out)
    return out


@pytest.mark.parametrize("kind", ["symlink", "hardlink", "fifo"])
def test_planted_lock_is_refused_by_every_command_that_takes_it(capsys, reduced, tmp_path, victim, kind):
    out = outdir_copy(reduced, tmp_path)
    os.remove(out / "readatl06.lock")
    plant(out / "readatl06.lock", victim, kind)
    for args in (["reduce", reduced / "in", "-o", out, "--no-progress", "--overwrite"],
                 ["merge", out, "-o", tmp_path / "m.h5"],
                 ["export", out, "-o", tmp_path / "t.parquet"]):
        rc, _, err = cli(capsys, *args)
        one_error(rc, err, "readatl06.lock", "refusing to write")
        assert rc == 2
    assert victim.read_bytes() == PRECIOUS
    assert not (tmp_path / "m.h5").exists() and not (tmp_path / "t.parquet").exists()


def test_planted_temporary_names_are_refused_before_any_work(capsys, reduced, tmp_path, victim):
    """A link at a temporary name of a per-beam file, of the manifest, at the probe, at a manifest
    part, at the merged file's, the export's and the xover's temporary names."""
    pid = os.getpid()
    out = outdir_copy(reduced, tmp_path)
    stem = NORTH[:-3]
    cases = [
        (out / f".{stem}_gt1l_A.h5.tmp-{pid}", ["reduce", reduced / "in", "-o", out, "--no-progress", "--overwrite"]),
        (out / f".readatl06-manifest.jsonl.tmp-{pid}", ["reduce", reduced / "in", "-o", out, "--no-progress",
                                                         "--overwrite"]),
        (out / f".readatl06-probe-{pid}", ["reduce", reduced / "in", "-o", out, "--no-progress", "--overwrite"]),
        (out / "readatl06-manifest.part-0.jsonl", ["reduce", reduced / "in", "-o", out, "--no-progress",
                                                    "--overwrite"]),
        (tmp_path / f".m.h5.tmp-{pid}", ["reduce", reduced / "in", "-o", out, "--no-progress", "--overwrite",
                                         "--merge", tmp_path / "m.h5"]),
        (tmp_path / f".m.h5.tmp-{pid}", ["merge", out, "-o", tmp_path / "m.h5", "--overwrite"]),
        (tmp_path / f".t.parquet.tmp-{pid}", ["export", out, "-o", tmp_path / "t.parquet"]),
        (tmp_path / f".x.h5.tmp-{pid}", ["xover", out, "-o", tmp_path / "x.h5"]),
        (tmp_path / f".x.parquet.tmp-{pid}", ["xover", out, "-o", tmp_path / "x.parquet"]),
    ]
    for link, args in cases:
        plant(link, victim)
        before = sorted(p.name for p in out.iterdir())
        rc, _, err = cli(capsys, *args)
        one_error(rc, err, link.name, "a symbolic link", "refusing to write")
        assert rc == 2, (link.name, err)
        assert victim.read_bytes() == PRECIOUS, link.name
        assert os.path.islink(link) and sorted(p.name for p in out.iterdir()) == before, link.name
        os.remove(link)
        rc, _, err = cli(capsys, *args)                     # and without it, the same command works
        assert rc == 0, (link.name, err)


def test_planted_log_is_refused(capsys, reduced, tmp_path, victim):
    out = outdir_copy(reduced, tmp_path)
    log = plant(tmp_path / "run.log", victim)
    for extra in (["--overwrite"], ["--resume"]):
        rc, _, err = cli(capsys, "reduce", reduced / "in", "-o", out, "--no-progress", "--log", log, *extra)
        one_error(rc, err, "run.log", "a symbolic link")
        assert rc == 2 and victim.read_bytes() == PRECIOUS


def test_links_planted_while_writing_are_never_followed(reduced, tmp_path, victim):
    """The writers themselves (a link planted after the run's checks): a per-beam file's, the
    manifest's, a fetch's temporary names; the lock and the parts (open_existing)."""
    from readatl06.errors import GranuleError
    from readatl06.fetch.download import fetch_one
    from readatl06.outputs import folder, manifest
    from readatl06.outputs.trackfile import write_track
    from readatl06.reduce.granule import ReduceOptions, reduce_granule
    from readatl06.atl06.names import parse_name
    out = tmp_path / "o"
    out.mkdir()
    track = reduce_granule(str(DATA / "atl06" / NORTH), parse_name(NORTH), ReduceOptions()).tracks[0]
    link = plant(out / f".{track.stem}.h5.tmp-{os.getpid()}", victim)
    with pytest.raises(GranuleError, match="a symbolic link"):
        write_track(track, str(out))
    assert victim.read_bytes() == PRECIOUS and os.path.islink(link) and not (out / f"{track.stem}.h5").exists()
    os.remove(link)
    link = plant(out / f".{manifest.MAIN}.tmp-{os.getpid()}", victim)
    with pytest.raises(folder.PlantedError):
        manifest.consolidate(str(out), [{"granule": "g", "run": "r"}])
    plant(out / manifest.PART.format(rank=7), victim)
    writer = manifest.PartWriter(str(out), 7)
    assert isinstance(writer.error, folder.PlantedError)
    writer.write({"granule": "g", "outputs": ["x"]})
    writer.close()
    with pytest.raises(folder.PlantedError, match="hard link"):
        folder.open_existing(str(plant(out / "other", victim, "hardlink")))
    dest = tmp_path / "f"
    dest.mkdir()
    part = plant(dest / f".{NORTH}.part", victim)
    res = fetch_one(NORTH, str(DATA / "atl06" / NORTH), None, None, str(dest))
    assert res["status"] == "failed" and "a symbolic link" in res["error"] and os.path.islink(part)
    assert victim.read_bytes() == PRECIOUS
