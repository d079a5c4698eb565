"""``readatl06 export`` (docs/export.md): the GeoParquet 1.1 table, checked with the tools users open it with
(pyarrow, geopandas, DuckDB, the GeoParquet JSON schema) against the merged file read with h5py.

tests/data/geoparquet-1.1.0.schema.json is format-specs/schema.json of github.com/opengeospatial/geoparquet
at tag v1.1.0 (commit 525b8f9150db637a7dfa9d8ba46af5f0ed354094), unchanged.
"""
import glob
import json
import os
import pathlib
import shutil

import h5py
import numpy as np
import pytest

from conftest import REAL, every_rank
from readatl06.export import plan as export_plan
from readatl06.cli import main
from readatl06.atl06.schema import BEAMS, DIRECTIONS
from readatl06.atl06.gpstime import gps_to_datetime64, gps_to_posix

SCHEMA = pathlib.Path(__file__).parent / "data" / "geoparquet-1.1.0.schema.json"
DTYPES = {"lon": "float64", "lat": "float64", "h_elv": "float32", "s_elv": "float32", "t_sec": "float64",
          "t_year": "float64", "h_rb": "float32", "s_fg": "int8", "snr": "float32", "q_flg": "int8", "f_sn": "int8",
          "dac": "float32", "tide_earth": "float32", "tide_load": "float32", "tide_ocean": "float32",
          "tide_pole": "float32", "segment_id": "int32", "rgt": "int16", "cycle": "int8", "orbit": "int64"}
CF_EPOCH = 1514764800.0                 # 2018-01-01T00:00:00Z, POSIX seconds


def export(source, out, *extra):
    assert main(["export", str(source), "-o", str(out), *extra]) == 0
    return out


def read(path):
    import pyarrow.parquet as pq
    return pq.read_table(path)


def expected(merged):
    """The merged file in granule-major order (granule, beam, direction, along track), with h5py."""
    with h5py.File(merged, "r") as f:
        names = [n.decode() for n in f["granules/name"][()]]
        groups = []
        for b in BEAMS:
            for d in DIRECTIONS:
                g = f[b][d]
                skip = {"granule_index", "time"} | {k for k in g if g[k].attrs.get("CLASS") == b"DIMENSION_SCALE"}
                groups.append((b, d, g["granule_index"][()], {k: g[k][()] for k in g if k not in skip}))
    cols = {k: [] for k in groups[0][3]}
    cols.update(beam=[], direction=[], granule=[])
    for row, name in enumerate(names):
        for b, d, gi, data in groups:
            sel = gi == row
            for k, v in data.items():
                cols[k].append(v[sel])
            n = int(sel.sum())
            cols["beam"] += [b] * n
            cols["direction"] += [d] * n
            cols["granule"] += [name] * n
    return {k: np.array(v) if k in ("beam", "direction", "granule") else np.concatenate(v) for k, v in cols.items()}


def assert_table_is(table, exp):
    import pyarrow as pa
    assert table.num_rows == exp["lat"].size > 0
    for name, dtype in DTYPES.items():
        col = table[name].to_numpy()
        assert col.dtype == np.dtype(dtype) == exp[name].dtype, name
        assert col.tobytes() == exp[name].tobytes(), name
    assert table.schema.field("time").type == pa.timestamp("us", tz="UTC")
    t = table["time"].to_numpy()
    assert np.array_equal(t.astype("datetime64[us]"), gps_to_datetime64(exp["t_sec"]))
    for name, index in (("beam", pa.int8()), ("direction", pa.int8()), ("granule", pa.int32())):
        assert table.schema.field(name).type == pa.dictionary(index, pa.string()), name
        assert table[name].to_pylist() == exp[name].tolist(), name
    wkb = np.frombuffer(b"".join(table["geometry"].to_pylist()),
                        np.dtype([("o", "u1"), ("t", "<u4"), ("x", "<f8"), ("y", "<f8")]))
    assert (wkb["o"] == 1).all() and (wkb["t"] == 1).all()
    assert np.array_equal(wkb["x"], exp["lon"]) and np.array_equal(wkb["y"], exp["lat"])
    bbox = table["bbox"].combine_chunks()
    for field, src in (("xmin", "lon"), ("xmax", "lon"), ("ymin", "lat"), ("ymax", "lat")):
        assert np.array_equal(bbox.field(field).to_numpy(), exp[src]), field


# ---------------------------------------------------------------- real granules
@pytest.fixture(scope="module")
def real(real_reduced, tmp_path_factory):
    d = tmp_path_factory.mktemp("export_real")
    assert main(["merge", str(real_reduced), "-o", str(d / "m.h5")]) == 0
    export(d / "m.h5", d / "m.parquet")
    export(real_reduced, d / "o.parquet")
    return d, real_reduced


def test_table_is_the_merged_file_in_granule_order(real):
    d, _ = real
    table = read(d / "m.parquet")
    assert_table_is(table, expected(d / "m.h5"))
    names = table.schema.names
    assert names[:7] == ["lon", "lat", "h_elv", "s_elv", "t_sec", "t_year", "time"]
    assert names[-5:] == ["beam", "direction", "granule", "geometry", "bbox"]
    assert "obs" not in names and "granule_index" not in names
    meta = table.schema.field("tide_ocean").metadata
    assert meta[b"units"] == b"m" and float(meta[b"_FillValue"]) == float(np.finfo(np.float32).max)
    # the 001 granules lack the tides: merge filled them with _FillValue, and so does the table
    assert (table["tide_ocean"].to_numpy() == np.finfo(np.float32).max).any()


def test_outdir_gives_the_same_table_as_its_merged_file(real):
    d, _ = real
    a, b = read(d / "m.parquet"), read(d / "o.parquet")
    assert a.equals(b, check_metadata=True)
    assert (d / "m.parquet").read_bytes() == (d / "o.parquet").read_bytes()


def test_geo_metadata_validates_against_the_geoparquet_1_1_schema(real):
    import jsonschema
    import pyarrow.parquet as pq
    d, _ = real
    geo = json.loads(pq.read_schema(d / "m.parquet").metadata[b"geo"])
    jsonschema.validate(geo, json.loads(SCHEMA.read_text()))
    col = geo["columns"]["geometry"]
    assert geo["version"] == "1.1.0" and geo["primary_column"] == "geometry" and "crs" not in col
    assert col["encoding"] == "WKB" and col["geometry_types"] == ["Point"]
    assert col["covering"] == {"bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}}
    t = read(d / "m.parquet")
    lon, lat = t["lon"].to_numpy(), t["lat"].to_numpy()
    assert col["bbox"] == [lon.min(), lat.min(), lon.max(), lat.max()]
    bad = dict(geo, columns={"geometry": dict(col, geometry_types=["Pointy"])})
    with pytest.raises(jsonschema.ValidationError):          # the schema does check what we write
        jsonschema.validate(bad, json.loads(SCHEMA.read_text()))


def test_geopandas_reads_lon_lat_points(real):
    import geopandas
    d, _ = real
    gdf = geopandas.read_parquet(d / "m.parquet")
    assert gdf.crs.equals("OGC:CRS84") and gdf.crs.equals("EPSG:4326", ignore_axis_order=True)
    assert np.array_equal(gdf.geometry.x.to_numpy(), gdf["lon"].to_numpy())
    assert np.array_equal(gdf.geometry.y.to_numpy(), gdf["lat"].to_numpy())
    assert list(gdf["beam"].cat.categories) == list(BEAMS)
    assert str(gdf["time"].dtype) == "datetime64[us, UTC]"
    assert gdf["time"].iloc[0].year in (2018, 2019, 2023)


def test_time_from_the_file_equals_time_from_t_sec_and_dimension_scales_are_skipped(real, tmp_path):
    """Per-beam files with ``time`` (some points at its _FillValue) and an ``obs`` dimension scale, and
    the same files without either, give the same table; ``obs`` is never a column."""
    _, outdir = real
    stems = sorted({os.path.basename(p).rsplit("_", 2)[0] for p in glob.glob(str(outdir / "*_gt*_?.h5"))})[:2]
    for kind in ("with", "without"):
        (tmp_path / kind).mkdir()
        for p in glob.glob(str(outdir / "*_gt*_?.h5")):
            if os.path.basename(p).rsplit("_", 2)[0] in stems:
                shutil.copy(p, tmp_path / kind)
    for p in glob.glob(str(tmp_path / "with" / "*.h5")):
        with h5py.File(p, "r+") as f:
            n = f["t_sec"].shape[0]
            if "time" not in f:
                f["time"] = gps_to_posix(f["t_sec"][()]) - CF_EPOCH
                f["time"].attrs["units"] = "seconds since 2018-01-01T00:00:00Z"
            if "obs" not in f:
                f.create_dataset("obs", (n,), "f4").make_scale("This is a netCDF dimension but not a netCDF variable.")
            f["time"].attrs["_FillValue"] = np.float64(-9999.0)
            f["time"][::7] = -9999.0
    for p in glob.glob(str(tmp_path / "without" / "*.h5")):
        with h5py.File(p, "r+") as f:
            for k in ("time", "obs"):
                if k in f:
                    del f[k]
    a = read(export(tmp_path / "with", tmp_path / "a.parquet"))
    b = read(export(tmp_path / "without", tmp_path / "b.parquet"))
    assert "obs" not in a.schema.names and a.num_rows == b.num_rows > 1000
    assert a.equals(b)
    assert np.array_equal(a["time"].to_numpy().astype("datetime64[us]"), gps_to_datetime64(a["t_sec"].to_numpy()))


def test_bad_inputs_and_targets_are_one_line_exit_2(real, tmp_path, capsys):
    d, outdir = real
    (tmp_path / "empty").mkdir()
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    granule = REAL[0]
    per_beam = sorted(glob.glob(str(outdir / "*_gt1l_*.h5")))[0]
    before = (d / "m.parquet").read_bytes()
    cases = [(tmp_path / "missing.h5", tmp_path / "x.parquet", "missing.h5: no such file or folder"),
             (tmp_path / "junk.h5", tmp_path / "x.parquet", "junk.h5: not an HDF5 file"),
             (granule, tmp_path / "x.parquet", "not a readatl06 merged file"),
             (per_beam, tmp_path / "x.parquet", "a readatl06 per-beam file (give its folder)"),
             (tmp_path / "empty", tmp_path / "x.parquet", "empty: no per-beam files"),
             (d / "m.h5", d / "m.parquet", "m.parquet: exists (use --overwrite to replace it)"),
             (d / "m.h5", d / "m.h5", "m.h5: is one of the input"),
             (d / "m.h5", tmp_path / "no" / "x.parquet", "folder"),
             ]
    for source, target, text in cases:
        assert main(["export", str(source), "-o", str(target), "--overwrite"] if target == d / "m.h5"
                    else ["export", str(source), "-o", str(target)]) == 2, text
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and text in err and err.startswith("readatl06 export: error: "), err
    assert (d / "m.parquet").read_bytes() == before
    assert not (tmp_path / "x.parquet").exists()


def test_overwrite_replaces_and_leaves_no_temporary_file(real, tmp_path):
    d, _ = real
    target = tmp_path / "t.parquet"
    target.write_bytes(b"old")
    export(d / "m.h5", target, "--overwrite")
    assert target.read_bytes() == (d / "m.parquet").read_bytes()
    assert sorted(os.listdir(tmp_path)) == ["t.parquet"]


# ---------------------------------------------------------------- synthetic volume: several row groups
@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """3 synthetic granules, ~150 000 points: two row groups, the second cut inside a granule."""
    d = tmp_path_factory.mktemp("export_synth")
    assert main(["synth", str(d / "g"), "--granules", "3", "--segments-per-beam", "10000"]) == 0
    assert main(["reduce", str(d / "g"), "-o", str(d / "out"), "--merge", str(d / "m.h5"), "--no-progress"]) == 0
    export(d / "m.h5", d / "m.parquet")
    return d


def test_row_groups_of_100000_rows_in_merged_order(synthetic):
    import pyarrow.parquet as pq
    md = pq.ParquetFile(synthetic / "m.parquet").metadata
    sizes = [md.row_group(i).num_rows for i in range(md.num_row_groups)]
    assert len(sizes) >= 2 and all(s == 100_000 for s in sizes[:-1]) and 0 < sizes[-1] <= 100_000
    assert_table_is(read(synthetic / "m.parquet"), expected(synthetic / "m.h5"))
    granules = [pq.ParquetFile(synthetic / "m.parquet").read_row_group(i, columns=["granule"])["granule"]
                for i in range(md.num_row_groups)]
    assert all(len(g.chunk(0).dictionary) <= 3 for g in granules)     # a row group's own granules only


def test_duckdb_bbox_filter_on_the_covering_column_returns_the_points_in_the_box(synthetic):
    import duckdb
    t = read(synthetic / "m.parquet")
    lon, lat, seg = t["lon"].to_numpy(), t["lat"].to_numpy(), t["segment_id"].to_numpy()
    w, e, s, n = np.quantile(lon, 0.3), np.quantile(lon, 0.6), np.quantile(lat, 0.2), np.quantile(lat, 0.7)
    inside = (lon >= w) & (lon <= e) & (lat >= s) & (lat <= n)
    con = duckdb.connect()
    rows = con.execute("SELECT lon, lat, segment_id, granule, beam FROM read_parquet(?) WHERE bbox.xmin <= ? AND "
                       "bbox.xmax >= ? AND bbox.ymin <= ? AND bbox.ymax >= ?",
                       [str(synthetic / "m.parquet"), e, w, n, s]).fetchall()
    assert 0 < len(rows) == int(inside.sum()) < t.num_rows
    got = sorted((r[0], r[1], r[2], r[3], r[4]) for r in rows)
    want = sorted(zip(lon[inside], lat[inside], seg[inside], np.array(t["granule"].to_pylist())[inside],
                      np.array(t["beam"].to_pylist())[inside]))
    assert got == [(a, b, int(c), str(g), str(bm)) for a, b, c, g, bm in want]
    kind = con.execute("SELECT typeof(time), typeof(h_elv) FROM read_parquet(?) LIMIT 1",
                       [str(synthetic / "m.parquet")]).fetchone()
    assert kind == ("TIMESTAMP WITH TIME ZONE", "FLOAT")


def test_outdir_and_merged_file_give_the_same_bytes_with_row_groups(synthetic):
    export(synthetic / "out", synthetic / "o.parquet")
    assert (synthetic / "o.parquet").read_bytes() == (synthetic / "m.parquet").read_bytes()


# ---------------------------------------------------------------- the pure parts
def test_granule_split_and_batches_are_pure_and_cover_the_stream():
    starts = np.concatenate([[0], np.cumsum([50_000, 120_000, 10, 0, 30_000])])
    assert export_plan.split_granules(starts, 1) == [0, 5]
    assert export_plan.split_granules(starts, 2) == [0, 1, 5]          # 100 005 is nearer 50 000 than 170 000
    four = export_plan.split_granules(starts, 4)
    assert four[0] == 0 and four[-1] == 5 and four == sorted(four)
    assert export_plan.split_granules(np.zeros(4, np.int64), 3) == [0, 0, 0, 3]
    assert export_plan.batches(0, 250_000) == [(0, 100_000), (100_000, 200_000), (200_000, 250_000)]
    assert export_plan.batches(150_000, 210_000) == [(150_000, 200_000), (200_000, 210_000)]
    assert export_plan.batches(5, 5) == []
    counts = np.zeros((3, 12), np.int64)
    counts[0, 0], counts[0, 5], counts[2, 1] = 3, 4, 5
    st = export_plan.Stream(counts)
    assert st.total == 12 and st.pieces(2, 9) == [(0, 2, 3), (1, 0, 4), (2, 0, 2)]
    assert st.group_start[2, 1] == 0 and st.rank_rows(2, 0) == (0, 7) and st.rank_rows(2, 1) == (7, 12)


# ---------------------------------------------------------------- under mpirun
@pytest.mark.mpi(min_size=2)
def test_parallel_export_writes_the_serial_bytes(mpi_tmp_path):
    """Every rank count writes the same file as one rank, from a merged file and from its OUTDIR
    (3 granules: with 4 ranks one rank has none; the second row group spans two ranks)."""
    import argparse

    from mpi4py import MPI

    from readatl06.export.writer import run_export
    from readatl06.atl06.names import Selection
    from readatl06.reduce.granule import ReduceOptions
    from readatl06.reduce.run import run_reduce
    from readatl06.synth import command as synth
    comm = MPI.COMM_WORLD
    d = mpi_tmp_path
    with every_rank(comm):
        if comm.rank == 0:
            args = synth.add_arguments(argparse.ArgumentParser()).parse_args(
                [str(d / "g"), "--granules", "3", "--segments-per-beam", "10000"])
            assert synth.run(args, MPI.COMM_SELF) == 0
            assert run_reduce(MPI.COMM_SELF, [str(d / "g")], Selection(), ReduceOptions(), str(d / "out"),
                              merge_path=str(d / "m.h5"), progress=False) == 0
    comm.Barrier()
    assert run_export(comm, str(d / "m.h5"), str(d / "world.parquet")) == 0
    assert run_export(comm, str(d / "out"), str(d / "world_out.parquet")) == 0
    with every_rank(comm):
        if comm.rank == 0:
            assert run_export(MPI.COMM_SELF, str(d / "m.h5"), str(d / "self.parquet")) == 0
            one = (d / "self.parquet").read_bytes()
            assert (d / "world.parquet").read_bytes() == one
            assert (d / "world_out.parquet").read_bytes() == one
            assert not [p for p in os.listdir(d) if ".tmp-" in p]
            assert_table_is(read(d / "world.parquet"), expected(d / "m.h5"))
    comm.Barrier()


# ---------------------------------------------------------------- issue 22
def sha256(path):
    import hashlib
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def test_same_sha256_on_1_2_and_3_ranks_from_the_merged_file_and_the_outdir(synthetic):
    """Item 15: the table is the same bytes for any rank count and across runs (pyarrow writes no
    time; ``created_by`` names the library's version only)."""
    import pyarrow.parquet as pq
    from conftest import run_cli
    ref = sha256(synthetic / "m.parquet")
    export(synthetic / "m.h5", synthetic / "again.parquet")
    assert sha256(synthetic / "again.parquet") == ref
    for ranks in (2, 3):
        for source in ("m.h5", "out"):
            target = synthetic / f"{source}-{ranks}.parquet"
            r = run_cli("export", synthetic / source, "-o", target, ranks=ranks, timeout=120)
            assert r.returncode == 0 and f"on {ranks} rank(s)" in r.stdout, r.stderr
            assert sha256(target) == ref, (source, ranks)
    md = pq.ParquetFile(synthetic / "m.parquet").metadata
    assert md.created_by.startswith("parquet-cpp-arrow version ")
    assert sorted(md.metadata) == [b"ARROW:schema", b"geo", b"readatl06"]


def test_granule_names_of_a_merged_file_resaved_by_xarray(real, tmp_path):
    """Item 8: ``xr.open_datatree(M).to_netcdf(R)`` stores /granules/name as a ``|S1`` character array
    (netCDF ``char``); the table of R names the granules as M's table does (before: the text of the
    characters' array, "[b'A' b'T' ...")."""
    xr = pytest.importorskip("xarray")
    d, _ = real
    with xr.open_datatree(d / "m.h5") as tree:
        tree.to_netcdf(tmp_path / "r.h5")
    with h5py.File(tmp_path / "r.h5", "r") as f:
        assert f["granules/name"].dtype == np.dtype("S1") and f["granules/name"].ndim == 2
    export(tmp_path / "r.h5", tmp_path / "r.parquet")
    want = read(d / "m.parquet")["granule"].to_pylist()
    assert read(tmp_path / "r.parquet")["granule"].to_pylist() == want
    assert set(want) == {p.name for p in REAL}
    from readatl06.plot.data import granule_names
    assert granule_names([str(tmp_path / "r.h5")]) == granule_names([str(d / "m.h5")]) != []


def test_granule_names_stored_as_variable_length_strings_or_refused_in_one_line(real, tmp_path, capsys):
    d, _ = real
    vlen, numbers = tmp_path / "vlen.h5", tmp_path / "numbers.h5"
    for path in (vlen, numbers):
        shutil.copy(d / "m.h5", path)
    with h5py.File(vlen, "r+") as f:
        names = [n.decode() for n in f["granules/name"][()]]
        del f["granules/name"]
        f.create_dataset("granules/name", data=np.array(names, dtype=object), dtype=h5py.string_dtype())
    with h5py.File(numbers, "r+") as f:
        del f["granules/name"]
        f["granules/name"] = np.arange(len(names))
    export(vlen, tmp_path / "vlen.parquet")
    assert read(tmp_path / "vlen.parquet")["granule"].to_pylist() == read(d / "m.parquet")["granule"].to_pylist()
    capsys.readouterr()
    assert main(["export", str(numbers), "-o", str(tmp_path / "n.parquet")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("readatl06 export: error: ") and "numbers.h5" in err, err
    assert "/granules/name is int64" in err and not (tmp_path / "n.parquet").exists()


@pytest.fixture(scope="module")
def releases(tmp_path_factory):
    """Item 4: one granule in releases 001 and 003, ``fit_statistics/n_seg_pulses`` reduced too: int32
    in 001, float32 in 003."""
    d = tmp_path_factory.mktemp("releases")
    (d / "in").mkdir()
    for p in REAL:
        if p.name.startswith("ATL06_20181014001049_02350102_"):
            shutil.copy(p, d / "in" / p.name)
    assert len(os.listdir(d / "in")) == 2
    assert main(["reduce", str(d / "in"), *all_releases(), "--vars", "fit_statistics/n_seg_pulses",
                 "-o", str(d / "t"), "--merge", str(d / "m.h5"), "--no-progress"]) == 0
    return d


def all_releases():
    """``--all-releases`` where ``reduce`` has it (a newer release supersedes an older one otherwise)."""
    from readatl06.cli import build_parser
    reduce = build_parser()._subparsers._group_actions[0].choices["reduce"]
    return ["--all-releases"] if "--all-releases" in reduce._option_string_actions else []


def test_a_dtype_that_differs_between_granules_is_exported_exactly(releases, capsys):
    """The column's dtype holds every piece's values (int32 + float32: float64) and the export says so;
    the table from the OUTDIR is the table from the merged file, byte for byte."""
    d = releases
    capsys.readouterr()
    export(d / "t", d / "o.parquet")
    err = capsys.readouterr().err
    assert "readatl06 export: note: n_seg_pulses is int32 in" in err and "float64" in err, err
    export(d / "m.h5", d / "m.parquet")
    table = read(d / "o.parquet")
    assert table.schema.field("n_seg_pulses").type == "double"
    values = table["n_seg_pulses"].to_numpy()
    granule = np.array(table["granule"].to_pylist())
    late = values[granule == "ATL06_20181014001049_02350102_003_01.h5"]
    assert late.size and (late != np.round(late)).any()           # float32 values, not truncated
    for name, rel in ((n, n.split("_")[3]) for n in set(granule)):
        got = values[granule == name]
        own = [h5py.File(p, "r")["n_seg_pulses"] for p in sorted(glob.glob(str(d / "t" / (name[:-3] + "_*.h5"))))]
        assert own and {o.dtype for o in own} == {np.dtype("int32" if rel == "001" else "float32")}
        fills = {o.attrs["_FillValue"].item() for o in own}
        want = np.concatenate([o[()] for o in own]).astype(np.float64)
        want[np.isin(want, list(fills))] = float(table.schema.field("n_seg_pulses").metadata[b"_FillValue"])
        assert np.sort(got).tobytes() == np.sort(want).tobytes(), name
    assert (d / "o.parquet").read_bytes() == (d / "m.parquet").read_bytes()
