"""Issue 23: the whole pipeline on 8 ranks (oversubscribed) is one rank's, byte for byte, and the
benches' byte counter (READATL06_TRAFFIC) adds up across ranks."""
import glob
import hashlib
import json
import os

import h5py
import pyarrow.parquet as pq

from conftest import run_cli
from readatl06.cli import main

SOUTH = "EPSG:3031"
BOX = ("-865000", "-855000", "-865000", "-855000")      # a 10 km box inside the Kamb box: tracks cross
OUTPUTS = ("reduced.h5", "merged.h5", "table.parquet", "xovers.h5")


def sha(path):
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def pipeline(d, ranks, env=None):
    """reduce --merge, merge OUTDIR, export OUTDIR, xover MERGED of ../granules in the new folder ``d``
    on ``ranks`` (None: no mpirun); {output: sha256}, the per-beam files by name. Every run is made in
    the same folder (xover records its source's absolute path), then renamed."""
    steps = [("reduce", "../granules", "-o", "out", "--merge", "reduced.h5", "--merge-memory", "0.05", "--no-progress"),
             ("merge", "out", "-o", "merged.h5", "--merge-memory", "0.05"),
             ("export", "out", "-o", "table.parquet"),
             ("xover", "reduced.h5", "-o", "xovers.h5")]
    d.mkdir()
    for step in steps:
        r = run_cli(*step, ranks=ranks, timeout=120, env=env, cwd=d)
        assert r.returncode == 0, (step[0], ranks, r.stderr[-2000:])
    beams = sorted(glob.glob(str(d / "out" / "*_gt??_[AD].h5")))
    return {**{name: sha(d / name) for name in OUTPUTS}, **{os.path.basename(p): sha(p) for p in beams}}


def test_pipeline_on_8_ranks_equals_one_rank_byte_for_byte(tmp_path):
    src = tmp_path / "granules"
    assert main(["synth", str(src), "--granules", "10", "--segments-per-beam", "300", "--segments", "10", "12",
                 "--bbox-xy", *BOX, "--crs", SOUTH]) == 0
    traffic = tmp_path / "traffic"
    one = pipeline(tmp_path / "run", None)
    (tmp_path / "run").rename(tmp_path / "one")
    eight = pipeline(tmp_path / "run", 8, env={"READATL06_TRAFFIC": str(traffic)})
    assert sorted(eight) == sorted(one) and len(one) > len(OUTPUTS) + 12
    assert eight == one

    # the outputs hold the data: an independent read of the per-beam files, the merged file, the table
    d = tmp_path / "run"
    per_beam = 0
    for p in glob.glob(str(d / "out" / "*_gt??_[AD].h5")):
        with h5py.File(p, "r") as f:
            per_beam += f["lat"].shape[0]
    with h5py.File(d / "merged.h5", "r") as f:
        merged = sum(f[f"{b}/{w}/lat"].shape[0] for b in f if b.startswith("gt") for w in f[b])
        assert f["granules/name"].shape[0] == 10
    assert per_beam == merged > 1000
    assert pq.ParquetFile(d / "table.parquet").metadata.num_rows == merged
    with h5py.File(d / "xovers.h5", "r") as f:
        assert f["xovers/x"].shape[0] > 0

    # per-beam files of two granules, same beam and direction: their variables' attributes are one
    # shared dict each (memory per rank flat in the granules), equal to h5py's own read
    from readatl06.outputs.outdir import TrackFile
    a, b = sorted(glob.glob(str(d / "out" / "*_gt1l_[AD].h5")))[:2]
    ta, tb = TrackFile.open(a), TrackFile.open(b)
    assert ta.granule != tb.granule and sorted(ta.var_attrs) == sorted(tb.var_attrs)
    with h5py.File(b, "r") as f:
        for name, attrs in tb.var_attrs.items():
            assert attrs is ta.var_attrs[name]
            assert sorted(attrs) == sorted(k for k in f[name].attrs if k not in ("DIMENSION_LIST", "REFERENCE_LIST"))
            assert str(attrs["units"]) == str(f[name].attrs["units"].decode() if isinstance(
                f[name].attrs["units"], bytes) else f[name].attrs["units"])

    # the byte counter of the last command (xover: READATL06_TRAFFIC is overwritten by each command)
    reports = [json.loads((traffic / f"rank-{r}.json").read_text()) for r in range(8)]
    assert all(x["rank"] == r and x["size"] == 8 and x["maxrss_kib"] > 10_000 for r, x in enumerate(reports))
    ops = {op for x in reports for op in x["ops"]}
    assert {"Alltoallv", "Gatherv", "Allreduce"} <= ops and "allgather" not in ops    # arrays, no pickled tables

    def total(op, what):
        return [x["ops"].get(op, {}).get(what, 0) for x in reports]
    for op in ops & {"allgather", "Allgather", "Allgatherv"}:      # everybody receives what everybody sent
        assert set(total(op, "received")) == {sum(total(op, "sent"))}, op
    for op in ops & {"gather", "Gatherv"}:             # rank 0 receives what everybody sent
        assert total(op, "received")[0] == sum(total(op, "sent")) and not any(total(op, "received")[1:]), op
    for op in ops & {"bcast", "Bcast", "Alltoallv", "Alltoall", "p2p", "scatter"}:   # what is sent is received
        assert sum(total(op, "sent")) * (7 if op in ("bcast", "Bcast") else 1) == sum(total(op, "received")), op


def test_streamed_manifest_equals_the_one_built_in_memory(tmp_path):
    """consolidate(keep=False), the end of a run: the records stream from the part files; the manifest,
    the rejected lines and the removed parts are those of consolidate(keep=True), byte for byte."""
    from readatl06.outputs import manifest

    def rec(i, run="r1", rank=0):
        return {"granule": f"g{i:05d}", "status": "done", "run": run, "rank": rank, "started": f"t{i}",
                "outputs": [f"g{i:05d}_gt1l_A.h5"], "sizes": {f"g{i:05d}_gt1l_A.h5": i}}
    folders = []
    for keep in (True, False):
        d = tmp_path / f"keep{keep}"
        d.mkdir()
        main = [json.dumps(rec(i, "r0"), sort_keys=True) for i in range(50)]
        (d / manifest.MAIN).write_text("\n".join(main[:20] + ["not json {"] + main[20:]) + "\n")
        for rank in (0, 1, 10):      # rank 10's part holds records already consolidated (a kill before cleanup)
            lines = [rec(i, "r1", rank) for i in range(100 * rank, 100 * rank + 30)] if rank != 10 \
                else [rec(i, "r0") for i in range(5)] + [rec(2000, "r1", 10), [1, 2]]
            (d / manifest.PART.format(rank=rank)).write_text("".join(json.dumps(x, sort_keys=True) + "\n" for x in lines))
        notes = []
        out = manifest.consolidate(str(d), [rec(3000, "r1", 1), rec(0, "r1", 0)], notes=notes, keep=keep)
        assert (out is None) == (not keep) and len(notes) == 2
        assert not manifest.part_paths(str(d))
        folders.append(d)
    (a, b) = folders
    assert (a / manifest.MAIN).read_bytes() == (b / manifest.MAIN).read_bytes()
    assert (a / manifest.REJECTED).read_bytes() == (b / manifest.REJECTED).read_bytes()
    records = [json.loads(x) for x in (b / manifest.MAIN).read_text().splitlines()]
    assert len(records) == 50 + 30 + 30 + 1 + 1 and len({(r["run"], r["granule"], r["started"], r["rank"]) for r in records}) == len(records)
    assert records[:50] == [rec(i, "r0") for i in range(50)]


def test_the_report_keeps_the_first_lines_in_granule_order_and_counts_the_rest(monkeypatch):
    """A run where every granule has a note (or fails) holds no text per granule: each rank's tally
    keeps the first LINES lines, rank 0 prints the first LINES of all and how many more there were."""
    from readatl06.reduce import tally as tally_mod
    monkeypatch.setattr(tally_mod, "LINES", 3)
    ranks = [tally_mod.Tally(), tally_mod.Tally()]
    every = []
    for i in range(40):                                  # granules g00.. dealt to the ranks in turns
        name = f"g{i:02d}"
        record = {"granule": name, "status": "failed" if i % 3 == 0 else "done", "points": 1, "error": f"e{i}",
                  "notes": [f"n{i}a", f"n{i}b"]}
        ranks[i % 2].add(i, record)
        every += ([f"FAILED e{i}"] if i % 3 == 0 else []) + [f"note {name}: n{i}a", f"note {name}: n{i}b"]
    assert all(len(t.lines) <= 2 * 3 for t in ranks)
    combined = tally_mod.Tally.combined(ranks)
    shown, more = combined.shown()
    assert shown == every[:3] == ["FAILED e0", "note g00: n0a", "note g00: n0b"]
    assert more == len(every) - 3
    assert combined.count == {"done": 26, "empty": 0, "failed": 14}
