"""Issue 23: the merge's and the export's collectives are compact arrays, chunked below a limit (the
same bytes with a 64-byte limit as with the default), and what a rank puts into them grows with its
own tracks, not with the other ranks' (``parallel.exchange.sent``). Run under mpirun -n 2 and -n 4."""
import argparse
import hashlib
import os
import pathlib
import pickle

import pytest

from conftest import every_rank
from test_merge import synth

pytestmark = pytest.mark.mpi(min_size=2)


def sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def _outdir(comm, d, granules=3):
    """Rank 0 makes ``granules`` synthetic granules and reduces them (one process) into ``d/out``."""
    from mpi4py import MPI

    from readatl06.atl06.names import Selection
    from readatl06.reduce.granule import ReduceOptions
    from readatl06.reduce.run import run_reduce
    from readatl06.synth import command as synth_command
    with every_rank(comm):
        if comm.rank == 0:
            args = synth_command.add_arguments(argparse.ArgumentParser()).parse_args(
                [str(d / "g"), "--granules", str(granules), "--segments-per-beam", "3000", "--seed", "7"])
            assert synth_command.run(args, MPI.COMM_SELF) == 0
            assert run_reduce(MPI.COMM_SELF, [str(d / "g")], Selection(), ReduceOptions(), str(d / "out"),
                              progress=False) == 0
    comm.Barrier()
    return d / "out"


def test_tiny_chunk_limit_gives_the_same_merged_and_exported_bytes(mpi_tmp_path, monkeypatch):
    """With ``READATL06_MPI_CHUNK_BYTES=64`` every collective of the helpers runs in many rounds; the
    merged file (from the OUTDIR, and from tracks in memory exchanged with Alltoallv) and the
    GeoParquet table are the same bytes as with the default limit and as one rank's."""
    from mpi4py import MPI

    from readatl06.export.writer import run_export
    from readatl06.merge import writer
    from readatl06.merge.command import merge_outdir
    from readatl06.parallel import exchange
    comm = MPI.COMM_WORLD
    d = mpi_tmp_path
    out = _outdir(comm, d)
    granules, held = synth(4)
    mine = held[comm.rank::comm.size]
    for limit in ("", "64"):
        monkeypatch.setenv(exchange.CHUNK_ENV, limit)
        assert merge_outdir(comm, str(out), str(d / f"m{limit}.h5"), memory=0.5) == 0
        assert run_export(comm, str(out), str(d / f"e{limit}.parquet")) == 0
        writer.merge_tracks(comm, granules, mine, str(d / f"t{limit}.h5"), parameters="{}", memory=0.5)
    monkeypatch.setenv(exchange.CHUNK_ENV, "")
    with every_rank(comm):
        if comm.rank == 0:
            assert merge_outdir(MPI.COMM_SELF, str(out), str(d / "one.h5")) == 0
            assert run_export(MPI.COMM_SELF, str(out), str(d / "one.parquet")) == 0
            writer.merge_tracks(MPI.COMM_SELF, granules, held, str(d / "tone.h5"), parameters="{}")
            for a, b in (("one.h5", "m.h5"), ("one.h5", "m64.h5"), ("one.parquet", "e.parquet"),
                         ("one.parquet", "e64.parquet"), ("tone.h5", "t.h5"), ("tone.h5", "t64.h5")):
                assert sha256(d / a) == sha256(d / b), (a, b)
    comm.Barrier()


def test_bytes_a_rank_sends_grow_with_its_own_tracks_only(mpi_tmp_path):
    """``merge_tracks`` of per-beam files: what each rank puts into the collectives is its 29-byte
    source records, its folder (no path: the files have the standard names), its metadata summary (a
    few 10 KB, whatever the tracks) and 16-byte counts — a bound from those figures, checked on every rank — and when only the last rank
    gets more tracks (two more granules, later in time), every other rank sends exactly as many bytes
    as before."""
    from mpi4py import MPI

    from readatl06.atl06.names import parse_name
    from readatl06.merge import layout, writer
    from readatl06.merge.redistribute import open_tracks
    from readatl06.parallel import exchange
    comm = MPI.COMM_WORLD
    out = _outdir(comm, mpi_tmp_path, granules=4)
    paths = sorted(str(out / p) for p in os.listdir(out) if p.endswith(".h5"))
    tracks, error = open_tracks(paths)
    assert error is None
    names = sorted({t.granule.name for t in tracks}, key=parse_name)
    first, extra = [t for t in tracks if t.granule.name in names[:2]], [t for t in tracks if t.granule.name in names[2:]]
    sent = {}
    for case, own in (("A", first[comm.rank::comm.size]),
                      ("B", first[comm.rank::comm.size] + (extra if comm.rank == comm.size - 1 else []))):
        granules = [parse_name(n) for n in names] if case == "B" else [parse_name(n) for n in names[:2]]
        row = {g.name: i for i, g in enumerate(granules)}
        held = [(row[t.granule.name], t) for t in own]
        exchange.reset_sent()
        writer.merge_tracks(comm, granules, held, str(mpi_tmp_path / f"{case}.h5"), parameters="{}")
        sent[case] = dict(exchange.sent)
        summary = len(pickle.dumps(layout.describe(sorted(held, key=lambda rt: rt[0])), protocol=5))
        folder = len(pickle.dumps(([os.path.abspath(str(out))], []), protocol=5))
        own_bytes = 29 * len(held) + folder + summary
        with every_rank(comm):
            assert summary < 100_000 and sent[case]["calls"] <= 12, (summary, sent[case])
            assert sent[case]["bytes"] <= own_bytes + 16 * sent[case]["calls"], (sent[case], own_bytes)
    every = comm.allgather(sent)
    with every_rank(comm):
        for r, s in enumerate(every[:-1]):
            assert s["A"] == s["B"], (r, s)
        assert every[-1]["B"]["bytes"] > every[-1]["A"]["bytes"] + 32 * len(extra)


def test_outdir_without_manifest_is_read_a_share_per_rank(mpi_tmp_path, monkeypatch):
    """Without a manifest, no rank opens every per-beam file: each rank reads the attributes of its
    round-robin share (``outdir._attributes``) for merge, export and xover, and xover opens a share per
    rank (``spread_tracks``); the merged file and the table are the bytes of the folder with its
    manifest, the crossings the same rows, and the tracks xover lists those of one process; a
    second parameter set among the files is refused on every rank alike (exit status 2)."""
    import shutil

    import h5py
    import numpy as np
    from mpi4py import MPI

    from readatl06.export.writer import run_export
    from readatl06.merge.command import merge_outdir
    from readatl06.outputs import manifest, outdir
    from readatl06.xover import run as xover_run
    comm = MPI.COMM_WORLD
    d = mpi_tmp_path
    out = _outdir(comm, d)
    bare = d / "bare"
    if comm.rank == 0:
        shutil.copytree(out, bare)
        (bare / manifest.MAIN).unlink()
    comm.Barrier()
    n = len([p for p in os.listdir(bare) if outdir.BEAM_FILE_RE.fullmatch(p)])
    calls = {"attributes": 0, "tracks": 0}
    real_attributes, real_track = outdir._attributes, xover_run._file_track

    def attributes(path):
        calls["attributes"] += 1
        return real_attributes(path)

    def track(path):
        calls["tracks"] += 1
        return real_track(path)
    monkeypatch.setattr(outdir, "_attributes", attributes)
    monkeypatch.setattr(xover_run, "_file_track", track)
    share = len(range(comm.rank, n, comm.size))
    got = {}
    for name, src in (("with", out), ("bare", bare)):
        before = dict(calls)
        assert merge_outdir(comm, str(src), str(d / f"{name}.h5")) == 0
        assert run_export(comm, str(src), str(d / f"{name}.parquet")) == 0
        assert xover_run.run_xover(comm, str(src), str(d / f"x-{name}.h5")) == 0
        got[name] = (calls["attributes"] - before["attributes"], calls["tracks"] - before["tracks"])
    files = sorted(str(bare / p) for p in os.listdir(bare) if outdir.BEAM_FILE_RE.fullmatch(p))
    plan = xover_run.spread_tracks(comm, files)
    with every_rank(comm):
        assert plan == xover_run.list_tracks(str(bare)) and len(plan) == n and plan[0][4] > 0
        assert got["with"] == (0, share) and got["bare"] == (3 * share, share), (got, share, n)
        if comm.rank == 0:
            assert sha256(d / "with.h5") == sha256(d / "bare.h5")
            assert sha256(d / "with.parquet") == sha256(d / "bare.parquet")
            with h5py.File(d / "x-with.h5", "r") as a, h5py.File(d / "x-bare.h5", "r") as b:
                ga, gb = a["xovers"], b["xovers"]
                assert sorted(ga) == sorted(gb)
                assert all(np.array_equal(ga[k][()], gb[k][()]) for k in ga), sorted(ga)
                with h5py.File(files[0], "r+") as f:          # a second parameter set: refused on every rank
                    f.attrs["parameters"] = '{"other": 1}'
    comm.Barrier()
    assert merge_outdir(comm, str(bare), str(d / "mixed.h5")) == 2
    assert xover_run.run_xover(comm, str(bare), str(d / "x-mixed.h5")) == 2
    assert not (d / "mixed.h5").exists() and not (d / "x-mixed.h5").exists()
