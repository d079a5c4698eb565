"""CF-1.10 / netCDF-4 files (docs/output.md, docs/merge.md): per-beam files open with ``xarray.open_dataset(path)`` and
merged files with ``xarray.open_datatree(path)``, no other argument, and give the values h5py reads."""
import glob
import os
from fractions import Fraction

import h5py
import numpy as np
import pytest
import xarray as xr

from conftest import REAL, every_rank
from readatl06.atl06 import gpstime as timeconv
from readatl06.cli import main
from readatl06.atl06.schema import ATLAS_SDP_GPS_EPOCH, BEAMS, COORDINATES, DIMENSION, DIRECTIONS, GRANULE_DIMENSION, OUTPUT_VARS, output_vars
from readatl06.hdf5.dimensions import is_dimension

UNITS = {"lon": "degrees_east", "lat": "degrees_north", "h_elv": "m", "s_elv": "m", "t_sec": "s",
         "t_year": "decimal year, UTC", "time": "seconds since 2018-01-01T00:00:00Z", "h_rb": "m", "dac": "m",
         "tide_earth": "m", "tide_load": "m", "tide_ocean": "m", "tide_pole": "m"}   # docs/output.md's table


def beam_files(folder):
    files = sorted(glob.glob(os.path.join(folder, "*_gt??_[AD].h5")))
    assert files
    return files


def variables(group):
    """The h5py datasets of a group that are netCDF variables (not the dimension scale)."""
    return {k: group[k] for k in group if isinstance(group[k], h5py.Dataset) and not is_dimension(group[k])}


def assert_same_as_h5py(ds, group, dim):
    """Every variable of the xarray Dataset ``ds`` equals the h5py dataset of ``group``: bit-exact where
    no fill value is declared, NaN exactly at the fill values and bit-exact elsewhere where one is."""
    dsets = variables(group)
    assert set(ds.variables) == set(dsets) and dim not in ds.variables
    assert dict(ds.sizes) == {dim: group[dim].shape[0]}
    for name, d in dsets.items():
        raw, got = d[()], ds[name].values
        assert ds[name].dims == (dim,), name
        if name == "time":
            continue                                   # decoded to datetimes: test_time_decodes_to_utc
        fill = d.attrs.get("_FillValue")
        if fill is None:
            assert got.dtype == raw.dtype and got.tobytes() == raw.tobytes(), name
            continue
        masked = raw == np.asarray(fill).astype(raw.dtype)
        assert np.isnan(got[masked]).all(), name
        assert got[~masked].astype(raw.dtype).tobytes() == raw[~masked].tobytes(), name
        assert (got[~masked] == raw[~masked]).all(), name  # the widened dtype holds the value exactly


def assert_coordinates(ds, group):
    assert set(ds.coords) == set(COORDINATES)
    assert [ds[c].attrs["standard_name"] for c in ("lat", "lon", "time")] == ["latitude", "longitude", "time"]
    assert ds["time"].dtype.kind == "M" and ds["time"].encoding["units"] == timeconv.CF_TIME_UNITS
    assert ds["time"].encoding["calendar"] == "standard"
    for name, d in variables(group).items():      # on disk: every data variable names them
        if name not in COORDINATES:
            assert d.attrs["coordinates"] == "time lat lon", name
    # t_sec is GPS seconds: never decoded (it would be 18 s off as UTC)
    assert ds["t_sec"].dtype == np.float64 and ds["t_sec"].attrs["units"] == "s"
    assert "GPS" in ds["t_sec"].attrs["long_name"] and "1980-01-06" in ds["t_sec"].attrs["long_name"]
    assert ds["t_year"].dtype == np.float64


def assert_time(ds, group):
    """``time`` decodes to the UTC instants of ``gps_to_datetime64(t_sec)``, to the microsecond, and
    to within 50 ns of the exact instant of t_sec (leap seconds applied, exact rational arithmetic)."""
    t_sec = group["t_sec"][()]
    got = ds["time"].values.astype("datetime64[ns]").astype(np.int64)
    ref = timeconv.gps_to_datetime64(t_sec).astype("datetime64[ns]").astype(np.int64)
    assert np.abs(got - ref).max() < 1000
    leaps = timeconv.gps_minus_utc(t_sec)
    exact = [(Fraction(float(t)) - int(k) + timeconv.GPS_EPOCH_POSIX) * 10 ** 9 for t, k in zip(t_sec, leaps)]
    assert max(abs(int(g) - x) for g, x in zip(got, exact)) < 50
    # on disk: exactly t_gps - leap seconds + GPS epoch - 2018-01-01, float64
    raw = group["time"][()]
    assert raw.dtype == np.float64
    assert raw.tobytes() == (t_sec - leaps + timeconv.GPS_EPOCH_POSIX - timeconv.CF_EPOCH_POSIX).tobytes()


def test_cf_seconds_and_epoch():
    assert np.datetime64("2018-01-01T00:00:00", "s").astype(np.int64) == timeconv.CF_EPOCH_POSIX
    t = ATLAS_SDP_GPS_EPOCH
    assert timeconv.gps_to_cf_seconds(np.array([t]))[0] == 0.0          # delta_time 0 is 2018-01-01T00:00:00Z
    # 2019-01-01T00:00:00Z is 365 days later (no leap second in 2018)
    assert timeconv.gps_to_cf_seconds(np.array([t + 365 * 86400.0]))[0] == 365 * 86400.0
    # 10 GPS seconds before 2017-01-01T00:00:00Z are 9 UTC seconds before it (leap second 2016-12-31T23:59:60)
    assert timeconv.gps_to_cf_seconds(np.array([t - 365 * 86400.0 - 10]))[0] == -365 * 86400.0 - 9
    assert timeconv.gps_to_cf_seconds(np.array([t + 0.125]))[0] == 0.125


def test_time_is_in_the_table_and_dimension_name_is_reserved():
    table = {v.name: v for v in OUTPUT_VARS}
    assert table["time"].units == timeconv.CF_TIME_UNITS and table["time"].dtype == "f8"
    assert dict(table["time"].cf) == {"standard_name": "time", "calendar": "standard"}
    assert table["t_sec"].units == "s"
    with pytest.raises(ValueError, match="dimension"):          # reserved: an error, never dropped silently
        output_vars(["fit_statistics/obs"])


def test_per_beam_files_open_with_no_arguments(real_reduced):
    for p in beam_files(real_reduced):
        with h5py.File(p, "r") as f, xr.open_dataset(p) as ds:
            assert_same_as_h5py(ds, f, DIMENSION)
            assert_coordinates(ds, f)
            assert_time(ds, f)
            assert ds.attrs["Conventions"] == "CF-1.10" and ds.attrs["featureType"] == "trajectory"
            for k, v in f.attrs.items():
                assert str(ds.attrs[k]) == str(v.decode() if isinstance(v, bytes) else v), k
            for name, units in UNITS.items():
                if name in f:
                    assert f[name].attrs["units"] == units, name
            assert f[DIMENSION].id.get_storage_size() == 0       # the dimension stores nothing


def assert_merged_opens(path):
    """``open_datatree(path)``: every group as its h5py group, the CF attributes at the root and the
    trajectory groups, and the /granules table on its own dimension."""
    with h5py.File(path, "r") as f, xr.open_datatree(path) as tree:
        assert tree.attrs["Conventions"] == "CF-1.10" and tree.attrs["featureType"] == "trajectory"
        points = 0
        for beam in BEAMS:
            for d in DIRECTIONS:
                ds, grp = tree[f"{beam}/{d}"].to_dataset(), f[beam][d]
                assert_same_as_h5py(ds, grp, DIMENSION)
                assert ds.attrs["featureType"] == "trajectory" and ds.attrs["beam"] == beam
                if grp[DIMENSION].shape[0]:
                    assert_coordinates(ds, grp)
                    assert_time(ds, grp)
                points += ds.sizes[DIMENSION]
        granules = tree["granules"].to_dataset()
        assert_same_as_h5py(granules, f["granules"], GRANULE_DIMENSION)
        assert granules.sizes[GRANULE_DIMENSION] == len(REAL)
    return points


@pytest.fixture(scope="module")
def merged(real_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("cf_merge")
    assert main(["reduce", "--all-releases", str(real_dir), "-o", str(out / "tracks"), "--merge", str(out / "m.h5"),
                 "--no-progress"]) == 0
    return out


def test_merged_file_opens_as_a_datatree_with_no_arguments(merged):
    n = assert_merged_opens(merged / "m.h5")
    with h5py.File(merged / "m.h5", "r") as f:
        assert n == sum(f[b][d]["lat"].shape[0] for b in BEAMS for d in DIRECTIONS) > 0


def test_merge_of_per_beam_files_skips_their_dimension(merged, tmp_path):
    """``readatl06 merge OUTDIR`` reads per-beam files with a dimension scale: the scale is no variable
    (TrackFile, the merged groups), and the file is the one ``reduce --merge`` wrote."""
    from readatl06.outputs.outdir import TrackFile
    t = TrackFile.open(beam_files(merged / "tracks")[0])
    assert DIMENSION not in t.var_dtypes and "time" in t.var_dtypes
    assert "DIMENSION_LIST" not in t.var_attrs["h_elv"] and t.var_attrs["h_elv"]["coordinates"] == "time lat lon"
    assert main(["merge", str(merged / "tracks"), "-o", str(tmp_path / "again.h5")]) == 0
    assert assert_merged_opens(tmp_path / "again.h5") == assert_merged_opens(merged / "m.h5")
    with h5py.File(tmp_path / "again.h5", "r") as f:
        assert sorted(variables(f["gt1l/ascending"])) == sorted([v.name for v in OUTPUT_VARS] + ["granule_index"])
        assert f["gt1l/ascending"][DIMENSION].id.get_storage_size() == 0


def test_empty_groups_open(tmp_path):
    """A group without any point has a dimension of length 0 and still opens."""
    from test_merge import synth

    from readatl06.merge import writer as merge
    from readatl06.parallel.world import SerialComm
    granules, held = synth(3)
    merge.merge_tracks(SerialComm(), granules, held, str(tmp_path / "m.h5"), parameters="{}")
    with xr.open_datatree(tmp_path / "m.h5") as tree:
        assert tree["gt3r/descending"].sizes[DIMENSION] == 0
        assert tree["gt1l/ascending"].sizes[DIMENSION] == sum(len(t) for _, t in held if t.stem.endswith("gt1l_A"))


@pytest.mark.mpi(min_size=2)
def test_parallel_merge_opens_and_equals_one_rank(mpi_tmp_path, mpi_real_dir):
    """Written by every rank (the structure and the dimensions by rank 0): it opens with no arguments
    and is the file one rank writes, dimension scales and their references included."""
    from mpi4py import MPI
    from test_merge import assert_same_file

    from readatl06.merge.command import merge_outdir
    from readatl06.atl06.names import Selection
    from readatl06.reduce.granule import ReduceOptions
    from readatl06.reduce.run import run_reduce
    comm = MPI.COMM_WORLD
    world = str(mpi_tmp_path / "world.h5")
    assert run_reduce(comm, [str(mpi_real_dir)], Selection(all_releases=True), ReduceOptions(), str(mpi_tmp_path / "t"),
                      merge_path=world) == 0
    assert merge_outdir(comm, str(mpi_tmp_path / "t"), str(mpi_tmp_path / "outdir.h5")) == 0
    with every_rank(comm):
        if comm.rank == 0:
            assert merge_outdir(MPI.COMM_SELF, str(mpi_tmp_path / "t"), str(mpi_tmp_path / "one.h5")) == 0
            assert assert_merged_opens(world) > 0
            for other in ("outdir.h5", "one.h5"):
                assert_same_file(world, mpi_tmp_path / other)
            with h5py.File(world, "r") as f:
                refs = f["gt1l/ascending/h_elv"].attrs["DIMENSION_LIST"]
                assert [f[r].name for r in refs[0]] == ["/gt1l/ascending/obs"]
                assert f["gt1l/ascending/obs"].id.get_storage_size() == 0
            for p in beam_files(mpi_tmp_path / "t")[:4]:
                with xr.open_dataset(p) as ds:
                    assert set(ds.coords) == set(COORDINATES)
    comm.Barrier()


@pytest.mark.mpi(min_size=2)
def test_a_failure_finishing_the_file_raises_on_every_rank(mpi_tmp_path, monkeypatch):
    """Rank 0 alone adds the dimensions; when that fails every rank raises (none waits) and no file
    appears under the final name."""
    from mpi4py import MPI
    from test_merge import synth

    from readatl06.merge import writer as merge
    comm = MPI.COMM_WORLD
    granules, held = synth(2)

    def broken(*args):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(merge, "_finish", broken)
    target = mpi_tmp_path / "m.h5"
    with pytest.raises((OSError, RuntimeError), match="No space left on device"):
        merge.merge_tracks(comm, granules, held[comm.rank::comm.size], str(target), parameters="{}")
    comm.Barrier()
    assert not target.exists()
