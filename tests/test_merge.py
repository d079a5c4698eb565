"""The merged file (DESIGN §3): per-beam files concatenated in granule order, any rank count."""
import glob
import os
import shutil

import h5py
import numpy as np
import pytest

from conftest import REAL
from readatl06.cli import main
from readatl06.names import parse_name
from readatl06.schema import BEAMS, DIRECTIONS, OUTPUT_VARS


def contents(path):
    with h5py.File(path, "r") as f:
        out = {}
        f.visititems(lambda k, v: out.__setitem__(k, (v[()], {a: str(x) for a, x in v.attrs.items()}))
                     if isinstance(v, h5py.Dataset) else None)
        out["/"] = (None, {a: str(x) for a, x in f.attrs.items()})
    return out


def assert_same_file(a, b):
    ca, cb = contents(a), contents(b)
    assert sorted(ca) == sorted(cb)
    for k in ca:
        if k != "/":
            assert ca[k][0].dtype == cb[k][0].dtype and ca[k][0].tobytes() == cb[k][0].tobytes(), k
        assert ca[k][1] == cb[k][1], k


def expected_from_per_beam(outdir):
    """Concatenate the per-beam files in (time, name) granule order; missing vars as _FillValue."""
    granules = sorted(parse_name(p.name) for p in REAL)
    exp = {}
    for beam in BEAMS:
        for d in DIRECTIONS:
            parts = []
            for row, g in enumerate(granules):
                p = os.path.join(outdir, f"{g.stem}_{beam}_{d[0].upper()}.h5")
                if os.path.exists(p):
                    with h5py.File(p, "r") as f:
                        parts.append((row, {k: f[k][()] for k in f}))
            if parts:
                exp[(beam, d)] = parts
    return granules, exp


@pytest.fixture(scope="module")
def merged(real_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("merge")
    assert main(["reduce", str(real_dir), "-o", str(out / "tracks"), "--merge", str(out / "m.h5"),
                 "--no-progress"]) == 0
    return out


def test_merged_equals_per_beam_files_in_granule_order(merged):
    granules, exp = expected_from_per_beam(merged / "tracks")
    with h5py.File(merged / "m.h5", "r") as f:
        assert [n.decode() for n in f["granules/name"][()]] == [g.name for g in granules]
        assert f["granules/rgt"][()].tolist() == [g.rgt for g in granules]
        assert f["granules/cycle"][()].tolist() == [g.cycle for g in granules]
        assert f["granules/segment"][()].tolist() == [g.region for g in granules]
        assert [r.decode() for r in f["granules/release"][()]] == [g.release for g in granules]
        for (beam, d), parts in exp.items():
            grp = f[f"{beam}/{d}"]
            n = sum(len(p["lat"]) for _, p in parts)
            gi = np.concatenate([np.full(len(p["lat"]), row, np.int32) for row, p in parts])
            assert np.array_equal(grp["granule_index"][()], gi)
            for v in OUTPUT_VARS:
                ds = grp[v.name]
                assert ds.shape == (n,) and ds.dtype == np.dtype(v.dtype), (beam, d, v.name)
                fill = ds.attrs["_FillValue"]
                want = np.concatenate([p[v.name] if v.name in p else np.full(len(p["lat"]), fill, v.dtype)
                                       for _, p in parts])
                assert ds[()].tobytes() == want.tobytes(), (beam, d, v.name)
                assert ds.attrs["units"] == v.units and ds.attrs["long_name"] == v.long_name
                assert ds.compression == "gzip"
        # h_robust_sprd is missing in NSIDC variable subsets: filled with the source _FillValue there
        assert f["gt1l/descending/h_rb"].attrs["_FillValue"] == np.finfo(np.float32).max
        assert (f["gt1l/descending/h_rb"][()] == np.finfo(np.float32).max).any()


def test_merge_outdir_equals_reduce_merge(merged, tmp_path):
    assert main(["merge", str(merged / "tracks"), "-o", str(tmp_path / "again.h5")]) == 0
    assert_same_file(merged / "m.h5", tmp_path / "again.h5")


def test_serial_fallback_writes_the_same_file(merged, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("READATL06_MERGE_SERIAL", "1")
    assert main(["merge", str(merged / "tracks"), "-o", str(tmp_path / "serial.h5")]) == 0
    assert "serially" in capsys.readouterr().err
    assert_same_file(merged / "m.h5", tmp_path / "serial.h5")


def test_opens_with_xarray(merged):
    xr = pytest.importorskip("xarray")
    with h5py.File(merged / "m.h5", "r") as f:
        n = f["gt2r/ascending/lat"].shape[0]
        lat = f["gt2r/ascending/lat"][()]
    with xr.open_dataset(merged / "m.h5", group="gt2r/ascending", engine="h5netcdf", phony_dims="sort",
                         decode_times=False) as ds:
        assert len(ds.sizes) == 1 and list(ds.sizes.values()) == [n]
        assert np.array_equal(ds["lat"].values, lat)
        assert ds["h_elv"].attrs["units"] == "m" and ds.attrs["direction"] == "ascending"
    with xr.open_dataset(merged / "m.h5", group="granules", engine="h5netcdf", phony_dims="sort") as ds:
        assert ds.sizes[next(iter(ds.sizes))] == len(REAL)


def test_no_per_beam_writes_only_the_merged_file(real_dir, tmp_path, merged):
    out = tmp_path / "t"
    assert main(["reduce", str(real_dir), "-o", str(out), "--merge", str(tmp_path / "m.h5"),
                 "--no-per-beam", "--no-progress"]) == 0
    assert glob.glob(str(out / "*_gt*.h5")) == []
    assert_same_file(merged / "m.h5", tmp_path / "m.h5")


def test_resume_with_merge_reads_back_skipped_granules(real_dir, tmp_path, merged):
    out = tmp_path / "t"
    shutil.copytree(merged / "tracks", out)
    assert main(["reduce", str(real_dir), "-o", str(out), "--merge", str(tmp_path / "m.h5"),
                 "--resume", "--no-progress"]) == 0
    assert_same_file(merged / "m.h5", tmp_path / "m.h5")


@pytest.mark.mpi(min_size=2)
def test_merge_identical_for_any_rank_count(mpi_tmp_path, mpi_real_dir):
    from mpi4py import MPI

    from readatl06.merge import merge_outdir
    from readatl06.names import Selection
    from readatl06.reduce import ReduceOptions
    from readatl06.runner import run_reduce
    comm = MPI.COMM_WORLD
    src = mpi_real_dir
    world = str(mpi_tmp_path / "world.h5")
    assert run_reduce(comm, [str(src)], Selection(), ReduceOptions(), str(mpi_tmp_path / "t"),
                      merge_path=world) == 0
    assert merge_outdir(comm, str(mpi_tmp_path / "t"), str(mpi_tmp_path / "outdir.h5")) == 0
    os.environ["READATL06_MERGE_SERIAL"] = "1"        # the Gatherv fallback, on all ranks
    try:
        assert merge_outdir(comm, str(mpi_tmp_path / "t"), str(mpi_tmp_path / "gathered.h5")) == 0
    finally:
        del os.environ["READATL06_MERGE_SERIAL"]
    if comm.rank == 0:
        assert merge_outdir(MPI.COMM_SELF, str(mpi_tmp_path / "t"), str(mpi_tmp_path / "one.h5")) == 0
        for other in ("outdir.h5", "gathered.h5", "one.h5"):
            assert_same_file(world, mpi_tmp_path / other)
    comm.Barrier()
