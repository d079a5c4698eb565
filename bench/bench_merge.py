"""Benchmark ``readatl06.merge.merge_tracks`` against the floor: a raw collective write of the same bytes.

    . scripts/mpienv.sh
    mpirun -n 2 python bench/bench_merge.py                           # 48 granules x 12 tracks x ~5000 points
    mpirun -n 4 python bench/bench_merge.py --granules 96 --points 8000 --json /tmp/bm4.json
    python bench/bench_merge.py --summarize /tmp/bm1.json /tmp/bm4.json   # one table from earlier runs

Every rank builds in memory the synthetic Tracks (all OUTPUT_VARS with their table dtypes, smooth
lat/lon, heights smooth + noise, realistic flags and fill values) of the (granule, beam, direction)
tracks it is given by ``--assign``: ``lpt`` whole granules by ``schedule.assign`` as ``reduce --merge``
does; ``rr`` round robin; ``contiguous`` consecutive granule rows; ``track`` per-beam tracks by size
as ``merge OUTDIR`` does. ``--empty`` makes that fraction of tracks absent. Three writes then take
turns ``--repeat`` times (barrier before and after each; the best time of each counts):

* merge       ``merge_tracks`` (parallel HDF5) -> one file;
* raw gzip    the floor: the same datasets (lengths, dtypes, fill values, chunks ``merge.CHUNK``,
              gzip 4 + shuffle), every rank writing ONE contiguous slab per dataset, collectively
              (``merge.write_selection``), from buffers built before the clock starts;
* raw         the same without compression, for reference.

Rank 0 prints ranks, bytes (uncompressed), seconds, MB/s and merge bandwidth / raw gzip bandwidth
against ``--target`` (0.70), then reads the merged file back serially and checks every dataset against
the tracks concatenated in granule order (``--no-verify`` skips it; exit status 1 on a mismatch).
"""
import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from readatl06 import merge, schedule  # noqa: E402
from readatl06.beams import BEAM_INDEX  # noqa: E402
from readatl06.names import parse_name  # noqa: E402
from readatl06.reduce import Track  # noqa: E402
from readatl06.schema import ATLAS_SDP_GPS_EPOCH, OUTPUT_VARS  # noqa: E402
from readatl06.timeconv import gps_to_decimal_year  # noqa: E402
from readatl06.tracks import orbit_id  # noqa: E402

GROUPS = merge.GROUPS
GI = "granule_index"     # the column merge_tracks adds to every group
F4_FILL = float(np.finfo(np.float32).max)
F8_FILL = float(np.finfo(np.float64).max)
# _FillValue as the ATL06 source declares it (variables computed by readatl06 have none).
SOURCE_FILL = {"lon": F8_FILL, "lat": F8_FILL, "h_elv": F4_FILL, "s_elv": F4_FILL, "h_rb": F4_FILL,
               "s_fg": 127, "snr": F4_FILL, "q_flg": 127, "f_sn": 127, "dac": F4_FILL,
               "tide_earth": F4_FILL, "tide_load": F4_FILL, "tide_ocean": F4_FILL, "tide_pole": F4_FILL}


# ----------------------------------------------------------------------------- synthetic input
def granule_names(n):
    """``n`` GranuleNames, 97 minutes apart from 2019-01-01, sorted as DESIGN §3 orders them."""
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
        "t_sec": t_sec, "t_year": gps_to_decimal_year(t_sec),
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
    meta = merge.combine(comm.allgather(merge.describe(held)))
    out = {}
    for k, (beam, direction) in enumerate(GROUPS):
        items = sorted(meta.get((beam, direction), {}).items(), key=lambda kv: (kv[1][0], kv[0]))
        out[k] = [(name, dtype, merge.fill_for(dtype, attrs)) for name, (_, dtype, attrs) in items]
        out[k].append((GI, "<i4", None))
    return out


def local_buffers(held, lay):
    """{k: {name: array}}: this rank's points of every dataset, concatenated in granule order."""
    bufs = {}
    for k, key in enumerate(GROUPS):
        mine = sorted(((r, t) for r, t in held if (t.beam, t.direction) == key), key=lambda rt: rt[0])
        bufs[k] = {}
        for name, dtype, _ in lay[k]:
            parts = [np.full(len(t), r, np.int32) if name == GI else np.asarray(t.data[name], dtype) for r, t in mine]
            bufs[k][name] = np.concatenate(parts) if parts else np.zeros(0, dtype)
    return bufs


def raw_write(comm, path, lay, bufs, totals, starts, gzip=True):
    """The same datasets as merge_tracks; every rank writes ONE slab per dataset, collectively."""
    with h5py.File(path, "w", driver="mpio", comm=comm) as f:
        for k, (beam, direction) in enumerate(GROUPS):
            grp = f.require_group(f"{beam}/{direction}")
            n = int(totals[k])
            kw = {"chunks": (min(n, merge.CHUNK),)} if n else {}
            if n and gzip:
                kw.update(compression="gzip", compression_opts=4, shuffle=True)
            for name, dtype, fill in lay[k]:
                d = grp.create_dataset(name, (n,), dtype=dtype, fillvalue=fill, **kw)
                if n:   # every rank takes part, also with an empty slab (STACK.md: the empty-slice hang)
                    buf = bufs[k][name]
                    mspace, fspace, buf, dxpl = merge.write_selection(d, [(int(starts[k]), buf.size)], buf)
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
def verify(path, granules, counts, seed, lay):
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
                layout_want = ("gzip", True, (min(want.size, merge.CHUNK),)) if want.size else (None, False, None)
                if (d.compression, d.shuffle, d.chunks) != layout_want:
                    problems.append(f"{where}: layout {d.compression} {d.shuffle} {d.chunks}")
    return problems


def table(rows):
    head = (f"{'ranks':>5} {'assign':>10} {'chunk':>7} {'MB':>7} {'merge s':>8} {'raw gz s':>8} {'raw s':>7} "
            f"{'merge MB/s':>10} {'raw gz MB/s':>11} {'raw MB/s':>9} {'merge/raw gz':>12}")
    lines = [head, "-" * len(head)]
    for r in rows:
        mb = r["bytes"] / 1e6
        lines.append(f"{r['ranks']:>5} {r['assign']:>10} {r.get('chunk', 0):>7} {mb:>7.1f} {r['merge_s']:>8.3f} "
                     f"{r['raw_gzip_s']:>8.3f} {r['raw_nogzip_s']:>7.3f} {mb / r['merge_s']:>10.1f} "
                     f"{mb / r['raw_gzip_s']:>11.1f} {mb / r['raw_nogzip_s']:>9.1f} {100 * r['ratio']:>11.1f}%")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--granules", type=int, default=48)
    ap.add_argument("--points", type=int, default=5000, help="mean points per track (granule x beam x direction)")
    ap.add_argument("--empty", type=float, default=0.0, help="fraction of tracks absent (0 points)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--assign", choices=("lpt", "rr", "contiguous", "track"), default="lpt")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of the three writes; the best of each counts")
    ap.add_argument("--out", default=None, help="folder for the files (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the last merged and raw files")
    ap.add_argument("--json", default=None, help="write the figures to this file")
    ap.add_argument("--no-verify", dest="verify", action="store_false")
    ap.add_argument("--target", type=float, default=0.70, help="merge / raw gzip bandwidth to reach")
    ap.add_argument("--summarize", nargs="+", metavar="JSON", help="print one table from earlier --json files")
    args = ap.parse_args(argv)
    if args.summarize:
        rows = []
        for p in args.summarize:
            with open(p) as fh:
                rows.append(json.load(fh))
        print(table(rows))
        return 0

    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    if not h5py.get_config().mpi:
        if comm.rank == 0:
            print("bench_merge: h5py has no MPI support; nothing to compare", file=sys.stderr)
        return 2
    made_tmp = args.out is None
    out = comm.bcast(tempfile.mkdtemp(prefix="bench_merge_") if made_tmp and comm.rank == 0 else args.out)
    if comm.rank == 0:
        os.makedirs(out, exist_ok=True)
    paths = {key: os.path.join(out, f"{key}_n{comm.size}.h5") for key in ("merge", "raw_gzip", "raw_nogzip")}

    granules = granule_names(args.granules)
    counts = track_counts(args.granules, args.points, args.seed, args.empty)
    mine = assignment(args.assign, counts, comm.size)[comm.rank]
    t0 = time.perf_counter()
    held = [(r, make_track(granules[r], r, k, int(counts[r, k]), args.seed)) for r, k in mine]
    t_build = max(comm.allgather(time.perf_counter() - t0))

    # the floor's plan: the same datasets; this rank's slab = its points of each group, placed in rank order
    lay = layout(comm, held)
    bufs = local_buffers(held, lay)
    local = np.array([bufs[k][GI].size for k in range(len(GROUPS))], np.int64)
    all_local = np.array(comm.allgather(local))               # ranks x groups
    totals = all_local.sum(axis=0)
    starts = all_local.cumsum(axis=0)[comm.rank] - local
    assert (totals == counts.sum(axis=0)).all()
    nbytes = int(sum(totals[k] * np.dtype(dtype).itemsize for k in lay for _, dtype, _ in lay[k]))

    # warm-up, not in the table: the first collective gzip write of a process pays MPI-IO and
    # shared-memory set-up once (without it the first measured write was seconds slower)
    p_warm = os.path.join(out, f"warmup_n{comm.size}.h5")
    t_warm = timed(comm, lambda: raw_write(comm, p_warm, {k: lay[k][:1] for k in lay}, bufs, totals, starts))
    remove(comm, p_warm)

    writes = {"merge": lambda: merge.merge_tracks(comm, granules, held, paths["merge"], parameters="{}",
                                                  parallel=True),
              "raw_gzip": lambda: raw_write(comm, paths["raw_gzip"], lay, bufs, totals, starts, gzip=True),
              "raw_nogzip": lambda: raw_write(comm, paths["raw_nogzip"], lay, bufs, totals, starts, gzip=False)}
    times = {key: [] for key in writes}
    for _ in range(args.repeat):
        for key, fn in writes.items():
            remove(comm, paths[key])
            times[key].append(timed(comm, fn))
    best = {key: min(v) for key, v in times.items()}
    ratio = best["raw_gzip"] / best["merge"]       # = merge MB/s / raw gzip MB/s
    result = {"ranks": comm.size, "assign": args.assign, "granules": args.granules, "points_per_track": args.points,
              "tracks": int((counts > 0).sum()), "points": int(counts.sum()), "bytes": nbytes,
              "chunk": merge.CHUNK, "build_tracks_s": t_build, "warmup_s": t_warm,
              "merge_s": best["merge"], "raw_gzip_s": best["raw_gzip"], "raw_nogzip_s": best["raw_nogzip"],
              "merge_MBps": nbytes / 1e6 / best["merge"], "raw_gzip_MBps": nbytes / 1e6 / best["raw_gzip"],
              "raw_nogzip_MBps": nbytes / 1e6 / best["raw_nogzip"], "ratio": ratio, "target": args.target,
              "all_s": times, "host_cores": os.cpu_count()}

    if comm.rank == 0:
        sizes = {key: os.path.getsize(p) for key, p in paths.items()}
        result.update({f"{key}_file_bytes": v for key, v in sizes.items()})
        print(f"bench_merge: {args.granules} granules x {len(GROUPS)} tracks, {result['points']} points, "
              f"{nbytes / 1e6:.1f} MB uncompressed ({len(lay[0])} datasets per group), assign={args.assign}, "
              f"chunk {merge.CHUNK} elements, best of {args.repeat}; tracks built in {t_build:.2f} s, "
              f"warm-up write {t_warm:.2f} s")
        print(table([result]))
        print("  all times (s): " + "; ".join(f"{k} " + " ".join(f"{x:.3f}" for x in v) for k, v in times.items()))
        print("  files (MB): " + ", ".join(f"{k} {v / 1e6:.1f}" for k, v in sizes.items()))
        print(f"  merge bandwidth / raw gzip bandwidth = {100 * ratio:.1f}% "
              f"({'meets' if ratio >= args.target else 'BELOW'} the {100 * args.target:.0f}% target)")

    status = 0
    if args.verify:
        problems = comm.bcast(verify(paths["merge"], granules, counts, args.seed, lay) if comm.rank == 0 else None)
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
        if made_tmp and comm.rank == 0:
            shutil.rmtree(out, ignore_errors=True)
    comm.barrier()
    return status


if __name__ == "__main__":
    sys.exit(main())
