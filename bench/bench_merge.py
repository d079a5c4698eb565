"""Benchmark: ``merge_tracks`` (one collectively written parallel-HDF5 file) against the floor, a raw
collective h5py write of the same bytes in the same layout.

    . scripts/mpienv.sh
    mpirun -n 4 python bench/bench_merge.py --out /tmp/bm             # 48 granules x 6 beams x 2 dirs
    mpirun -n 2 python bench/bench_merge.py --granules 96 --points 8000 --out /tmp/bm --json bm2.json
    mpirun -n 4 python bench/bench_merge.py --out /tmp/bm --profile   # where merge_tracks spends its time
    mpirun -n 2 python bench/bench_merge.py --out /tmp/bm --chunk 16384 --profile   # other merge.CHUNK
    python bench/bench_merge.py --summarize bm1.json bm2.json bm4.json    # one table from several runs

Each rank builds in memory the synthetic Tracks (all 20 OUTPUT_VARS, table dtypes, smooth lat/lon,
heights smooth + noise, realistic flags and fills) of the granules it is assigned (``--assign``:
``lpt`` = ``schedule.assign`` on granule sizes, as ``reduce --merge`` does; ``rr`` round robin;
``contiguous`` = consecutive granule rows; ``track`` = per-beam files by size, as ``merge OUTDIR`` does).
Then, repeated ``--repeat`` times (interleaved, best of each kept, file deleted between repeats):

* ``merge``  ``readatl06.merge.merge_tracks`` -> MERGE file;
* ``raw``    the floor: the same 12 groups x datasets (same lengths, dtypes, fill values, chunks
  ``merge.CHUNK``, gzip 4 + shuffle), every rank writing ONE contiguous slab per dataset with
  ``with dset.collective: dset[a:b] = buf`` from buffers built before the clock starts;
* ``raw0``   the same without compression (chunked, no filter), for reference.

Rank 0 prints ranks, bytes (uncompressed, the 12 groups), seconds and MB/s of each and the ratio
merge bandwidth / raw gzip bandwidth (target >= 70 %), then checks the merged file against the
concatenation of the generated tracks in granule order (serial h5py read; exit status 1 on mismatch).
``--profile`` times merge_tracks once more with its steps instrumented (wrappers around the merge
module's functions; merge.py is not changed) and runs diagnostic writes that each change one thing:
``raw-blocks`` (prebuilt buffers written at merge's positions, one hyperslab union per dataset),
``raw-attrs`` (the floor plus merge's attributes), ``raw-fill-never`` (``fill_time='never'``), and
``merge-redistributed`` (a prototype: the same file as merge_tracks, after one Alltoallv per dataset
gives every rank one contiguous slab; optionally with chunk-aligned slab edges), whose data and
attribute names are compared with merge_tracks' file. ``--chunk N`` overrides ``merge.CHUNK`` for
every write (an experiment; merge.py is not edited).
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import h5py  # noqa: E402

from readatl06 import merge, schedule  # noqa: E402
from readatl06.beams import BEAM_INDEX  # noqa: E402
from readatl06.names import parse_name  # noqa: E402
from readatl06.reduce import Track  # noqa: E402
from readatl06.schema import ATLAS_SDP_GPS_EPOCH, OUTPUT_VARS  # noqa: E402
from readatl06.timeconv import gps_to_decimal_year  # noqa: E402
from readatl06.tracks import orbit_id  # noqa: E402

GROUPS = merge.GROUPS
F4_FILL = float(np.finfo(np.float32).max)
F8_FILL = float(np.finfo(np.float64).max)
# _FillValue as the ATL06 source declares it (variables computed by readatl06 have none).
SOURCE_FILL = {"lon": F8_FILL, "lat": F8_FILL, "h_elv": F4_FILL, "s_elv": F4_FILL, "h_rb": F4_FILL,
               "s_fg": 127, "snr": F4_FILL, "q_flg": 127, "f_sn": 127, "dac": F4_FILL,
               "tide_earth": F4_FILL, "tide_load": F4_FILL, "tide_ocean": F4_FILL, "tide_pole": F4_FILL}
GI = ("granule_index", "<i4", {"long_name": "row of this point's granule in /granules", "units": "1"})


# ----------------------------------------------------------------------------- synthetic input
def granule_names(n):
    """``n`` GranuleNames, 97 minutes apart from 2019-01-01, sorted as DESIGN §3 orders them."""
    import datetime as dt
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
    lat0 = rng.uniform(-86.0, -72.0)
    lat = lat0 + (1.0 if asc else -1.0) * 0.9 * x / 111_000.0 + 0.02 * np.sin(x / 4e5)
    lat = np.clip(lat, -88.0, -60.0)
    lon = rng.uniform(-180, 180) + 0.35 * x / (111_000.0 * np.cos(np.radians(lat))) + 0.01 * np.sin(x / 9e4)
    lon = (lon + 180.0) % 360.0 - 180.0
    delta = 31_536_000.0 + row * 5820.0 + 600.0 * (k % 2) + x / 6900.0    # s since the ATLAS SDP epoch
    t_sec = ATLAS_SDP_GPS_EPOCH + delta
    surf = 2000.0 + 900.0 * np.sin(x / 3e5 + rng.uniform(0, 6.3)) + 25.0 * np.sin(x / 7e3)
    h = (surf + rng.normal(0.0, 0.12, n)).astype(np.float32)
    tide_ocean = (0.6 * np.sin(x / 2e5 + row)).astype(np.float32)
    tide_ocean[lat < -80.0] = F4_FILL                    # no ocean tide inland: fill values at kept points
    small = rng.choice(np.array([0, 1, 2, 3], np.int8), n, p=[0.9, 0.05, 0.03, 0.02])
    snr = np.where(rng.random(n) < 0.93, 0.0, rng.exponential(0.01, n)).astype(np.float32)
    data = {
        "lon": lon, "lat": lat, "h_elv": h,
        "s_elv": np.abs(rng.normal(0.04, 0.03, n)).astype(np.float32),
        "t_sec": t_sec, "t_year": gps_to_decimal_year(t_sec),
        "h_rb": np.abs(rng.normal(0.12, 0.06, n)).astype(np.float32),
        "s_fg": small, "snr": snr, "q_flg": np.zeros(n, np.int8),
        "f_sn": np.where(rng.random(n) < 0.85, -1, rng.integers(0, 6, n)).astype(np.int8),
        "dac": (0.08 * np.sin(x / 1e6 + row)).astype(np.float32),
        "tide_earth": (0.25 * np.sin(x / 8e5 + 0.3 * row)).astype(np.float32),
        "tide_load": (0.02 * np.sin(x / 3e5 + row)).astype(np.float32),
        "tide_ocean": tide_ocean,
        "tide_pole": np.full(n, 0.003 * np.sin(row), np.float32) + np.float32(1e-5) * np.arange(n, dtype=np.float32),
        "segment_id": (int(rng.integers(100_000, 900_000)) + seg).astype(np.int32),
        "rgt": np.full(n, g.rgt, np.int16), "cycle": np.full(n, g.cycle, np.int8),
        "orbit": np.full(n, orbit_id(g.cycle, g.rgt, g.region, int(g.release), int(g.revision),
                                     BEAM_INDEX[beam], 0 if asc else 1), np.int64),
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
    """[(row, k)] per rank."""
    ng, nk = counts.shape
    if mode == "track":          # like ``merge OUTDIR``: per-beam files by size
        keys = [(r, k) for r in range(ng) for k in range(nk) if counts[r, k]]
        parts = schedule.assign([int(counts[r, k]) for r, k in keys], nranks)
        return [[keys[i] for i in p] for p in parts]
    if mode == "lpt":            # like ``reduce --merge``: whole granules, largest first
        rows = schedule.assign([int(c) for c in counts.sum(axis=1)], nranks)
    elif mode == "rr":
        rows = [list(range(r, ng, nranks)) for r in range(nranks)]
    else:                        # contiguous rows
        edges = np.linspace(0, ng, nranks + 1).round().astype(int)
        rows = [list(range(edges[r], edges[r + 1])) for r in range(nranks)]
    return [[(r, k) for r in rr for k in range(nk) if counts[r, k]] for rr in rows]


# ----------------------------------------------------------------------------- the writes
def layout(comm, held):
    """Datasets as merge_tracks lays them out: [(name, dtype, attrs incl. _FillValue)] per group."""
    meta = merge.combine(comm.allgather(merge.describe(held)))
    out = {}
    for k, key in enumerate(GROUPS):
        items = sorted(meta.get(key, {}).items(), key=lambda kv: (kv[1][0], kv[0]))
        lst = []
        for name, (_, dtype, attrs) in items:
            fill = merge.fill_for(dtype, attrs)
            lst.append((name, dtype, dict(attrs, _FillValue=fill) if "_FillValue" not in attrs else attrs))
        lst.append((GI[0], GI[1], GI[2]))
        out[k] = lst
    return out


def local_buffers(held, lay):
    """This rank's data per group and dataset, concatenated in granule order (what it writes)."""
    held = sorted(held, key=lambda rt: (rt[0], GROUPS.index((rt[1].beam, rt[1].direction))))
    bufs = {}
    for k, key in enumerate(GROUPS):
        mine = [(r, t) for r, t in held if (t.beam, t.direction) == key]
        b = {}
        for name, dtype, _ in lay[k]:
            if name == GI[0]:
                parts = [np.full(len(t), r, np.int32) for r, t in mine]
            else:
                parts = [np.asarray(t.data[name], dtype) for _, t in mine]
            b[name] = np.ascontiguousarray(np.concatenate(parts) if parts else np.zeros(0, dtype))
        bufs[k] = b
    return bufs


def _write_empty(dset):
    """Take part in the collective write with nothing selected (STACK.md: the empty-slice hang)."""
    fspace = dset.id.get_space()
    fspace.select_none()
    mspace = h5py.h5s.create_simple((1,))
    mspace.select_none()
    dxpl = h5py.h5p.create(h5py.h5p.DATASET_XFER)
    dxpl.set_dxpl_mpio(h5py.h5fd.MPIO_COLLECTIVE)
    dset.id.write(mspace, fspace, np.zeros(1, dset.dtype), dxpl=dxpl)


def raw_write(comm, path, lay, bufs, totals, starts, gzip=True, blocks=None, attrs=False, fill_time=None):
    """The floor: create the same datasets, each rank writes ONE slab per dataset, collectively.

    ``blocks`` (diagnostic): {k: [(start, n)]} write at merge's positions instead (hyperslab union).
    ``attrs`` (diagnostic): also write merge's dataset and group attributes.
    ``fill_time`` (diagnostic): e.g. ``"never"``: no fill-value chunks written when the dataset is created."""
    f = h5py.File(path, "w", driver="mpio", comm=comm)
    try:
        for k, (beam, direction) in enumerate(GROUPS):
            grp = f.require_group(f"{beam}/{direction}")
            if attrs:
                grp.attrs["beam"], grp.attrs["direction"] = beam, direction
            n = int(totals[k])
            a = int(starts[k])
            for name, dtype, at in lay[k]:
                kw = {}
                if n:
                    kw["chunks"] = (min(n, merge.CHUNK),)
                    if gzip:
                        kw.update(compression="gzip", compression_opts=4, shuffle=True)
                    if fill_time:
                        kw["fill_time"] = fill_time
                d = grp.create_dataset(name, (n,), dtype=dtype, fillvalue=at.get("_FillValue"), **kw)
                if attrs:
                    for key, value in at.items():
                        d.attrs[key] = value
                if not n:
                    continue
                buf = bufs[k][name]
                if blocks is not None:
                    if buf.size:
                        merge._write_collective(d, blocks[k], buf)
                    else:
                        _write_empty(d)
                elif buf.size:
                    with d.collective:
                        d[a:a + buf.size] = buf
                else:
                    _write_empty(d)
    finally:
        f.close()


def redistribution_plan(comm, held, counts, align):
    """Per group: which of this rank's points go to which rank (Alltoallv counts) so that afterwards
    every rank holds ONE contiguous range of the file (chunk-aligned edges with ``align``), and where
    the received points go in that range. Prototype of a suggested merge_tracks change."""
    nranks, rank = comm.size, comm.rank
    off = np.zeros_like(counts.T)
    off[:, 1:] = np.cumsum(counts.T, axis=1)[:, :-1]
    rows = {}
    for r, t in held:
        rows.setdefault(GROUPS.index((t.beam, t.direction)), []).append(r)
    rows = {k: sorted(v) for k, v in rows.items()}
    all_rows = comm.allgather(rows)
    plan = {}
    for k in range(len(GROUPS)):
        n = int(counts[:, k].sum())
        if align:
            edges = [min(n, int(round(d * n / nranks / merge.CHUNK)) * merge.CHUNK) for d in range(nranks)] + [n]
        else:
            edges = [d * n // nranks for d in range(nranks)] + [n]
        edges = np.array(edges, np.int64)

        def positions(rr):
            return (np.concatenate([np.arange(off[k][r], off[k][r] + counts[r, k]) for r in rr])
                    if rr else np.zeros(0, np.int64))
        cut = np.searchsorted(positions(rows.get(k, [])), edges)
        a, b = int(edges[rank]), int(edges[rank + 1])
        index, rcount = [], []
        for src in range(nranks):
            ps = positions(all_rows[src].get(k, []))
            sel = ps[(ps >= a) & (ps < b)]
            index.append(sel - a)
            rcount.append(int(sel.size))
        rdispl = [0] + list(np.cumsum(rcount)[:-1].tolist())
        plan[k] = (a, b, np.diff(cut).tolist(), cut[:-1].tolist(), rcount, rdispl, np.concatenate(index))
    return plan


def redistributed_merge(comm, path, granules, held, counts, lay, align, clock):
    """Prototype: merge_tracks' file (same layout, attributes, values) written after an Alltoallv per
    dataset that gives every rank one contiguous slab: HDF5 then sees the floor's access pattern."""
    t0 = time.perf_counter()
    plan = redistribution_plan(comm, held, counts, align)
    bufs = local_buffers(held, lay)
    clock["plan + buffers"] = clock.get("plan + buffers", 0.0) + time.perf_counter() - t0
    f = h5py.File(path, "w", driver="mpio", comm=comm)
    try:
        merge._granule_table(f, granules, "{}", write=(comm.rank == 0))
        for k, (beam, direction) in enumerate(GROUPS):
            grp = f.require_group(f"{beam}/{direction}")
            grp.attrs["beam"], grp.attrs["direction"] = beam, direction
            a, b, scount, sdispl, rcount, rdispl, index = plan[k]
            n = int(counts[:, k].sum())
            kw = dict(chunks=(min(n, merge.CHUNK),), compression="gzip", compression_opts=4, shuffle=True) if n else {}
            for name, dtype, at in lay[k]:
                d = grp.create_dataset(name, (n,), dtype=dtype, fillvalue=at.get("_FillValue"), **kw)
                for key, value in at.items():
                    d.attrs[key] = value
                if not n:
                    continue
                t1 = time.perf_counter()
                recv = np.empty(sum(rcount), dtype)
                comm.Alltoallv([bufs[k][name], (scount, sdispl)], [recv, (rcount, rdispl)])
                slab = np.empty(b - a, dtype)
                slab[index] = recv
                clock["alltoallv + place"] = clock.get("alltoallv + place", 0.0) + time.perf_counter() - t1
                if slab.size:
                    with d.collective:
                        d[a:b] = slab
                else:
                    _write_empty(d)
        f.attrs["software"] = f"readatl06 {merge.__version__}"
        f.attrs["n_granules"] = np.int64(len(granules))
    finally:
        f.close()


def same_data(p1, p2):
    """Rank 0: names of datasets whose values differ between two files (all datasets of p1)."""
    bad = []
    with h5py.File(p1, "r") as f1, h5py.File(p2, "r") as f2:
        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                other = f2.get(name)
                if other is None or other.dtype != obj.dtype or other[()].tobytes() != obj[()].tobytes() \
                        or dict(other.attrs).keys() != dict(obj.attrs).keys():
                    bad.append(name)
        f1.visititems(visit)
    return bad


# ----------------------------------------------------------------------------- timing helpers
def timed(comm, fn):
    """Seconds of ``fn()`` on the slowest rank, barrier before and after."""
    comm.barrier()
    t0 = time.perf_counter()
    fn()
    comm.barrier()
    return comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)


def remove(comm, path):
    comm.barrier()
    if comm.rank == 0 and os.path.exists(path):
        os.remove(path)
    comm.barrier()


class Profile:
    """Wall time per step of merge_tracks, by wrapping the merge module's functions (restored after)."""

    def __init__(self, comm):
        self.comm = comm
        self.t = {}
        self.n = {}
        self._saved = {}

    def add(self, key, dt, n=1):
        self.t[key] = self.t.get(key, 0.0) + dt
        self.n[key] = self.n.get(key, 0) + n

    def wrap(self, name, key):
        fn = getattr(merge, name)
        self._saved[name] = fn

        def wrapper(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self.add(key, time.perf_counter() - t0)
        setattr(merge, name, wrapper)

    def __enter__(self):
        prof = self
        self.wrap("describe", "describe")
        self.wrap("combine", "combine")
        self.wrap("_granule_table", "granule_table")
        self._saved["_dataset"] = merge._dataset
        self._saved["_write_collective"] = merge._write_collective
        self._saved["h5py"] = merge.h5py
        inner_dataset = merge._dataset

        def dataset(*a, **kw):
            t0 = time.perf_counter()
            w0 = prof.t.get("write (all)", 0.0)
            try:
                return inner_dataset(*a, **kw)
            finally:
                prof.add("create_dataset + attrs", time.perf_counter() - t0 - (prof.t.get("write (all)", 0.0) - w0))

        def write_collective(dset, blocks, buf):
            # merge._write_collective with clocks (and a barrier to separate waiting from I/O)
            t0 = time.perf_counter()
            mspace, fspace, buf, dxpl = merge.write_selection(dset, blocks, buf)
            t1 = time.perf_counter()
            prof.comm.barrier()
            t2 = time.perf_counter()
            dset.id.write(mspace, fspace, buf, dxpl=dxpl)
            t3 = time.perf_counter()
            prof.add("  hyperslab union selection", t1 - t0, len(blocks))
            prof.add("  wait for other ranks before H5Dwrite", t2 - t1)
            prof.add("  H5Dwrite (collective, gzip)", t3 - t2)
            prof.add("write (all)", t3 - t0)

        class TimedFile(h5py.File):
            def __init__(self, *a, **kw):
                t0 = time.perf_counter()
                super().__init__(*a, **kw)
                prof.add("file open", time.perf_counter() - t0)

            def close(self):
                t0 = time.perf_counter()
                super().close()
                prof.add("file close (metadata flush)", time.perf_counter() - t0)

        class Shim:
            File = TimedFile

            def __getattr__(self, name):
                return getattr(h5py, name)
        merge._dataset = dataset
        merge._write_collective = write_collective
        merge.h5py = Shim()
        return self

    def __exit__(self, *exc):
        for name, fn in self._saved.items():
            setattr(merge, name, fn)


# ----------------------------------------------------------------------------- checks and report
def verify(path, granules, counts, seed, lay):
    """Rank 0, serial h5py: every dataset equals the tracks concatenated in granule order."""
    problems = []
    with h5py.File(path, "r") as f:
        names = [x.decode() for x in f["granules/name"][()]]
        if names != [g.name for g in granules]:
            problems.append("/granules/name differs from the granule list")
        for k, (beam, direction) in enumerate(GROUPS):
            tracks = [(r, make_track(granules[r], r, k, int(counts[r, k]), seed))
                      for r in range(len(granules)) if counts[r, k]]
            grp = f[f"{beam}/{direction}"]
            for name, dtype, attrs in lay[k]:
                if name == GI[0]:
                    want = np.concatenate([np.full(len(t), r, np.int32) for r, t in tracks])
                else:
                    want = np.concatenate([t.data[name] for _, t in tracks])
                d = grp[name]
                got = d[()]
                want = want.astype(dtype, copy=False)
                if d.dtype != np.dtype(dtype) or got.shape != want.shape or got.tobytes() != want.tobytes():
                    problems.append(f"/{beam}/{direction}/{name}: {d.dtype}{got.shape} != "
                                    f"{np.dtype(dtype)}{want.shape} or values differ")
                if name != GI[0] and d.attrs.get("units") is None:
                    problems.append(f"/{beam}/{direction}/{name}: no units attribute")
                if (d.compression, d.shuffle, d.chunks) != ("gzip", True, (min(want.size, merge.CHUNK),)):
                    problems.append(f"/{beam}/{direction}/{name}: layout {d.compression} {d.shuffle} {d.chunks}")
    return problems


def storage(path):
    with h5py.File(path, "r") as f:
        total = 0

        def visit(_, obj):
            nonlocal total
            if isinstance(obj, h5py.Dataset):
                total += obj.id.get_storage_size()
        f.visititems(visit)
    return total, os.path.getsize(path)


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
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk", type=int, default=None,
                    help=f"experiment: override merge.CHUNK (elements per chunk, default {merge.CHUNK}) for "
                         "merge_tracks and the raw writes alike")
    ap.add_argument("--out", default=None, help="folder for the files (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the last merged and raw files")
    ap.add_argument("--json", default=None, help="write the figures to this file")
    ap.add_argument("--no-verify", dest="verify", action="store_false")
    ap.add_argument("--profile", action="store_true", help="also time merge_tracks step by step")
    ap.add_argument("--target", type=float, default=0.70)
    ap.add_argument("--summarize", nargs="+", metavar="JSON", help="print one table from earlier --json files")
    args = ap.parse_args(argv)
    if args.summarize:
        rows = [json.load(open(p)) for p in args.summarize]
        print(table(rows))
        return 0

    global MPI
    if args.chunk:
        merge.CHUNK = args.chunk
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    if not h5py.get_config().mpi:
        if comm.rank == 0:
            print("bench_merge: h5py has no MPI support; nothing to compare", file=sys.stderr)
        return 2
    out = args.out
    made_tmp = False
    if out is None:
        out = comm.bcast(tempfile.mkdtemp(prefix="bench_merge_", dir="/tmp") if comm.rank == 0 else None)
        made_tmp = True
    elif comm.rank == 0:
        os.makedirs(out, exist_ok=True)
    comm.barrier()
    p_merge = os.path.join(out, f"merge_n{comm.size}.h5")
    p_raw = os.path.join(out, f"raw_gzip_n{comm.size}.h5")
    p_raw0 = os.path.join(out, f"raw_nogzip_n{comm.size}.h5")

    granules = granule_names(args.granules)
    counts = track_counts(args.granules, args.points, args.seed, args.empty)
    mine = assignment(args.assign, counts, comm.size)[comm.rank]
    t0 = time.perf_counter()
    held = [(r, make_track(granules[r], r, k, int(counts[r, k]), args.seed)) for r, k in mine]
    t_build = comm.allreduce(time.perf_counter() - t0, op=MPI.MAX)

    # the floor's plan: same datasets; this rank's slab = its points per group, placed in rank order
    lay = layout(comm, held)
    bufs = local_buffers(held, lay)
    local = np.array([bufs[k][GI[0]].size for k in range(len(GROUPS))], np.int64)
    all_local = np.array(comm.allgather(local))               # ranks x groups
    totals = all_local.sum(axis=0)
    starts = all_local.cumsum(axis=0)[comm.rank] - local
    assert (totals == counts.sum(axis=0)).all()
    nbytes = int(sum(totals[k] * np.dtype(dt).itemsize for k in range(len(GROUPS)) for _, dt, _ in lay[k]))

    # warm-up (untimed in the table): the first collective gzip write of a process pays MPI-IO and
    # shared-memory set-up once; without this the first measured write looked seconds slower
    p_warm = os.path.join(out, f"warmup_n{comm.size}.h5")
    remove(comm, p_warm)
    t_warm = timed(comm, lambda: raw_write(comm, p_warm, {k: lay[k][:1] for k in lay}, bufs, totals, starts))
    remove(comm, p_warm)

    times = {"merge": [], "raw_gzip": [], "raw_nogzip": []}
    for rep in range(args.repeat):
        last = rep == args.repeat - 1
        for key, path, fn in (
                ("merge", p_merge, lambda: merge.merge_tracks(comm, granules, held, p_merge, parameters="{}",
                                                              parallel=True)),
                ("raw_gzip", p_raw, lambda: raw_write(comm, p_raw, lay, bufs, totals, starts, gzip=True)),
                ("raw_nogzip", p_raw0, lambda: raw_write(comm, p_raw0, lay, bufs, totals, starts, gzip=False))):
            remove(comm, path)
            times[key].append(timed(comm, fn))
            if not last:
                remove(comm, path)
    best = {k: min(v) for k, v in times.items()}
    ratio = best["raw_gzip"] / best["merge"]       # = merge MB/s / raw gzip MB/s
    result = {"ranks": comm.size, "assign": args.assign, "granules": args.granules, "points_per_track": args.points,
              "tracks": int((counts > 0).sum()), "points": int(counts.sum()), "bytes": nbytes,
              "chunk": merge.CHUNK, "build_tracks_s": t_build, "warmup_s": t_warm,
              "merge_s": best["merge"], "raw_gzip_s": best["raw_gzip"], "raw_nogzip_s": best["raw_nogzip"],
              "merge_MBps": nbytes / 1e6 / best["merge"], "raw_gzip_MBps": nbytes / 1e6 / best["raw_gzip"],
              "raw_nogzip_MBps": nbytes / 1e6 / best["raw_nogzip"], "ratio": ratio, "target": args.target,
              "all_s": times, "host_cores": os.cpu_count()}

    if comm.rank == 0:
        sm, fm = storage(p_merge)
        sr, fr = storage(p_raw)
        result.update(merge_file_bytes=fm, raw_gzip_file_bytes=fr, merge_stored_bytes=sm, raw_gzip_stored_bytes=sr,
                      raw_nogzip_file_bytes=os.path.getsize(p_raw0))
        print(f"bench_merge: {args.granules} granules x {len(GROUPS)} tracks, {result['points']} points, "
              f"{nbytes / 1e6:.1f} MB uncompressed (20 variables + granule_index), assign={args.assign}, "
              f"chunk {merge.CHUNK} elements, best of {args.repeat}; tracks built in {t_build:.2f} s, "
              f"warm-up write {t_warm:.2f} s")
        print(table([result]))
        print("  all times (s): " + "; ".join(f"{k} " + " ".join(f"{x:.3f}" for x in v) for k, v in times.items()))
        print(f"  files: merge {fm / 1e6:.1f} MB, raw gzip {fr / 1e6:.1f} MB, raw no gzip "
              f"{result['raw_nogzip_file_bytes'] / 1e6:.1f} MB")
        print(f"  merge bandwidth / raw gzip bandwidth = {100 * ratio:.1f}% "
              f"({'meets' if ratio >= args.target else 'BELOW'} the {100 * args.target:.0f}% target)")

    if args.profile:
        result["profile"] = profile(comm, granules, held, counts, lay, bufs, totals, starts, out, p_merge)

    status = 0
    if args.verify:
        problems = verify(p_merge, granules, counts, args.seed, lay) if comm.rank == 0 else None
        problems = comm.bcast(problems)
        result["verified"] = not problems
        if comm.rank == 0:
            if problems:
                print("bench_merge: VERIFY FAILED\n  " + "\n  ".join(problems[:20]), file=sys.stderr)
            else:
                print(f"  verified: every dataset of {p_merge} equals the tracks concatenated in granule order")
        status = 1 if problems else 0
    if comm.rank == 0 and args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    comm.barrier()
    if not args.keep and comm.rank == 0:
        for p in (p_merge, p_raw, p_raw0):
            if os.path.exists(p):
                os.remove(p)
        if made_tmp:
            shutil.rmtree(out, ignore_errors=True)
    return status


def profile(comm, granules, held, counts, lay, bufs, totals, starts, out, merged):
    """merge_tracks with its steps clocked, plus diagnostic raw writes that isolate one difference each."""
    path = os.path.join(out, f"profile_n{comm.size}.h5")
    remove(comm, path)
    with Profile(comm) as prof:
        total = timed(comm, lambda: merge.merge_tracks(comm, granules, held, path, parameters="{}", parallel=True))
    remove(comm, path)
    steps = dict(prof.t)
    counted = sum(v for k, v in steps.items() if not k.startswith("  "))
    steps["buffers (concatenate) + rest"] = max(total - counted, 0.0)
    # the same per rank: report the slowest rank's figure for each step
    keys = sorted(steps)
    mine = np.array([steps[k] for k in keys], np.float64)
    worst, best = np.empty_like(mine), np.empty_like(mine)
    comm.Allreduce(mine, worst, op=MPI.MAX)
    comm.Allreduce(mine, best, op=MPI.MIN)
    nblocks = comm.allgather(prof.n.get("  hyperslab union selection", 0))

    # diagnostics: merge's blocks with prebuilt buffers (layout cost alone); the floor plus attributes
    off = np.zeros_like(counts.T)
    off[:, 1:] = np.cumsum(counts.T, axis=1)[:, :-1]
    rows_of = {}
    for r, t in held:
        rows_of.setdefault(GROUPS.index((t.beam, t.direction)), []).append(r)
    blocks = {k: merge._blocks(sorted(rows_of.get(k, [])), counts.T[k], off[k]) for k in range(len(GROUPS))}
    diag = {}
    for key, fn in (("raw-blocks (merge positions, prebuilt buffers)",
                     lambda: raw_write(comm, path, lay, bufs, totals, starts, blocks=blocks)),
                    ("raw-attrs (floor + merge's attributes)",
                     lambda: raw_write(comm, path, lay, bufs, totals, starts, attrs=True)),
                    ("raw-fill-never (floor, fill_time='never')",
                     lambda: raw_write(comm, path, lay, bufs, totals, starts, fill_time="never")),
                    ("raw (floor, again)", lambda: raw_write(comm, path, lay, bufs, totals, starts))):
        ts = []
        for _ in range(2):
            remove(comm, path)
            ts.append(timed(comm, fn))
        diag[key] = min(ts)
    # prototype of the fix: redistribute (Alltoallv) so that each rank writes one slab, then compare files
    for align in (False, True):
        key = f"merge-redistributed{'-chunk-aligned' if align else ''} (prototype)"
        ts, clocks = [], []
        for _ in range(2):
            remove(comm, path)
            clock = {}
            ts.append(timed(comm, lambda: redistributed_merge(comm, path, granules, held, counts, lay, align, clock)))
            clocks.append(clock)
        i = int(np.argmin(ts))
        diag[key] = ts[i]
        parts = {c: comm.allreduce(v, op=MPI.MAX) for c, v in sorted(clocks[i].items())}
        bad = same_data(merged, path) if comm.rank == 0 else None
        bad = comm.bcast(bad)
        diag[key + " steps"] = parts
        diag[key + " differs from merge_tracks' file in"] = bad
    remove(comm, path)
    if comm.rank == 0:
        print(f"profile of one merge_tracks call on {comm.size} ranks: {total:.3f} s "
              f"(slowest rank per step; min over ranks in brackets)")
        order = ["describe", "combine", "file open", "granule_table", "create_dataset + attrs", "write (all)",
                 "  hyperslab union selection", "  wait for other ranks before H5Dwrite",
                 "  H5Dwrite (collective, gzip)", "file close (metadata flush)", "buffers (concatenate) + rest"]
        for k in order + [k for k in keys if k not in order]:
            if k in keys:
                i = keys.index(k)
                print(f"  {k:<42} {worst[i]:8.3f} s  [{best[i]:.3f}]")
        print(f"  hyperslab blocks per rank (all datasets): {nblocks}")
        for k, v in diag.items():
            if isinstance(v, float):
                print(f"  {k:<48} {v:8.3f} s")
            elif isinstance(v, dict):
                print("      of which (slowest rank): " + ", ".join(f"{c} {x:.3f} s" for c, x in v.items()))
            else:
                print(f"      data and attribute names identical to merge_tracks' file: {'yes' if not v else v[:5]}")
    return {"merge_total_s": total, "steps_max_s": dict(zip(keys, worst.tolist())),
            "steps_min_s": dict(zip(keys, best.tolist())), "blocks_per_rank": nblocks, "diagnostics_s": diag}


MPI = None

if __name__ == "__main__":
    sys.exit(main())
