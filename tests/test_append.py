"""Appending to a merged product (issue 25 items 2 and 4, docs/merge.md "Appending"): an appended
product equals, read with h5py, a full merge of the same granules (every dataset's values, dtype,
fill value and attributes, /granules, the root attributes); it opens in xarray and netCDF-C; its
folder can be moved; superseded granules leave it; a kill leaves the previous product whole; every
reader refuses a product with a missing part."""
import hashlib
import os
import shutil
import subprocess

import h5py
import numpy as np
import pytest

from conftest import DATA, every_rank, run_cli
from readatl06.cli import main
from readatl06.hdf5.dimensions import DIMENSION_ATTRS

EXTRA = {"parts", "members"}           # the index's own groups; every other object equals a full merge's
OLD, NEW = "ATL06_20181014001049_02350102_001_01.h5", "ATL06_20181014001049_02350102_003_01.h5"
OTHER = "ATL06_20181111224708_06770102_001_01.h5"


def _sha(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def _datasets(f):
    out = {}
    f.visititems(lambda k, v: out.__setitem__(k, v) if isinstance(v, h5py.Dataset) else None)
    return out


def _attrs(obj):
    return {k: repr(v.tolist() if isinstance(v, np.ndarray) else v) for k, v in obj.attrs.items()
            if k not in DIMENSION_ATTRS}


def assert_equal_products(full, appended):
    """Every object of the full merge ``full`` is in ``appended`` with the same dtype, shape, fill
    value, attributes and bytes of values; ``appended`` has nothing else but /parts and /members."""
    with h5py.File(full, "r") as a, h5py.File(appended, "r") as b:
        da, db = _datasets(a), _datasets(b)
        assert sorted(da) == sorted(k for k in db if k.split("/")[0] not in EXTRA)
        for k, x in da.items():
            y = db[k]
            assert (x.dtype, x.shape) == (y.dtype, y.shape), k
            assert x[()].tobytes() == y[()].tobytes(), k
            assert x.fillvalue.tobytes() == y.fillvalue.tobytes(), k
            assert _attrs(x) == _attrs(y), k
        assert _attrs(a) == _attrs(b)
        groups = [k for k in da if k.endswith("/granule_index")]
        assert groups and all(db[k].is_virtual for k in groups if db[k].shape[0])


def _granules(path):
    with h5py.File(path, "r") as f:
        return [n.decode() for n in f["granules/name"][()]]


def _cli(*args):
    return main([str(a) for a in args])


def _reduce(src, out, *extra):
    assert _cli("reduce", src, "-o", out, "--no-progress", "--resume", *extra) == 0


def _full(out, path):
    assert _cli("merge", out, "-o", path, "--overwrite") == 0
    return path


@pytest.fixture(scope="module")
def cycles(tmp_path_factory):
    """Four batches of 2 small synthetic granules, two months apart (``g1`` .. ``g4``)."""
    d = tmp_path_factory.mktemp("cycles")
    for i in range(1, 5):
        assert _cli("synth", d / f"g{i}", "--granules", 2, "--segments-per-beam", 300, "--seed", i,
                    "--start", f"2019-0{2 * i}-01") == 0
    return d


def _start(cycles, tmp_path, batches=(1,)):
    out, m = tmp_path / "out", tmp_path / "M.h5"
    for i in batches:
        _reduce(cycles / f"g{i}", out)
    assert _cli("merge", out, "-o", m) == 0
    return out, m


def test_append_one_then_three_cycles_equals_a_full_merge(cycles, tmp_path, capsys):
    out, m = _start(cycles, tmp_path)
    for i in range(2, 5):
        before = set(_granules(m))
        _reduce(cycles / f"g{i}", out)
        capsys.readouterr()
        assert _cli("merge", out, "-o", m, "--append") == 0
        assert_equal_products(_full(out, tmp_path / "full.h5"), m)
        parts = sorted(os.listdir(f"{m}.parts"))
        assert parts == [f"part-{k:04d}.h5" for k in range(i)]            # nothing else left
        new = _granules(f"{m}.parts/{parts[-1]}")
        assert set(new) == set(_granules(m)) - before and len(new) == 2   # the new part: the new granules
        assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]
    capsys.readouterr()
    assert _cli("list", m) == 0
    lines = [ln.split("\t") for ln in capsys.readouterr().out.splitlines()]
    assert [ln[0] for ln in lines] == _granules(m)
    assert [os.path.basename(ln[3]) for ln in lines] == [f"part-{k // 2:04d}.h5" for k in range(8)]
    assert all(os.path.isfile(ln[3]) for ln in lines)
    with h5py.File(m, "r") as f:
        names = [n.decode() for n in f["members/name"][()]]
        assert sorted(names) == sorted(_granules(m)) and list(f["members/row"][()]) == \
            [_granules(m).index(n) for n in names]
    sha = _sha(m)
    assert _cli("merge", out, "-o", m, "--append") == 0              # nothing new: untouched
    assert _sha(m) == sha and "nothing new" in capsys.readouterr().err


def test_appended_product_opens_in_xarray_and_ncdump_and_after_a_move(cycles, tmp_path, monkeypatch):
    import xarray as xr
    out, m = _start(cycles, tmp_path / "a", (1,))
    _reduce(cycles / "g2", out)
    assert _cli("merge", out, "-o", m, "--append") == 0
    with h5py.File(m, "r") as f:
        h = f["gt1l/ascending/h_elv"][()]
    tree = xr.open_datatree(m)
    assert np.array_equal(tree["gt1l/ascending"].ds["h_elv"].values, h, equal_nan=True)
    assert tree["granules"].ds.sizes["granule"] == 4 and tree["members"].ds.sizes["member"] == 4
    tree.close()
    ncdump = shutil.which("ncdump")
    assert ncdump, "ncdump (netCDF-C, Debian package netcdf-bin: scripts/setup.sh) is not installed"
    head = subprocess.run([ncdump, "-h", m], capture_output=True, text=True, check=True).stdout
    assert "obs = " in head and "granule = 4" in head and "float h_elv(obs)" in head
    moved = tmp_path / "elsewhere"
    shutil.move(tmp_path / "a", moved)           # the index and its parts folder together
    monkeypatch.chdir(tmp_path)                  # HDF5 resolves the parts from the index's folder
    dump = subprocess.run([ncdump, "-v", "h_elv", moved / "M.h5"], capture_output=True, text=True, check=True)
    values = dump.stdout.split("h_elv =")[1].split(";")[0]
    assert np.allclose([float(v) for v in values.replace("\n", " ").split(",")][:len(h)], h, atol=1e-3)
    with h5py.File(moved / "M.h5", "r") as f:
        assert np.array_equal(f["gt1l/ascending/h_elv"][()], h, equal_nan=True)


def test_rows_that_would_shift_rebuild_the_part_holding_them(cycles, tmp_path, capsys):
    out, m = _start(cycles, tmp_path)            # part 0: batch 1
    _reduce(cycles / "g3", out)
    assert _cli("merge", out, "-o", m, "--append") == 0      # part 1: batch 3
    _reduce(cycles / "g2", out)                  # sorts between them: batch 3's rows would shift
    capsys.readouterr()
    assert _cli("merge", out, "-o", m, "--append") == 0
    assert "part-0001.h5: the rows of its 2 granules would change" in capsys.readouterr().err
    assert_equal_products(_full(out, tmp_path / "full.h5"), m)
    assert sorted(os.listdir(f"{m}.parts")) == ["part-0000.h5", "part-0002.h5"]   # part 0 kept as it was
    assert len(_granules(f"{m}.parts/part-0002.h5")) == 4


def _real(tmp_path, names):
    d = tmp_path / "in"
    d.mkdir(exist_ok=True)
    for n in names:
        shutil.copy(DATA / "atl06" / n, d / n)
    return d


def test_superseded_release_leaves_the_product(tmp_path, capsys):
    src = _real(tmp_path, [OLD, OTHER])
    out, m = tmp_path / "out", tmp_path / "M.h5"
    _reduce(src, out)
    assert _cli("merge", out, "-o", m) == 0
    _real(tmp_path, [NEW])
    _reduce(src, out)                            # --resume: 003 replaces 001 in OUTDIR
    capsys.readouterr()
    assert _cli("merge", out, "-o", m, "--append") == 0
    assert "no longer in" in capsys.readouterr().err
    assert _granules(m) == [NEW, OTHER]          # the new release takes the old one's row
    assert_equal_products(_full(out, tmp_path / "full.h5"), m)
    capsys.readouterr()
    assert _cli("list", m) == 0
    where = {ln.split("\t")[0]: os.path.basename(ln.split("\t")[3]) for ln in capsys.readouterr().out.splitlines()}
    assert where == {NEW: "part-0001.h5", OTHER: "part-0000.h5"}
    with h5py.File(m, "r") as f:                 # the old release stays in part 0, not mapped
        rows = dict(zip([n.decode() for n in f["members/name"][()]], f["members/row"][()]))
    assert rows == {OLD: -1, OTHER: 1, NEW: 0}


def test_another_dtype_merges_the_product_again_as_one_part(tmp_path, capsys):
    extra = ("--vars", "fit_statistics/n_seg_pulses")     # int32 in release 001, float32 in 003
    src = _real(tmp_path, [NEW])
    out, m = tmp_path / "out", tmp_path / "M.h5"
    _reduce(src, out, *extra)
    assert _cli("merge", out, "-o", m) == 0
    _real(tmp_path, [OTHER])
    _reduce(src, out, *extra)
    capsys.readouterr()
    assert _cli("merge", out, "-o", m, "--append") == 0
    assert "merged again as one part" in capsys.readouterr().err
    assert_equal_products(_full(out, tmp_path / "full.h5"), m)
    with h5py.File(m, "r") as f:
        assert f["gt1l/ascending/n_seg_pulses"].dtype == np.float64
    assert os.listdir(f"{m}.parts") == ["part-0002.h5"]


@pytest.mark.parametrize("moment, first", [("merge-group:2", True), ("merge-before-rename", True),
                                           ("append-before-rename", True), ("append-before-rename", False)])
def test_kill_during_an_append_leaves_the_previous_product_whole(cycles, tmp_path, moment, first):
    out, m = _start(cycles, tmp_path)
    if not first:
        _reduce(cycles / "g2", out)
        assert _cli("merge", out, "-o", m, "--append") == 0
    _reduce(cycles / "g3", out)
    before, granules = _sha(m), _granules(m)
    r = run_cli("merge", out, "-o", m, "--append", env={"READATL06_CRASH_AT": moment})
    assert r.returncode != 0
    assert _sha(m) == before and _granules(m) == granules          # whole, and reads as before
    assert run_cli("list", m).returncode == 0
    r = run_cli("merge", out, "-o", m, "--append")
    assert r.returncode == 0, r.stderr
    assert_equal_products(_full(out, tmp_path / "full.h5"), m)
    with h5py.File(m, "r") as f:
        mapped = sorted(os.path.basename(p.decode()) for p in f["parts/file"][()])
    assert sorted(os.listdir(f"{m}.parts")) == mapped                 # the killed run's leftovers gone
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


@pytest.mark.parametrize("command", [["list"], ["export", "-o", "{tmp}/x.parquet"], ["xover", "-o", "{tmp}/x.h5"],
                                     ["verify"], ["plot", "-o", "{tmp}/x.png"]])
def test_a_missing_part_is_refused_by_every_reader_in_one_line(cycles, tmp_path, command):
    out, m = _start(cycles, tmp_path)
    _reduce(cycles / "g2", out)
    assert _cli("merge", out, "-o", m, "--append") == 0
    os.rename(f"{m}.parts/part-0001.h5", tmp_path / "away.h5")
    args = [command[0], m] + [a.format(tmp=tmp_path) for a in command[1:]]
    r = run_cli(*args)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "M.h5.parts/part-0001.h5 is missing" in lines[0], r.stderr


def test_reduce_merge_append(cycles, tmp_path):
    out, m = tmp_path / "out", tmp_path / "M.h5"
    assert _cli("reduce", cycles / "g1", "-o", out, "--no-progress", "--merge", m, "--append") == 0
    assert not os.path.exists(f"{m}.parts")      # no product yet: a plain full merge
    assert _cli("reduce", cycles / "g2", "-o", out, "--no-progress", "--resume", "--merge", m, "--append") == 0
    assert_equal_products(_full(out, tmp_path / "full.h5"), m)
    assert _cli("merge", out, "-o", m, "--overwrite") == 0
    assert not os.path.exists(f"{m}.parts")      # a full merge removes the parts it replaced


@pytest.mark.mpi(min_size=2)
def test_append_under_mpi_gives_the_same_files(mpi_tmp_path):
    from mpi4py import MPI
    from readatl06.merge.command import merge_outdir
    comm = MPI.COMM_WORLD
    d = mpi_tmp_path
    with every_rank(comm):
        if comm.rank == 0:
            for i in (1, 2):
                assert run_cli("synth", d / f"g{i}", "--granules", 2, "--segments-per-beam", 300, "--seed", i,
                               "--start", f"2019-0{2 * i}-01").returncode == 0
            assert run_cli("reduce", d / "g1", "-o", d / "out", "--no-progress").returncode == 0
            assert run_cli("merge", d / "out", "-o", d / "M.h5").returncode == 0
            assert run_cli("reduce", d / "g2", "-o", d / "out", "--no-progress", "--resume").returncode == 0
            os.makedirs(d / "one")
            shutil.copy(d / "M.h5", d / "one" / "M.h5")
            r = run_cli("merge", d / "out", "-o", d / "one" / "M.h5", "--append")
            assert r.returncode == 0, r.stderr
    comm.Barrier()
    assert merge_outdir(comm, str(d / "out"), str(d / "M.h5"), append=True) == 0
    with every_rank(comm):
        assert _sha(d / "M.h5") == _sha(d / "one" / "M.h5")
        for p in ("part-0000.h5", "part-0001.h5"):
            assert _sha(d / "M.h5.parts" / p) == _sha(d / "one" / "M.h5.parts" / p)
        if comm.rank == 0:
            assert run_cli("merge", d / "out", "-o", d / "full.h5").returncode == 0
            assert_equal_products(d / "full.h5", d / "M.h5")


def test_open_tracks_refuses_a_missing_part(cycles, tmp_path):
    from readatl06 import open_tracks
    from readatl06.errors import BadFileError
    out, m = _start(cycles, tmp_path)
    _reduce(cycles / "g2", out)
    assert _cli("merge", out, "-o", m, "--append") == 0
    tree = open_tracks(m)
    assert tree["granules"].ds.sizes["granule"] == 4
    tree.close()
    os.remove(f"{m}.parts/part-0000.h5")
    for group in (None, "gt1l/ascending"):
        with pytest.raises(BadFileError, match="part-0000.h5 is missing"):
            open_tracks(m, group)


def test_granules_gone_from_outdir_leave_without_a_new_part(cycles, tmp_path, capsys):
    out, m = _start(cycles, tmp_path)
    _reduce(cycles / "g2", out)
    assert _cli("merge", out, "-o", m, "--append") == 0
    gone = _granules(f"{m}.parts/part-0001.h5")
    for p in out.glob("ATL06_2019040*_gt*.h5"):          # batch 2's per-beam files: its records incomplete
        p.unlink()
    capsys.readouterr()
    assert _cli("merge", out, "-o", m, "--append") == 0
    assert "no granule written" in capsys.readouterr().err
    assert _granules(m) == _granules(f"{m}.parts/part-0000.h5") and not set(gone) & set(_granules(m))
    assert_equal_products(_full(out, tmp_path / "full.h5"), m)
    assert os.listdir(f"{m}.parts") == ["part-0000.h5"]
