"""The merged file (docs/merge.md): per-beam files concatenated in granule order, any rank count."""
import glob
import os
import shutil

import h5py
import numpy as np
import pytest

from conftest import REAL, every_rank
from readatl06.cli import main
from readatl06.atl06.names import parse_name
from readatl06.atl06.schema import BEAMS, DIMENSION, DIRECTIONS, OUTPUT_VARS


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
    assert main(["reduce", "--all-releases", str(real_dir), "-o", str(out / "tracks"), "--merge", str(out / "m.h5"),
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


def sha256(path):
    import hashlib
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def test_merge_outdir_equals_reduce_merge(merged, tmp_path):
    """``merge OUTDIR`` (points read from the per-beam files, attributes given back by name) writes
    the same bytes as ``reduce --merge`` (tracks held in memory, attributes in the order made)."""
    assert main(["merge", str(merged / "tracks"), "-o", str(tmp_path / "again.h5")]) == 0
    assert_same_file(merged / "m.h5", tmp_path / "again.h5")
    assert sha256(merged / "m.h5") == sha256(tmp_path / "again.h5")


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
    assert main(["reduce", "--all-releases", str(real_dir), "-o", str(out), "--merge", str(tmp_path / "m.h5"),
                 "--no-per-beam", "--no-progress"]) == 0
    assert glob.glob(str(out / "*_gt*.h5")) == []
    assert_same_file(merged / "m.h5", tmp_path / "m.h5")


def test_resume_with_merge_reads_back_skipped_granules(real_dir, tmp_path, merged):
    out = tmp_path / "t"
    shutil.copytree(merged / "tracks", out)
    assert main(["reduce", "--all-releases", str(real_dir), "-o", str(out), "--merge", str(tmp_path / "m.h5"),
                 "--resume", "--no-progress"]) == 0
    assert_same_file(merged / "m.h5", tmp_path / "m.h5")


@pytest.mark.mpi(min_size=2)
def test_merge_identical_for_any_rank_count(mpi_tmp_path, mpi_real_dir):
    from mpi4py import MPI

    from readatl06.merge.command import merge_outdir
    from readatl06.atl06.names import Selection
    from readatl06.reduce.granule import ReduceOptions
    from readatl06.reduce.run import run_reduce
    comm = MPI.COMM_WORLD
    src = mpi_real_dir
    world = str(mpi_tmp_path / "world.h5")
    assert run_reduce(comm, [str(src)], Selection(all_releases=True), ReduceOptions(), str(mpi_tmp_path / "t"),
                      merge_path=world) == 0
    assert merge_outdir(comm, str(mpi_tmp_path / "t"), str(mpi_tmp_path / "outdir.h5")) == 0
    # tracks spilled to their per-beam files and merged in rounds (--merge-memory 0.3), --no-per-beam
    assert run_reduce(comm, [str(src)], Selection(all_releases=True), ReduceOptions(), str(mpi_tmp_path / "t2"),
                      merge_path=str(mpi_tmp_path / "small.h5"), merge_memory=0.3) == 0
    assert run_reduce(comm, [str(src)], Selection(all_releases=True), ReduceOptions(), str(mpi_tmp_path / "t3"), write=False,
                      merge_path=str(mpi_tmp_path / "nofiles.h5"), merge_memory=0.3) == 0
    assert merge_outdir(comm, str(mpi_tmp_path / "t"), str(mpi_tmp_path / "outdir-small.h5"), memory=0.3) == 0
    with every_rank(comm):
        if comm.rank == 0:
            assert merge_outdir(MPI.COMM_SELF, str(mpi_tmp_path / "t"), str(mpi_tmp_path / "one.h5")) == 0
            for other in ("outdir.h5", "one.h5", "small.h5", "nofiles.h5", "outdir-small.h5"):
                assert_same_file(world, mpi_tmp_path / other)
                assert sha256(world) == sha256(mpi_tmp_path / other), other
    comm.Barrier()


# ----------------------------------------------------------------------------- issue 11: whole chunks, rounds
def synth(n_granules, seed=0, lacking=(1,)):
    """Granule names and ``[(row, Track)]``: two large groups (several rounds at a small
    --merge-memory), small ones, empty beams, one group without any track, and granules ``lacking``
    the secondary variables (as NSIDC subsets)."""
    import datetime as dt

    from readatl06.atl06.track import Track
    rng = np.random.default_rng(seed)
    t0 = dt.datetime(2019, 3, 1)
    granules = sorted(parse_name(f"ATL06_{t0 + dt.timedelta(minutes=97 * i):%Y%m%d%H%M%S}_"
                                 f"{(7 * i) % 1387 + 1:04d}02{10 + i % 3:02d}_006_01.h5") for i in range(n_granules))
    fills = {"f4": np.finfo(np.float32).max, "f8": np.finfo(np.float64).max, "i1": 127}
    held = []
    for row, g in enumerate(granules):
        for k, (beam, direction) in enumerate(GROUPS):
            if k == 11:
                continue                                           # gt3r descending: never any point
            n = int(rng.integers(5000, 9000)) if k in (0, 5) else int(rng.integers(0, 400)) * int(rng.random() < 0.7)
            if n == 0:
                continue                                           # an empty beam
            data, attrs = {}, {}
            for v in OUTPUT_VARS:
                if row in lacking and v.name in ("h_rb", "dac", "tide_ocean", "f_sn"):
                    continue
                kind = np.dtype(v.dtype).kind
                data[v.name] = (rng.normal(0, 1e3, n) if kind == "f" else rng.integers(-100, 100, n)).astype(v.dtype)
                src = (f"/ancillary_data/atlas_sdp_gps_epoch + /{beam}/land_ice_segments/delta_time"
                       if v.kind in ("gpstime", "utcyear", "utctime") else f"/{beam}/x/{v.source}")
                attrs[v.name] = {"units": v.units, "long_name": v.long_name, "source": src}
                if v.dtype in fills and v.name not in ("t_sec", "t_year", "orbit"):
                    attrs[v.name]["_FillValue"] = np.asarray(fills[v.dtype]).astype(v.dtype)[()]
            held.append((row, Track(g, beam, direction, data, attrs, {
                "granule": g.name, "beam": beam, "direction": direction, "parameters": "{}"})))
    return granules, held


GROUPS = [(b, d) for b in BEAMS for d in DIRECTIONS]


def assert_synth_file(path, granules, held):
    """The merged file holds exactly the tracks in granule order, fill values where a granule lacks a
    variable, granule_index, the chunk layout of ``chunk_for`` and gzip + shuffle."""
    from readatl06.merge.redistribute import chunk_for
    with h5py.File(path, "r") as f:
        assert [x.decode() for x in f["granules/name"][()]] == [g.name for g in granules]
        for k, (beam, d) in enumerate(GROUPS):
            parts = sorted((row, t) for row, t in held if (t.beam, t.direction) == (beam, d))
            grp = f[f"{beam}/{d}"]
            n = sum(len(t) for _, t in parts)
            assert sorted(grp) == sorted([v.name for v in OUTPUT_VARS] + ["granule_index", DIMENSION])
            gi = np.concatenate([np.full(len(t), r, np.int32) for r, t in parts]) if parts else np.zeros(0, np.int32)
            assert grp["granule_index"][()].tobytes() == gi.tobytes()
            for v in OUTPUT_VARS:
                ds = grp[v.name]
                assert ds.shape == (n,) and ds.dtype == np.dtype(v.dtype)
                fill = ds.attrs["_FillValue"]
                want = [t.data[v.name] if v.name in t.data else np.full(len(t), fill, v.dtype) for _, t in parts]
                assert ds[()].tobytes() == (np.concatenate(want) if want else np.zeros(0, v.dtype)).tobytes(), (k, v.name)
                if n:
                    assert ds.chunks == (chunk_for(n),) and ds.compression == "gzip" and ds.shuffle
            if k in (0, 5):   # the lacking granule's points hold the fill value
                assert (grp["dac"][()][gi == 1] == np.finfo(np.float32).max).all() and (gi == 1).any()


def test_rounds_and_sources_give_the_same_file(tmp_path):
    """Tracks in memory, in per-beam files, or both; one round or many: the same file, and the data."""
    from readatl06.merge import writer as merge
    from readatl06.outputs.outdir import TrackFile
    from readatl06.parallel.world import SerialComm
    from readatl06.outputs.trackfile import write_tracks
    granules, held = synth(10)
    (tmp_path / "t").mkdir()
    files = {}
    for row, t in held:
        files[(row, t.beam, t.direction)] = TrackFile.open(write_tracks([t], str(tmp_path / "t"))[0])
    on_disk = [(row, files[(row, t.beam, t.direction)]) for row, t in held]
    mixed = [(row, t if i % 3 else files[(row, t.beam, t.direction)]) for i, (row, t) in enumerate(held)]
    ref = tmp_path / "ref.h5"
    assert merge.merge_tracks(SerialComm(), granules, held, str(ref), parameters="{}") == sum(len(t) for _, t in held)
    assert merge.last_stats["rounds_per_group"] == [1] * 11 + [0]        # gt3r descending: empty
    assert_synth_file(ref, granules, held)
    for name, items in (("memory", held), ("files", on_disk), ("mixed", mixed)):
        for memory in (512, 2, 0.01):
            out = tmp_path / f"{name}-{memory}.h5"
            merge.merge_tracks(SerialComm(), granules, items, str(out), parameters="{}", memory=memory)
            if memory < 512:
                assert merge.last_stats["rounds"] > 11 and max(merge.last_stats["rounds_per_group"]) >= 4
            assert_same_file(ref, out)


def test_round_buffer_does_not_grow_with_the_granules(tmp_path):
    """At a fixed --merge-memory the largest buffer a rank holds is about the same for 6 and 24
    granules (the same points per round; the deflated chunks a round keeps until rank 0 has placed
    them differ with the data) and within the budget; only the number of rounds grows."""
    from readatl06.merge import writer as merge
    from readatl06.parallel.world import SerialComm
    seen = {}
    for n in (6, 24):
        granules, held = synth(n, seed=n)
        # 4.4 MB: a round's share holds 8192 points of every dataset (130 bytes a point with `time`,
        # as many again for their deflated chunks at worst)
        merge.merge_tracks(SerialComm(), granules, held, str(tmp_path / f"{n}.h5"), parameters="{}", memory=4.4)
        seen[n] = dict(merge.last_stats)
        assert_synth_file(tmp_path / f"{n}.h5", granules, held)
    budget = int(4.4 * 2 ** 20) / 2
    assert seen[6]["budget"] == seen[24]["budget"] == budget
    assert 0.9 * seen[6]["largest_buffer"] < seen[24]["largest_buffer"] < 1.1 * seen[6]["largest_buffer"]
    assert max(seen[6]["largest_buffer"], seen[24]["largest_buffer"]) <= budget
    assert seen[24]["rounds"] > 2 * seen[6]["rounds"] > 24


def test_held_tracks_spill_to_their_files_beyond_the_limit(tmp_path):
    from readatl06.merge import redistribute as rd
    from readatl06.outputs.outdir import TrackFile
    from readatl06.outputs.trackfile import write_tracks
    _, held = synth(4)
    kept = rd.HeldTracks(str(tmp_path), files=True, memory=1)       # 0.5 MB for tracks in memory
    for row, t in held:
        write_tracks([t], str(tmp_path))
        kept.extend([(row, t)])
    in_memory = [t for _, t in kept if not isinstance(t, TrackFile)]
    spilled = [t for _, t in kept if isinstance(t, TrackFile)]
    assert in_memory and spilled and len(kept) == len(held)
    assert kept.bytes == sum(rd.track_bytes(t) for t in in_memory) <= 2 ** 19 and not kept.over
    assert all(os.path.isfile(t.path) and t.n == h5py.File(t.path, "r")["lat"].shape[0] for t in spilled)
    # a spilled track is ~30 bytes of columns: its variables are one of a few shared sets (at most one
    # per group), its path is the folder and the standard name, no object of its own is kept
    assert len(kept.rows) == len(spilled) and len(kept.tracks) == len(in_memory)
    original = {(row, t.beam, t.direction): t for row, t in held}
    written = [original[(row, t.beam, t.direction)] for row, t in kept if isinstance(t, TrackFile)]
    kinds = {repr([(k, str(v.dtype), sorted(t.var_attrs[k].items())) for k, v in t.data.items()]) for t in written}
    assert len(kept.sets) == len(kinds) < len(spilled) and kept.names == []
    assert kept.folders == [os.path.abspath(tmp_path)]
    everything = rd.HeldTracks(str(tmp_path), files=False, memory=1)   # --no-per-beam: nothing to read back
    everything.extend(held)
    assert everything.over and not any(isinstance(t, TrackFile) for _, t in everything)


def test_merge_memory_option_keeps_the_file(merged, real_dir, tmp_path, capsys):
    assert main(["merge", str(merged / "tracks"), "-o", str(tmp_path / "m.h5"), "--merge-memory", "0.3"]) == 0
    assert "rounds)" in capsys.readouterr().out
    assert_same_file(merged / "m.h5", tmp_path / "m.h5")
    assert main(["reduce", "--all-releases", str(real_dir), "-o", str(tmp_path / "t"), "--merge", str(tmp_path / "r.h5"),
                 "--merge-memory", "0.3", "--no-progress"]) == 0
    assert_same_file(merged / "m.h5", tmp_path / "r.h5")
    with pytest.raises(SystemExit) as exc:
        main(["merge", str(merged / "tracks"), "-o", str(tmp_path / "x.h5"), "--merge-memory", "0"])
    assert exc.value.code == 2 and not (tmp_path / "x.h5").exists()


def test_kill_during_a_merge_in_rounds_then_resume(real_dir, tmp_path, merged):
    from conftest import run_cli
    out, m = tmp_path / "t", tmp_path / "m.h5"
    r = run_cli("reduce", "--all-releases", real_dir, "-o", out, "--merge", m, "--merge-memory", "0.3", "--no-progress",
                env={"READATL06_CRASH_AT": "merge-group:3"})
    assert r.returncode != 0 and not m.exists()
    r = run_cli("reduce", "--all-releases", real_dir, "-o", out, "--merge", m, "--merge-memory", "0.3", "--no-progress", "--resume")
    assert r.returncode == 0, r.stderr
    assert_same_file(merged / "m.h5", m)
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


@pytest.mark.mpi(min_size=2)
def test_whole_chunks_identical_for_every_rank_count_and_memory(mpi_tmp_path):
    """Synthetic tracks on 1 .. size ranks (sub-communicators), spread round robin, all on one rank
    (the others hold nothing), or as per-beam files, in one round or many: always the same file."""
    from mpi4py import MPI

    from readatl06.merge import writer as merge
    from readatl06.outputs.outdir import TrackFile
    from readatl06.outputs.trackfile import write_tracks
    world = MPI.COMM_WORLD
    granules, held = synth(6)
    folder = mpi_tmp_path / "t"
    with every_rank(world):
        if world.rank == 0:
            folder.mkdir()
    paths = world.bcast([write_tracks([t], str(folder))[0] for _, t in held] if world.rank == 0 else None)
    ref = mpi_tmp_path / "ref.h5"
    with every_rank(world):
        if world.rank == 0:
            from readatl06.parallel.world import SerialComm
            merge.merge_tracks(SerialComm(), granules, held, str(ref), parameters="{}")
            assert_synth_file(ref, granules, held)
    world.Barrier()
    for size in range(1, world.size + 1):
        comm = world.Split(0 if world.rank < size else MPI.UNDEFINED, world.rank)
        if comm != MPI.COMM_NULL:
            r = comm.rank
            spreads = {"rr": held[r::size], "one": held if r == 0 else [],
                       "files": [(row, TrackFile.open(p)) for (row, _), p in zip(held, paths)][r::size],
                       "mixed": [(row, TrackFile.open(p) if i % 2 else t)
                                 for i, ((row, t), p) in enumerate(zip(held, paths))][r::size]}
            for name, mine in spreads.items():
                for memory in {"rr": (0.5,), "one": (512,), "files": (0.5,), "mixed": (0.5,)}[name]:
                    out = mpi_tmp_path / f"{size}-{name}-{memory}.h5"
                    merge.merge_tracks(comm, granules, mine, str(out), parameters="{}", memory=memory)
                    if memory < 1:
                        assert max(merge.last_stats["rounds_per_group"]) > 1
                    if r == 0:
                        assert_same_file(ref, out)
            comm.Free()
        idle_barrier(world)


def idle_barrier(comm):
    """A barrier that sleeps instead of spinning (ranks outside a sub-communicator would otherwise
    take the CPU from those working, oversubscribed)."""
    import time
    req = comm.Ibarrier()
    while not req.Test():
        time.sleep(0.005)


# ----------------------------------------------------------------------------- issue 22, item 4: dtypes
def test_a_dtype_that_differs_between_tracks_is_promoted_and_fills_follow(tmp_path, capsys):
    """``snr`` int32 (fill 2147483647) in granule 0, float32 (fill the float32 maximum) elsewhere: the
    merged dataset is float64 (NumPy's promotion, every value exact), the same whether the tracks are
    in memory or read back from their files, in one round or many; each track's own fill becomes the
    dataset's; rank 0 notes it."""
    from readatl06.merge import writer as merge
    from readatl06.outputs import trackfile
    from readatl06.outputs.outdir import TrackFile
    from readatl06.parallel.world import SerialComm
    granules, held = synth(4)
    i32, f32 = np.iinfo(np.int32).max, np.finfo(np.float32).max
    for row, t in held:
        v = t.data["snr"]
        if row == 0:
            t.data["snr"] = (np.arange(v.size) * 7 - 3).astype(np.int32)
            t.data["snr"][::5] = i32
            t.var_attrs["snr"]["_FillValue"] = np.int32(i32)
        else:
            t.data["snr"] = (v / 7).astype(np.float32)          # not integers
            t.data["snr"][1::4] = f32
            t.var_attrs["snr"]["_FillValue"] = np.float32(f32)
    (tmp_path / "t").mkdir()
    files = [(row, TrackFile.open(trackfile.write_tracks([t], str(tmp_path / "t"))[0])) for row, t in held]
    for name, items, memory in (("memory", held, 512), ("files", files, 0.05)):
        out = tmp_path / f"{name}.h5"
        capsys.readouterr()
        merge.merge_tracks(SerialComm(), granules, items, str(out), parameters="{}", memory=memory)
        err = capsys.readouterr().err
        assert f"readatl06 merge: note: snr is int32 in " in err and "float32 in " in err, err
        assert "written as float64, which holds every value exactly" in err and granules[0].name in err
        with h5py.File(out, "r") as f:
            for beam, d in GROUPS:
                ds = f[f"{beam}/{d}/snr"]
                assert ds.dtype == np.float64 and ds.attrs["_FillValue"].dtype == np.float64
                fill = ds.attrs["_FillValue"]
                assert fill == float(i32) or not any(r == 0 for r, t in held if (t.beam, t.direction) == (beam, d))
                parts = sorted((r, t) for r, t in held if (t.beam, t.direction) == (beam, d))
                want = []
                for r, t in parts:
                    v = t.data["snr"].astype(np.float64)
                    v[t.data["snr"] == t.var_attrs["snr"]["_FillValue"]] = fill
                    want.append(v)
                assert ds[()].tobytes() == (np.concatenate(want) if want else np.zeros(0)).tobytes(), (beam, d)
                if any(r > 0 for r, _ in parts):
                    assert (ds[()] != np.round(ds[()])).any()          # the float32 values were not cast
    assert sha256(tmp_path / "memory.h5") == sha256(tmp_path / "files.h5")


def test_release_001_and_003_merged_with_n_seg_pulses_exactly(tmp_path, capsys):
    """The user's case: ``reduce --vars fit_statistics/n_seg_pulses --merge`` over release 001 (int32)
    and 003 (float32) of one granule wrote int32 and truncated every 003 value (56.30 -> 56)."""
    src = tmp_path / "in"
    src.mkdir()
    for p in REAL:
        if p.name.startswith("ATL06_20181014001049_02350102_"):
            shutil.copy(p, src / p.name)
    from readatl06.cli import build_parser
    reduce = build_parser()._subparsers._group_actions[0].choices["reduce"]
    extra = ["--all-releases"] if "--all-releases" in reduce._option_string_actions else []
    assert main(["reduce", str(src), *extra, "--vars", "fit_statistics/n_seg_pulses", "-o", str(tmp_path / "t"),
                 "--merge", str(tmp_path / "m.h5"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "note: n_seg_pulses is int32 in" in err and "written as float64" in err, err
    with h5py.File(tmp_path / "m.h5", "r") as f:
        names = [n.decode() for n in f["granules/name"][()]]
        assert [n.split("_")[3] for n in names] == ["001", "003"]
        checked = 0
        for beam, d in GROUPS:
            ds, gi = f[f"{beam}/{d}/n_seg_pulses"], f[f"{beam}/{d}/granule_index"][()]
            assert ds.dtype == np.float64
            for row, name in enumerate(names):
                p = tmp_path / "t" / f"{name[:-3]}_{beam}_{d[0].upper()}.h5"
                if not p.exists():
                    continue
                with h5py.File(p, "r") as g:
                    own = g["n_seg_pulses"][()]
                    want = own.astype(np.float64)
                    want[own == g["n_seg_pulses"].attrs["_FillValue"]] = ds.attrs["_FillValue"]
                assert ds[()][gi == row].tobytes() == want.tobytes(), (beam, d, name)
                checked += 1
                if row == 1:
                    assert (want != np.round(want)).any()
        assert checked >= 12
