"""Benchmark of the merged file (issue 11): ``merge_tracks`` against a raw collective write of the
same bytes, its scaling over ranks, and its peak memory per rank against the number of granules.

    . scripts/mpienv.sh
    mpirun -n 2 python bench/bench_merge.py                      # one run: 48 granules x 12 tracks x ~5000 points
    mpirun -n 2 python bench/bench_merge.py --source files       # merge OUTDIR: the points stream from per-beam files
    python bench/bench_merge.py --scaling 1 2 4                  # one mpirun per rank count; efficiency table
    python bench/bench_merge.py --memory-scan 8 16 32 --merge-memory 64 --points 22000   # peak RSS per rank
    python bench/bench_merge.py --summarize /tmp/bm1.json /tmp/bm2.json                 # one table from --json files
    python bench/bench_merge.py --scaling 1 2 --level 4          # the same at deflate level 4
    python bench/bench_merge.py --vs-reduce 16 --configs zlib:4 zlib:1   # reduce against reduce --merge, 2 ranks

One run (under ``mpirun -n N``): every rank builds in memory the synthetic Tracks (all OUTPUT_VARS
with their table dtypes, smooth lat/lon, heights smooth + noise, realistic flags and fill values) of
the (granule, beam, direction) tracks ``--assign`` gives it: ``lpt`` whole granules by
``schedule.assign`` as ``reduce --merge`` does; ``rr`` round robin; ``contiguous`` consecutive granule
rows; ``track`` per-beam tracks by size as ``merge OUTDIR`` does. ``--empty`` makes that fraction of
tracks absent. ``--source files`` writes the tracks to per-beam files first (``write_tracks``, not
timed) and merges TrackFiles, so the merge reads its slices back. Three writes then take turns
``--repeat`` times (barrier before and after each; the best time of each counts):

* merge       ``merge_tracks`` (``--merge-memory``) -> one file;
* raw gzip    the floor: the same datasets (lengths, dtypes, fill values, ``merge.layout.storage``:
              chunks ``chunk_for(n)``, deflate level ``GZIP_LEVEL`` + shuffle with HDF5's zlib,
              or contiguous for ``--compression none``), every rank writing the same
              run of whole chunks as the merge, in ONE collective call per dataset
              (``write_selection``), from buffers holding those points in file order, built
              before the clock starts;
* raw         the same, contiguous and uncompressed, for reference.

``--level N`` changes both the merge and the floor (``--zlib`` is accepted and changes nothing: both
deflate with zlib since issue 22; before it, ``--zlib --level 4`` was the merged file before ISA-L; for before/after
figures). ``--vs-reduce G`` times whole commands instead: ``mpirun -n --ranks readatl06 reduce`` and
``reduce --merge`` on G synthetic granules (``readatl06 synth --segments-per-beam``), alternating,
for each ``--configs`` entry (``zlib:4 zlib:1`` ...), with the merged file's size and the
load average (issue 11's target: ``reduce --merge`` <= 1.5x ``reduce`` at 2 ranks).

Rank 0 prints ranks, bytes (uncompressed), seconds, MB/s and merge bandwidth / raw gzip bandwidth
against ``--target`` (0.70), then reads the merged file back serially and checks every dataset against
the tracks concatenated in granule order (``--no-verify`` skips it; exit status 1 on a mismatch).

``--scaling R...`` launches one run per rank count (``mpirun -n R``, more ranks than cores are
oversubscribed) and prints merge and floor times with the strong-scaling efficiency T1 / (R TR).
``--memory-scan G...`` measures, for each number of granules, the peak resident memory of every rank
(``resource.getrusage``, ru_maxrss) of a fresh ``mpirun -n --ranks`` process that merges with
``--merge-memory``: ``outdir`` (``merge OUTDIR`` from per-beam files written beforehand by another
process) and ``reduce`` (tracks made one granule at a time, written to per-beam files and kept in
``HeldTracks`` as ``reduce --merge`` does, then merged). It prints the peak, the peak minus the
process's peak before the merge (imports, MPI), the rounds and the largest round buffer.
"""
import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from readatl06.merge import writer as merge
from readatl06.merge import command as merge_command
from readatl06.outputs.outdir import TrackFile
from readatl06.parallel import schedule  # noqa: E402
from readatl06.merge import layout as ml  # noqa: E402
from readatl06.merge import redistribute as rd  # noqa: E402
from readatl06.atl06.beams import BEAM_INDEX  # noqa: E402
from readatl06.atl06.names import parse_name  # noqa: E402
from readatl06.atl06.track import Track  # noqa: E402
from readatl06.atl06.schema import ATLAS_SDP_GPS_EPOCH, OUTPUT_VARS  # noqa: E402
from readatl06.atl06.gpstime import gps_to_cf_seconds, gps_to_decimal_year  # noqa: E402
from readatl06.atl06.track import orbit_id  # noqa: E402

HERE = os.path.abspath(__file__)
GROUPS = merge.GROUPS
GI = merge.GI            # the column merge_tracks adds to every group
F4_FILL = float(np.finfo(np.float32).max)
F8_FILL = float(np.finfo(np.float64).max)
# _FillValue as the ATL06 source declares it (variables computed by readatl06 have none).
SOURCE_FILL = {"lon": F8_FILL, "lat": F8_FILL, "h_elv": F4_FILL, "s_elv": F4_FILL, "h_rb": F4_FILL,
               "s_fg": 127, "snr": F4_FILL, "q_flg": 127, "f_sn": 127, "dac": F4_FILL,
               "tide_earth": F4_FILL, "tide_load": F4_FILL, "tide_ocean": F4_FILL, "tide_pole": F4_FILL}


# ----------------------------------------------------------------------------- synthetic input
def granule_names(n):
    """``n`` GranuleNames, 97 minutes apart from 2019-01-01, sorted as docs/merge.md orders them."""
    t0 = dt.datetime(2019, 1, 1)
    names = []
    for i in range(n):
        t = t0 + dt.timedelta(minutes=97 * i)
        rgt = (i * 37) % 1387 + 1
        names.append(parse_name(f"ATL06_{t:%Y%m%d%H%M%S}_{rgt:04d}02{10 + i % 3:02d}_006_01.h5"))
    return sorted(names)


def track_counts(n_granules, points, seed, empty=0.0):
    """Points per (granule row, group k): mean ``points``, 0.4x..1.6x, a fraction ``empty`` absent."""
    rng = np.random.default_rng([seed, 7919])
    counts = np.rint(points * rng.uniform(0.4, 1.6, (n_granules, len(GROUPS)))).astype(np.int64)
    counts[rng.random(counts.shape) < empty] = 0
    return counts


def make_track(g, row, k, n, seed):
    """One Track of ``n`` points, deterministic in (seed, row, k); values shaped like reduced ATL06."""
    beam, direction = GROUPS[k]
    rng = np.random.default_rng([seed, row, k])
    asc = direction == "ascending"
    step = np.ones(n, np.int64)
    gaps = rng.random(n) < 0.02                           # cloud / quality gaps of 2..60 segments
    step[gaps] = rng.integers(2, 60, int(gaps.sum()))
    if n:
        step[0] = 0
    seg = np.cumsum(step)
    x = seg * 20.0                                        # along-track distance, m
    lat = rng.uniform(-86.0, -72.0) + (1.0 if asc else -1.0) * 0.9 * x / 111_000.0 + 0.02 * np.sin(x / 4e5)
    lat = np.clip(lat, -88.0, -60.0)
    lon = rng.uniform(-180, 180) + 0.35 * x / (111_000.0 * np.cos(np.radians(lat))) + 0.01 * np.sin(x / 9e4)
    lon = (lon + 180.0) % 360.0 - 180.0
    t_sec = ATLAS_SDP_GPS_EPOCH + 31_536_000.0 + row * 5820.0 + 600.0 * (k % 2) + x / 6900.0
    surf = 2000.0 + 900.0 * np.sin(x / 3e5 + rng.uniform(0, 6.3)) + 25.0 * np.sin(x / 7e3)
    tide_ocean = (0.6 * np.sin(x / 2e5 + row)).astype(np.float32)
    tide_ocean[lat < -80.0] = F4_FILL                     # no ocean tide inland: fill values at kept points
    data = {
        "lon": lon, "lat": lat, "h_elv": surf + rng.normal(0.0, 0.12, n),
        "s_elv": np.abs(rng.normal(0.04, 0.03, n)),
        "t_sec": t_sec, "t_year": gps_to_decimal_year(t_sec), "time": gps_to_cf_seconds(t_sec),
        "h_rb": np.abs(rng.normal(0.12, 0.06, n)),
        "s_fg": rng.choice(np.array([0, 1, 2, 3], np.int8), n, p=[0.9, 0.05, 0.03, 0.02]),
        "snr": np.where(rng.random(n) < 0.93, 0.0, rng.exponential(0.01, n)),
        "q_flg": np.zeros(n, np.int8),
        "f_sn": np.where(rng.random(n) < 0.85, -1, rng.integers(0, 6, n)),
        "dac": 0.08 * np.sin(x / 1e6 + row),
        "tide_earth": 0.25 * np.sin(x / 8e5 + 0.3 * row),
        "tide_load": 0.02 * np.sin(x / 3e5 + row),
        "tide_ocean": tide_ocean,
        "tide_pole": np.full(n, 0.003 * np.sin(row), np.float32) + np.float32(1e-5) * np.arange(n, dtype=np.float32),
        "segment_id": int(rng.integers(100_000, 900_000)) + seg,
        "rgt": np.full(n, g.rgt), "cycle": np.full(n, g.cycle),
        "orbit": np.full(n, orbit_id(g.cycle, g.rgt, g.region, int(g.release), int(g.revision),
                                     BEAM_INDEX[beam], 0 if asc else 1)),
    }
    var_attrs = {}
    for v in OUTPUT_VARS:
        data[v.name] = np.ascontiguousarray(data[v.name], dtype=v.dtype)
        a = {"units": v.units, "long_name": v.long_name,
             "source": v.source if v.source.startswith("/") else f"/{beam}/land_ice_segments/{v.source}"}
        if v.name in SOURCE_FILL:
            a["_FillValue"] = np.asarray(SOURCE_FILL[v.name]).astype(v.dtype)[()]
        var_attrs[v.name] = a
    attrs = {"granule": g.name, "beam": beam, "direction": direction, "rgt": np.int16(g.rgt),
             "cycle": np.int8(g.cycle), "segment": np.int8(g.region), "release": g.release}
    return Track(g, beam, direction, data, var_attrs, attrs)


def assignment(mode, counts, nranks):
    """[(row, k)] of the non-empty tracks, per rank."""
    ng, nk = counts.shape
    if mode == "track":
        keys = [(r, k) for r in range(ng) for k in range(nk) if counts[r, k]]
        parts = schedule.assign([int(counts[r, k]) for r, k in keys], nranks)
        return [[keys[i] for i in p] for p in parts]
    if mode == "lpt":
        rows = schedule.assign([int(c) for c in counts.sum(axis=1)], nranks)
    elif mode == "rr":
        rows = [list(range(r, ng, nranks)) for r in range(nranks)]
    else:
        edges = np.linspace(0, ng, nranks + 1).round().astype(int)
        rows = [list(range(edges[r], edges[r + 1])) for r in range(nranks)]
    return [[(r, k) for r in rr for k in range(nk) if counts[r, k]] for rr in rows]


# ----------------------------------------------------------------------------- the floor
def layout(comm, held):
    """{k: [(name, dtype, fill)]}: the datasets merge_tracks creates in group k, in its order."""
    meta = ml.combine(comm.allgather(ml.describe(held)))
    out = {}
    for k, (beam, direction) in enumerate(GROUPS):
        items = sorted(meta.get((beam, direction), {}).items(), key=lambda kv: (kv[1][0], kv[0]))
        out[k] = [(name, dtype, ml.fill_for(dtype, attrs)) for name, (_, dtype, attrs) in items]
        out[k].append((GI, "<i4", None))
    return out


def runs(comm, counts):
    """Per group (total, chunk, this rank's run [a, b)): the merge's split of one round of whole chunks."""
    out = []
    for k in range(len(GROUPS)):
        rows = np.flatnonzero(counts[:, k])
        gp = rd.GroupPlan(rows, counts[rows, k], np.zeros(len(rows), np.int64), comm.size, 1, 1 << 62)
        bounds = gp.bounds(0, gp.total) if gp.total else np.zeros(comm.size + 1, np.int64)
        out.append((gp.total, gp.chunk, int(bounds[comm.rank]), int(bounds[comm.rank + 1])))
    return out


def floor_buffers(granules, counts, seed, lay, spans):
    """{k: {name: array}}: the points of this rank's run of every dataset, in file order (any rank can
    make any track: they are deterministic)."""
    bufs = {}
    for k in range(len(GROUPS)):
        _, _, a, b = spans[k]
        starts = np.concatenate([[0], np.cumsum(counts[:, k])])
        parts = {name: [] for name, _, _ in lay[k]}
        for r in range(counts.shape[0]):
            lo, hi = max(a, starts[r]), min(b, starts[r + 1])
            if hi <= lo:
                continue
            t = make_track(granules[r], r, k, int(counts[r, k]), seed)
            for name, dtype, _ in lay[k]:
                v = np.full(len(t), r, np.int32) if name == GI else np.asarray(t.data[name], dtype)
                parts[name].append(v[lo - starts[r]:hi - starts[r]])
        bufs[k] = {name: np.concatenate(p) if p else np.zeros(0, dtype) for (name, dtype, _), p in
                   zip(lay[k], parts.values())}
    return bufs


def write_selection(dset, blocks, buf):
    """(memory space, file space as the union of ``blocks``, contiguous buffer, collective dxpl)."""
    fspace = dset.id.get_space()
    fspace.select_none()
    for start, n in blocks:
        fspace.select_hyperslab((start,), (n,), op=h5py.h5s.SELECT_OR)
    mspace = h5py.h5s.create_simple((max(buf.size, 1),))
    if buf.size == 0:
        mspace.select_none()
        buf = np.zeros(1, dset.dtype)
    dxpl = h5py.h5p.create(h5py.h5p.DATASET_XFER)
    dxpl.set_dxpl_mpio(h5py.h5fd.MPIO_COLLECTIVE)
    return mspace, fspace, np.ascontiguousarray(buf), dxpl


def raw_write(comm, path, lay, bufs, spans, compression="deflate"):
    """The same datasets as merge_tracks (``merge.layout.storage``: chunks, deflate level, shuffle, or
    contiguous for ``none``; HDF5's own zlib); every rank writes its run of whole chunks, collectively
    (parallel HDF5's collective filtered write: the merge's way before issue 22)."""
    with h5py.File(path, "w", driver="mpio", comm=comm) as f:
        for k, (beam, direction) in enumerate(GROUPS):
            grp = f.require_group(f"{beam}/{direction}")
            n, chunk, a, b = spans[k]
            kw = ml.storage(n, chunk, compression)
            for name, dtype, fill in lay[k]:
                d = grp.create_dataset(name, (n,), dtype=dtype, fillvalue=fill, **kw)
                if n:   # every rank takes part, also with an empty run (docs/parallel-hdf5.md: empty-slice hang)
                    mspace, fspace, buf, dxpl = write_selection(d, [(a, b - a)] if b > a else [], bufs[k][name])
                    d.id.write(mspace, fspace, buf, dxpl=dxpl)


def timed(comm, fn):
    """Seconds of ``fn()`` on the slowest rank, with a barrier before and after."""
    comm.barrier()
    t0 = time.perf_counter()
    fn()
    comm.barrier()
    return max(comm.allgather(time.perf_counter() - t0))


def remove(comm, *paths):
    comm.barrier()
    for p in paths:
        if comm.rank == 0 and os.path.exists(p):
            os.remove(p)
    comm.barrier()


# ----------------------------------------------------------------------------- check and report
def verify(path, granules, counts, seed, lay, compression="deflate"):
    """Rank 0, serial h5py: problems found comparing the merged file with the tracks in granule order."""
    problems = []
    with h5py.File(path, "r") as f:
        if [x.decode() for x in f["granules/name"][()]] != [g.name for g in granules]:
            problems.append("/granules/name differs from the granule list")
        for k, (beam, direction) in enumerate(GROUPS):
            tracks = [(r, make_track(granules[r], r, k, int(counts[r, k]), seed))
                      for r in range(len(granules)) if counts[r, k]]
            for name, dtype, _ in lay[k]:
                parts = [np.full(len(t), r, np.int32) if name == GI else t.data[name] for r, t in tracks]
                want = (np.concatenate(parts) if parts else np.zeros(0)).astype(dtype, copy=False)
                d = f[f"{beam}/{direction}/{name}"]
                got = d[()]
                where = f"/{beam}/{direction}/{name}"
                if d.dtype != want.dtype or got.shape != want.shape or got.tobytes() != want.tobytes():
                    problems.append(f"{where}: {d.dtype}{got.shape} != {want.dtype}{want.shape} or values differ")
                if name != GI and d.attrs.get("units") is None:
                    problems.append(f"{where}: no units attribute")
                layout_want = (("gzip", True, (rd.chunk_for(want.size),)) if want.size and compression == "deflate"
                               else (None, False, None))
                if (d.compression, d.shuffle, d.chunks) != layout_want:
                    problems.append(f"{where}: layout {d.compression} {d.shuffle} {d.chunks}")
    return problems


def table(rows):
    head = (f"{'ranks':>5} {'assign':>10} {'source':>7} {'MB':>7} {'merge s':>8} {'raw gz s':>8} {'raw s':>7} "
            f"{'merge MB/s':>10} {'raw gz MB/s':>11} {'merge/raw gz':>12} {'rounds':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        mb = r["bytes"] / 1e6
        lines.append(f"{r['ranks']:>5} {r['assign']:>10} {r.get('source', 'memory'):>7} {mb:>7.1f} "
                     f"{r['merge_s']:>8.3f} {r['raw_gzip_s']:>8.3f} {r['raw_nogzip_s']:>7.3f} "
                     f"{mb / r['merge_s']:>10.1f} {mb / r['raw_gzip_s']:>11.1f} {100 * r['ratio']:>11.1f}% "
                     f"{r.get('rounds', 0):>6}")
    return "\n".join(lines)


def scaling_table(rows):
    t1 = {key: next((r[key] for r in rows if r["ranks"] == 1), None) for key in ("merge_s", "raw_gzip_s")}
    head = (f"{'ranks':>5} {'merge s':>8} {'raw gz s':>8} {'merge/raw gz':>12} {'merge eff':>9} {'raw gz eff':>10}")
    lines = [head, "-" * len(head)]
    for r in rows:
        eff = {key: (t1[key] / (r["ranks"] * r[key]) if t1[key] else float("nan")) for key in t1}
        lines.append(f"{r['ranks']:>5} {r['merge_s']:>8.3f} {r['raw_gzip_s']:>8.3f} {100 * r['ratio']:>11.1f}% "
                     f"{eff['merge_s']:>9.2f} {eff['raw_gzip_s']:>10.2f}")
    return "\n".join(lines)


def _env():
    env = dict(os.environ)
    for var in [v for v in env if v.startswith(("OMPI_COMM_WORLD", "PMIX_", "PMI_"))]:
        env.pop(var)
    return env


def _launch(ranks, args, timeout=3600):
    cmd = ["mpirun", "-n", str(ranks), sys.executable, HERE, *map(str, args)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_env())
    if r.returncode:
        sys.stderr.write(r.stdout + r.stderr)
        raise SystemExit(f"bench_merge: {' '.join(cmd)} failed ({r.returncode})")
    return r


# ----------------------------------------------------------------------------- scaling and memory drivers
def scaling(args, passthrough):
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_merge_scaling_") as tmp:
        for n in args.scaling:
            out = os.path.join(tmp, f"r{n}.json")
            _launch(n, [*passthrough, "--json", out])
            with open(out) as fh:
                rows.append(json.load(fh))
    print(f"bench_merge --scaling: {rows[0]['granules']} granules, {rows[0]['points']} points, "
          f"{rows[0]['bytes'] / 1e6:.1f} MB, source {rows[0]['source']}, best of {args.repeat}, "
          f"{os.cpu_count()} cores (more ranks are oversubscribed)")
    print(table(rows))
    print(scaling_table(rows))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    return 0


def make_files(comm, outdir, granules, counts, seed):
    """Every rank writes the per-beam files of its share of the tracks (write_tracks)."""
    from readatl06.outputs.trackfile import write_tracks
    if comm.rank == 0:
        os.makedirs(outdir, exist_ok=True)
    comm.barrier()
    keys = [(r, k) for r in range(len(granules)) for k in range(len(GROUPS)) if counts[r, k]]
    out = []
    for r, k in keys[comm.rank::comm.size]:
        t = make_track(granules[r], r, k, int(counts[r, k]), seed)
        out.append((r, TrackFile.of(t, write_tracks([t], outdir, overwrite=True)[0])))
    comm.barrier()
    return out


def rss_worker(args):
    """One fresh process per rank: the merge's peak RSS (``outdir`` or ``reduce``) on rank 0's line."""
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    granules = granule_names(args.granules)
    counts = track_counts(args.granules, args.points, args.seed, args.empty)
    out = os.path.join(args.rss_worker, "merged.h5")
    comm.barrier()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    if args.rss_mode == "outdir":
        merge_command.merge_outdir(comm, os.path.join(args.rss_worker, "tracks"), out, overwrite=True, memory=args.merge_memory)
    else:
        from readatl06.outputs.trackfile import write_tracks
        tracks_dir = os.path.join(args.rss_worker, "tracks")
        if comm.rank == 0:
            os.makedirs(tracks_dir, exist_ok=True)
        comm.barrier()
        held = rd.HeldTracks(tracks_dir, True, args.merge_memory)
        for r in schedule.assign([int(c) for c in counts.sum(axis=1)], comm.size)[comm.rank]:
            tracks = [make_track(granules[r], r, k, int(counts[r, k]), args.seed)
                      for k in range(len(GROUPS)) if counts[r, k]]
            write_tracks(tracks, tracks_dir, overwrite=True)
            held.extend((r, t) for t in tracks)
            del tracks
        merge.merge_tracks(comm, granules, list(held), out, parameters="{}", memory=args.merge_memory)
    seconds = max(comm.allgather(time.perf_counter() - t0))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rows = comm.gather({"before_kb": before, "peak_kb": peak, "largest_buffer": merge.last_stats["largest_buffer"],
                        "held_bytes": merge.last_stats["held_bytes"], "rounds": merge.last_stats["rounds"]}, root=0)
    if comm.rank == 0:
        print("RESULT " + json.dumps({"ranks": comm.size, "granules": args.granules, "mode": args.rss_mode,
                                      "seconds": seconds, "points": int(counts.sum()), "per_rank": rows}))
    return 0


def memory_scan(args):
    lines, results = [], []
    head = (f"{'mode':>7} {'granules':>8} {'points':>9} {'rounds':>6} {'peak MB (max rank)':>18} "
            f"{'merge MB (peak - before)':>24} {'largest buffer MB':>17} {'held MB':>7} {'s':>6}")
    for mode in args.rss_modes:
        for g in args.memory_scan:
            tmp = tempfile.mkdtemp(prefix="bench_merge_rss_", dir=args.out)
            try:
                common = ["--granules", g, "--points", args.points, "--seed", args.seed, "--empty", args.empty]
                if mode == "outdir":
                    _launch(args.ranks, [*common, "--make-files", os.path.join(tmp, "tracks")])
                r = _launch(args.ranks, [*common, "--rss-worker", tmp, "--rss-mode", mode,
                                         "--merge-memory", args.merge_memory])
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            res = json.loads(next(x for x in r.stdout.splitlines() if x.startswith("RESULT "))[7:])
            results.append(res)
            pr = res["per_rank"]
            peak = max(x["peak_kb"] for x in pr) / 1024
            delta = max(x["peak_kb"] - x["before_kb"] for x in pr) / 1024
            buf = max(x["largest_buffer"] for x in pr) / 2 ** 20
            held = max(x["held_bytes"] for x in pr) / 2 ** 20
            lines.append(f"{mode:>7} {g:>8} {res['points']:>9} {pr[0]['rounds']:>6} {peak:>18.1f} {delta:>24.1f} "
                         f"{buf:>17.1f} {held:>7.1f} {res['seconds']:>6.2f}")
    print(f"bench_merge --memory-scan: {args.ranks} ranks, --merge-memory {args.merge_memory} MB, "
          f"~{args.points} points per track, 12 tracks per granule; MB = 2^20 bytes")
    print(head + "\n" + "-" * len(head) + "\n" + "\n".join(lines))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=1)
    return 0


# ----------------------------------------------------------------------------- reduce against reduce --merge
def cli_worker(config, argv):
    """``readatl06 ARGV`` with the merged file's deflate level set by ``config`` (``zlib:N``; the merged
    file is deflated with zlib since issue 22, so ``isal:N`` is the same as ``zlib:N`` now)."""
    _lib, level = config.split(":")
    ml.GZIP_LEVEL = int(level)
    from readatl06.cli import main as cli_main
    return cli_main(argv)


def vs_reduce(args):
    """Wall of ``mpirun -n R readatl06 reduce`` and of ``... reduce --merge`` (per-beam files and the
    merged file) on ``--vs-reduce`` synthetic granules, alternating, ``--repeat`` times; the best of
    each and their ratio per configuration, the merged file's size, and the load average."""
    tmp = args.out or tempfile.mkdtemp(prefix="bench_merge_vs_")
    src = os.path.join(tmp, "in")
    if not os.path.isdir(src):
        subprocess.run([sys.executable, "-m", "readatl06", "synth", src, "--granules", str(args.vs_reduce),
                        "--segments-per-beam", str(args.segments_per_beam)], check=True, capture_output=True)

    def run(config, merged):
        out = os.path.join(tmp, "out")
        shutil.rmtree(out, ignore_errors=True)
        extra = ["--merge", merged] if merged else []
        if merged and os.path.exists(merged):
            os.remove(merged)
        cmd = ["mpirun", "-n", str(args.ranks), sys.executable, HERE, "--cli-worker", config,
               "reduce", src, "-o", out, "--no-progress", *extra]
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, env=_env())
        t = time.perf_counter() - t0
        if r.returncode:
            raise SystemExit(f"bench_merge: {' '.join(cmd)} failed:\n{r.stderr[-2000:]}")
        return t, (os.path.getsize(merged) if merged else 0), os.getloadavg()[0]

    walls = {"reduce": []} | {c: [] for c in args.configs}
    sizes, loads = {}, []
    for _ in range(args.repeat):
        t, _, load = run(args.configs[0], None)
        walls["reduce"].append(t)
        loads.append(load)
        for c in args.configs:
            t, sizes[c], load = run(c, os.path.join(tmp, "merged.h5"))
            walls[c].append(t)
            loads.append(load)
    base = min(walls["reduce"])
    print(f"bench_merge --vs-reduce: {args.vs_reduce} synthetic granules (--segments-per-beam "
          f"{args.segments_per_beam}), {args.ranks} ranks, best of {args.repeat} (walls of whole mpirun "
          f"commands); load average after each run {min(loads):.2f}..{max(loads):.2f}, {os.cpu_count()} cores")
    print(f"{'command':>24} {'best s':>7} {'median s':>8} {'best/reduce':>11} {'merged MB':>9}")
    print(f"{'reduce':>24} {base:>7.2f} {np.median(walls['reduce']):>8.2f} {1:>11.2f} {'':>9}")
    for c in args.configs:
        print(f"{'reduce --merge ' + c:>24} {min(walls[c]):>7.2f} {np.median(walls[c]):>8.2f} "
              f"{min(walls[c]) / base:>11.2f} {sizes[c] / 1e6:>9.1f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"walls": walls, "sizes": sizes, "loads": loads, "granules": args.vs_reduce,
                       "ranks": args.ranks}, fh, indent=1)
    if not args.out:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


# ----------------------------------------------------------------------------- main
def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--granules", type=int, default=48)
    ap.add_argument("--points", type=int, default=5000, help="mean points per track (granule x beam x direction)")
    ap.add_argument("--empty", type=float, default=0.0, help="fraction of tracks absent (0 points)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--assign", choices=("lpt", "rr", "contiguous", "track"), default="lpt")
    ap.add_argument("--source", choices=("memory", "files"), default="memory",
                    help="memory: Tracks held by the ranks (reduce --merge); files: per-beam files (merge OUTDIR)")
    ap.add_argument("--merge-memory", type=float, default=merge.DEFAULT_MEMORY_MB, metavar="MB")
    ap.add_argument("--compression", choices=("deflate", "none"), default="deflate",
                    help="of the merged file and the floor (raw is always none)")
    ap.add_argument("--level", type=int, default=None,
                    help=f"deflate level of the merged file and the floor (default {ml.GZIP_LEVEL})")
    ap.add_argument("--zlib", action="store_true", help="kept for older command lines: the merge and the floor "
                    "deflate with zlib since issue 22")
    ap.add_argument("--vs-reduce", type=int, metavar="G", help="wall of `reduce` against `reduce --merge` on G "
                    "synthetic granules (readatl06 synth) under mpirun -n --ranks, for each of --configs")
    ap.add_argument("--segments-per-beam", type=int, default=60000, help="of --vs-reduce's granules")
    ap.add_argument("--configs", nargs="+", default=["zlib:4", "zlib:1"], metavar="LIB:LEVEL",
                    help="--vs-reduce: merged-file deflate level as zlib:N")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of the three writes; the best of each counts")
    ap.add_argument("--out", default=None, help="folder for the files (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the last merged and raw files")
    ap.add_argument("--json", default=None, help="write the figures to this file")
    ap.add_argument("--no-verify", dest="verify", action="store_false")
    ap.add_argument("--target", type=float, default=0.70, help="merge / raw gzip bandwidth to reach")
    ap.add_argument("--summarize", nargs="+", metavar="JSON", help="print one table from earlier --json files")
    ap.add_argument("--scaling", nargs="+", type=int, metavar="R", help="one run per rank count; efficiency table")
    ap.add_argument("--memory-scan", nargs="+", type=int, metavar="G", help="peak RSS per rank for these granule counts")
    ap.add_argument("--ranks", type=int, default=2, help="ranks of --memory-scan and --vs-reduce")
    ap.add_argument("--rss-modes", nargs="+", choices=("outdir", "reduce"), default=["outdir", "reduce"])
    ap.add_argument("--make-files", metavar="DIR", help=argparse.SUPPRESS)
    ap.add_argument("--rss-worker", metavar="DIR", help=argparse.SUPPRESS)
    ap.add_argument("--rss-mode", default="outdir", help=argparse.SUPPRESS)
    return ap, ap.parse_args(argv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--cli-worker"]:     # mpirun -n R bench_merge.py --cli-worker LIB:LEVEL readatl06 args ...
        return cli_worker(argv[1], argv[2:])
    ap, args = parse(argv)
    if args.level is not None:
        ml.GZIP_LEVEL = args.level
    if args.vs_reduce:
        return vs_reduce(args)
    if args.summarize:
        rows = []
        for p in args.summarize:
            with open(p) as fh:
                got = json.load(fh)
            rows.extend(got if isinstance(got, list) else [got])
        print(table(rows))
        return 0
    if args.scaling:
        skip = {"--scaling", "--json"}
        passthrough, i = [], 0
        while i < len(argv):
            if argv[i] in skip:
                i += 1
                while i < len(argv) and not argv[i].startswith("--"):
                    i += 1
                continue
            passthrough.append(argv[i])
            i += 1
        return scaling(args, passthrough)
    if args.memory_scan:
        return memory_scan(args)
    if args.rss_worker:
        return rss_worker(args)

    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    granules = granule_names(args.granules)
    counts = track_counts(args.granules, args.points, args.seed, args.empty)
    if args.make_files:
        make_files(comm, args.make_files, granules, counts, args.seed)
        return 0
    if not h5py.get_config().mpi:
        if comm.rank == 0:
            print("bench_merge: h5py has no MPI support; nothing to compare", file=sys.stderr)
        return 2
    made_tmp = args.out is None
    out = comm.bcast(tempfile.mkdtemp(prefix="bench_merge_") if made_tmp and comm.rank == 0 else args.out)
    if comm.rank == 0:
        os.makedirs(out, exist_ok=True)
    paths = {key: os.path.join(out, f"{key}_n{comm.size}.h5") for key in ("merge", "raw_gzip", "raw_nogzip")}

    mine = assignment(args.assign, counts, comm.size)[comm.rank]
    t0 = time.perf_counter()
    held = [(r, make_track(granules[r], r, k, int(counts[r, k]), args.seed)) for r, k in mine]
    t_build = max(comm.allgather(time.perf_counter() - t0))
    lay = layout(comm, held)
    if args.source == "files":
        held = make_files(comm, os.path.join(out, "tracks"), granules, counts, args.seed)
    spans = runs(comm, counts)
    bufs = floor_buffers(granules, counts, args.seed, lay, spans)
    nbytes = int(sum(spans[k][0] * np.dtype(dtype).itemsize for k in lay for _, dtype, _ in lay[k]))

    # warm-up, not in the table: the first collective gzip write of a process pays MPI-IO and
    # shared-memory set-up once (without it the first measured write was seconds slower)
    p_warm = os.path.join(out, f"warmup_n{comm.size}.h5")
    t_warm = timed(comm, lambda: raw_write(comm, p_warm, {k: lay[k][:1] for k in lay}, bufs, spans))
    remove(comm, p_warm)

    writes = {"merge": lambda: merge.merge_tracks(comm, granules, held, paths["merge"], parameters="{}",
                                                  memory=args.merge_memory,
                                                  compression=args.compression),
              "raw_gzip": lambda: raw_write(comm, paths["raw_gzip"], lay, bufs, spans, args.compression),
              "raw_nogzip": lambda: raw_write(comm, paths["raw_nogzip"], lay, bufs, spans, "none")}
    times = {key: [] for key in writes}
    for _ in range(args.repeat):
        for key, fn in writes.items():
            remove(comm, paths[key])
            times[key].append(timed(comm, fn))
    best = {key: min(v) for key, v in times.items()}
    ratio = best["raw_gzip"] / best["merge"]       # = merge MB/s / raw gzip MB/s
    result = {"ranks": comm.size, "assign": args.assign, "source": args.source, "granules": args.granules,
              "points_per_track": args.points, "tracks": int((counts > 0).sum()), "points": int(counts.sum()),
              "bytes": nbytes, "chunks": sorted({s[1] for s in spans}), "merge_memory_mb": args.merge_memory,
              "rounds": merge.last_stats["rounds"], "build_tracks_s": t_build, "warmup_s": t_warm,
              "merge_s": best["merge"], "raw_gzip_s": best["raw_gzip"], "raw_nogzip_s": best["raw_nogzip"],
              "merge_MBps": nbytes / 1e6 / best["merge"], "raw_gzip_MBps": nbytes / 1e6 / best["raw_gzip"],
              "raw_nogzip_MBps": nbytes / 1e6 / best["raw_nogzip"], "ratio": ratio, "target": args.target,
              "all_s": times, "host_cores": os.cpu_count(), "compression": args.compression,
              "level": ml.GZIP_LEVEL, "load_end": os.getloadavg()[0]}

    if comm.rank == 0:
        sizes = {key: os.path.getsize(p) for key, p in paths.items()}
        result.update({f"{key}_file_bytes": v for key, v in sizes.items()})
        print(f"bench_merge: {args.granules} granules x {len(GROUPS)} tracks, {result['points']} points, "
              f"{nbytes / 1e6:.1f} MB uncompressed ({len(lay[0])} datasets per group), assign={args.assign}, "
              f"source={args.source}, chunks {result['chunks']} elements, --merge-memory {args.merge_memory} MB, "
              f"best of {args.repeat}; tracks built in {t_build:.2f} s, warm-up write {t_warm:.2f} s")
        print(f"  {args.compression} level {ml.GZIP_LEVEL} (merge: zlib in the ranks, rank 0 places the chunks; "
              f"floor: HDF5's zlib, collective filtered write), "
              f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(table([result]))
        print("  all times (s): " + "; ".join(f"{k} " + " ".join(f"{x:.3f}" for x in v) for k, v in times.items()))
        print("  files (MB): " + ", ".join(f"{k} {v / 1e6:.1f}" for k, v in sizes.items()))
        print(f"  merge bandwidth / raw gzip bandwidth = {100 * ratio:.1f}% "
              f"({'meets' if ratio >= args.target else 'BELOW'} the {100 * args.target:.0f}% target)")

    status = 0
    if args.verify:
        problems = comm.bcast(verify(paths["merge"], granules, counts, args.seed, lay, args.compression)
                             if comm.rank == 0 else None)
        result["verified"] = not problems
        if comm.rank == 0:
            if problems:
                print("bench_merge: VERIFY FAILED\n  " + "\n  ".join(problems[:20]), file=sys.stderr)
            else:
                print(f"  verified: every dataset of {paths['merge']} equals the tracks concatenated in granule order")
        status = 1 if problems else 0
    if comm.rank == 0 and args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    if not args.keep:
        remove(comm, *paths.values())
        if comm.rank == 0:
            shutil.rmtree(os.path.join(out, "tracks"), ignore_errors=True)
            if made_tmp:
                shutil.rmtree(out, ignore_errors=True)
    comm.barrier()
    return status


if __name__ == "__main__":
    sys.exit(main())
