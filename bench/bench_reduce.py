"""Per-granule reduce time against its floors, at 1 and 2 ranks, on the same synthetic granules.

    . scripts/mpienv.sh
    python bench/bench_reduce.py                                   # 16 granules x 60,000 segments/beam
    python bench/bench_reduce.py --granules 4 --segments-per-beam 20000 --repeat 2   # quick look
    python bench/bench_reduce.py --startup                         # start-up against bare imports / MPI hello

Every contender is a whole process, started the way a user starts it (plainly at 1 rank, under
``mpirun -n R`` at R ranks, each rank taking every R-th granule); its wall time is measured from
outside. Its zero-work start-up (the same command with no granules) is measured the same way and
subtracted, so that the figures are per-granule work; start-up has its own targets (docs/speed.md).
Contenders run interleaved, the best of ``--repeat`` counts.

  inflate limit  os.pread of the stored chunks of the 16 datasets per beam + ISA-L inflate, nothing
                 else (timed inside the process, after the chunk index is built): the physical limit
  read floor     h5py reads the 16 datasets per beam (``dset[()]``)
  job floor      the tight h5py script: read + quality mask + split by the sign of dlat + write
                 uncompressed per-beam files (h5py, no attributes)
  readatl06      ``readatl06 reduce DIR -o OUT`` (default ``--compression deflate``)
  readatl06 none ``readatl06 reduce DIR -o OUT --compression none``

The granules are made once by ``readatl06 synth`` and cached under ``--cache`` by their parameters.
"""
import argparse
import glob
import os
import resource
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BEAMS = ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")
SOURCES = ("latitude", "longitude", "h_li", "h_li_sigma", "delta_time", "atl06_quality_summary", "segment_id",
           "fit_statistics/h_robust_sprd", "fit_statistics/signal_selection_source",
           "fit_statistics/snr_significance", "geophysical/bsnow_conf", "geophysical/dac",
           "geophysical/tide_earth", "geophysical/tide_load", "geophysical/tide_ocean", "geophysical/tide_pole")
CONTENDERS = ("inflate limit", "read floor", "job floor", "readatl06", "readatl06 none")


# --- the floor programs (run as ``bench_reduce.py --worker KIND --out DIR FILE...``) -------------------
def _my_files(files):
    """(this rank's files, comm or None): every R-th granule under mpirun, all of them otherwise."""
    from readatl06.parallel.world import launched_by_mpirun
    if not launched_by_mpirun():
        return files, None
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    return files[comm.rank::comm.size], comm


def _inflate(files):
    import h5py
    from isal import isal_zlib

    from readatl06.hdf5.chunks import chunk_index
    indexes = []
    for p in files:
        with h5py.File(p, "r") as f:
            indexes.append((p, [chunk_index(f[b]["land_ice_segments"][s]) for b in BEAMS for s in SOURCES]))
    t0, c0 = time.perf_counter(), time.process_time()
    for p, idx in indexes:
        fd = os.open(p, os.O_RDONLY)
        for index in idx:
            for c in index.chunks:
                data = os.pread(fd, c.size, c.offset)
                if "deflate" in index.filters:
                    isal_zlib.decompress(data, bufsize=index.nbytes)
        os.close(fd)
    return time.perf_counter() - t0, time.process_time() - c0


def _read_floor(files):
    import h5py
    for p in files:
        with h5py.File(p, "r") as f:
            for b in BEAMS:
                g = f[b]["land_ice_segments"]
                for s in SOURCES:
                    g[s][()]


def _job_floor(files, out):
    import h5py
    import numpy as np
    for p in files:
        stem = os.path.basename(p)[:-3]
        with h5py.File(p, "r") as f:
            for b in BEAMS:
                g = f[b]["land_ice_segments"]
                v = {s: g[s][()] for s in SOURCES}
                h = v["h_li"]
                keep = (h != np.float32(3.4028235e38)) & (v["atl06_quality_summary"] == 0) & (np.abs(h) < 1e4)
                write_parts(out, f"{stem}_{b}", v, keep)


def write_parts(out, stem, v, keep):
    """The job floor's write: the kept points split by the sign of dlat, uncompressed, no attributes."""
    import h5py
    import numpy as np
    up = np.gradient(v["latitude"]) >= 0
    for code, part in (("A", keep & up), ("D", keep & ~up)):
        if part.any():
            with h5py.File(os.path.join(out, f"{stem}_{code}.h5"), "w") as o:
                for s in SOURCES:
                    o.create_dataset(s.rsplit("/", 1)[-1], data=v[s][part])


def worker(kind, out, files):
    import h5py  # noqa: F401 - every floor program pays the same imports, with or without work
    import numpy  # noqa: F401
    mine, comm = _my_files(files)
    if kind == "inflate limit":
        if comm is not None:
            comm.Barrier()
        wall, cpu = _inflate(mine)
        if comm is not None:
            from mpi4py import MPI
            wall, cpu = comm.allreduce(wall, op=MPI.MAX), comm.allreduce(cpu, op=MPI.SUM)
        if comm is None or comm.rank == 0:
            print(f"inflate-seconds {wall:.6f} {cpu:.6f}")
    elif kind == "read floor":
        _read_floor(mine)
    elif kind == "job floor":
        _job_floor(mine, out)


# --- the driver ------------------------------------------------------------------------------------
def granules(cache, n, segments, seed):
    """The synthetic granules for these parameters, generated once (cached)."""
    folder = os.path.join(cache, f"synth-g{n}-s{segments}-seed{seed}")
    if not os.path.exists(os.path.join(folder, ".complete")):
        shutil.rmtree(folder, ignore_errors=True)
        print(f"generating {n} granules of {segments} segments per beam into {folder} ...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "readatl06", "synth", folder, "--granules", str(n),
                        "--segments-per-beam", str(segments), "--seed", str(seed)], check=True,
                       stdout=subprocess.DEVNULL)
        open(os.path.join(folder, ".complete"), "w").close()
    return sorted(glob.glob(os.path.join(folder, "*.h5")))


def command(name, ranks, files, folder, out):
    """The command line of a contender; zero work when ``files`` is empty."""
    if name.startswith("readatl06"):
        cmd = [sys.executable, "-m", "readatl06", "reduce", folder, "-o", out, "--no-progress"]
        cmd += ["--compression", "none"] if name.endswith("none") else []
    else:
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", name, "--out", out, *files]
    return (["mpirun", "-n", str(ranks)] if ranks > 1 else []) + cmd


def _children_cpu():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def timed(cmd, out):
    """(wall seconds, CPU seconds of the process and all it started, stdout) of one run in a fresh,
    empty ``out``. The CPU time is less disturbed by other work on a shared machine than the wall."""
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_COMM_WORLD", "PMIX_", "PMI_"))}
    c0, t0 = _children_cpu(), time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall, cpu = time.perf_counter() - t0, _children_cpu() - c0
    if r.returncode != 0:
        sys.exit(f"bench_reduce: {' '.join(cmd[:8])} ... failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return wall, cpu, r.stdout


def _out_bytes(out):
    return sum(os.path.getsize(p) for p in glob.glob(os.path.join(out, "*.h5")))


def check_outputs(out_default, out_none):
    """The two readatl06 modes wrote the same data, deflated and unfiltered (or say what is wrong)."""
    import h5py
    import numpy as np
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(out_default, "*.h5")))
    assert names == sorted(os.path.basename(p) for p in glob.glob(os.path.join(out_none, "*.h5")))
    filters = set()
    for n in names:
        with h5py.File(os.path.join(out_default, n), "r") as a, h5py.File(os.path.join(out_none, n), "r") as b:
            for k in a:
                assert np.array_equal(a[k][()], b[k][()]) and a[k].dtype == b[k].dtype, (n, k)
                filters.add((a[k].compression, b[k].compression))
    return filters


STARTUP_GRANULE = os.path.join(ROOT, "..", "shared", "data", "atl06", "processed_ATL06_20181115223845_07380102_001_01.h5")


def startup(work, granule, repeat):
    """Start-up figures (docs/speed.md): one small real granule against the bare imports / a bare MPI hello."""
    src = os.path.join(work, "startup-in")
    os.makedirs(src, exist_ok=True)
    shutil.copy(granule, src)
    py = sys.executable
    hello = "from mpi4py import MPI; c = MPI.COMM_WORLD; print('hello', c.rank, c.size)"
    runs = [("python -c 'import h5py, numpy'", [py, "-c", "import h5py, numpy"], None),
            ("readatl06 reduce (1 small granule)", [py, "-m", "readatl06", "reduce", src, "-o", "OUT",
                                                   "--no-progress"], 0),
            ("readatl06 list (1 granule)", [py, "-m", "readatl06", "list", src], None),
            ("mpirun -n 2: bare mpi4py hello", ["mpirun", "-n", "2", py, "-c", hello], None),
            ("mpirun -n 2 readatl06 reduce (same granule)", ["mpirun", "-n", "2", py, "-m", "readatl06",
                                                             "reduce", src, "-o", "OUT", "--no-progress"], 3)]
    best = {}
    for _ in range(repeat):
        for name, cmd, _ref in runs:
            out = os.path.join(work, "startup-out")
            wall, _, _ = timed([out if c == "OUT" else c for c in cmd], out)
            best[name] = min(best.get(name, float("inf")), wall)
    print("| start-up, best of %d | seconds | over its reference |" % repeat)
    print("|---|---|---|")
    for name, _cmd, ref in runs:
        over = "" if ref is None else f"+{best[name] - best[runs[ref][0]]:.2f} s"
        print(f"| {name} | {best[name]:.2f} | {over} |")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--worker", choices=CONTENDERS[:3], help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None, help=argparse.SUPPRESS)
    ap.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    ap.add_argument("--granules", type=int, default=16)
    ap.add_argument("--segments-per-beam", type=int, default=60000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--cache", default="/tmp/readatl06-bench-reduce", help="generated granules (kept)")
    ap.add_argument("--work", default="/tmp/readatl06-bench-reduce-work", help="outputs (replaced)")
    ap.add_argument("--startup", action="store_true", help="only the start-up figures (small real granule)")
    ap.add_argument("--startup-granule", default=STARTUP_GRANULE)
    a = ap.parse_args()
    if a.worker:
        return worker(a.worker, a.out, a.files)
    if a.startup:
        return startup(a.work, a.startup_granule, max(a.repeat, 5))

    files = granules(a.cache, a.granules, a.segments_per_beam, a.seed)
    folder = os.path.dirname(files[0])
    empty = os.path.join(a.work, "no-granules")
    os.makedirs(empty, exist_ok=True)
    best = {}                 # (name, ranks, work?) -> best (wall, cpu) (inflate limit: its own seconds)
    sizes = {}
    for _ in range(a.repeat):
        for ranks in a.ranks:
            for name in CONTENDERS:
                slug = name.replace(" ", "-")
                for work in (True, False):
                    out = os.path.join(a.work, f"out-{slug}-{ranks}" + ("" if work else "-zero"))
                    cmd = command(name, ranks, files if work else [], folder if work else empty, out)
                    wall, cpu, stdout = timed(cmd, out)
                    if name == "inflate limit":
                        if not work:
                            continue
                        wall, cpu = (float(x) for x in stdout.split()[-2:])
                    key = (name, ranks, work)
                    old = best.get(key, (float("inf"), float("inf")))
                    best[key] = (min(old[0], wall), min(old[1], cpu))
                    if work and name.startswith("readatl06"):
                        sizes[name] = _out_bytes(out)
    filters = check_outputs(os.path.join(a.work, f"out-readatl06-{a.ranks[0]}"),
                            os.path.join(a.work, f"out-readatl06-none-{a.ranks[0]}"))
    report(a, files, best, sizes, filters)


def report(a, files, best, sizes, filters):
    n = len(files)
    mb = sum(os.path.getsize(p) for p in files) / 1e6
    print(f"bench_reduce: {n} synthetic granules x {a.segments_per_beam} segments/beam ({mb:.0f} MB, "
          f"{mb / n:.1f} MB each), best of {a.repeat}, {os.cpu_count()} cores, {os.uname().nodename}, "
          f"load average {os.getloadavg()[0]:.1f} at the end")
    per = {}
    for kind, k in (("wall", 0), ("CPU", 1)):
        for (name, ranks, work), t in best.items():
            if work:
                start = 0.0 if name == "inflate limit" else best[(name, ranks, False)][k]
                per[(name, ranks)] = (max(t[k] - start, 0.0) / n, start, t[k])
        print()
        what = "wall" if k == 0 else "CPU of all ranks"
        print(f"| per granule, {what} | " + " | ".join(f"{r} rank{'s' if r > 1 else ''}: s | vs job floor"
                                                 for r in a.ranks) + " | scaling 1->2 | start-up s |")
        print("|---|" + "---|---|" * len(a.ranks) + "---|---|")
        for name in CONTENDERS:
            cells = []
            for r in a.ranks:
                t = per[(name, r)][0]
                cells.append(f"{t:.3f} | {t / per[('job floor', r)][0]:.2f}")
            scaling = ""
            if 1 in a.ranks and 2 in a.ranks:   # wall: t1 / (2 t2); CPU: t1 / t2 (work added by a second rank)
                t1, t2 = per[(name, 1)][0], per[(name, 2)][0]
                scaling = f"{t1 / (2 * t2) if k == 0 else t1 / t2:.2f}"
            start = "" if name == "inflate limit" else " / ".join(f"{per[(name, r)][1]:.2f}" for r in a.ranks)
            print(f"| {name} | " + " | ".join(cells) + f" | {scaling} | {start} |")
        if k == 0:
            walls = dict(per)
    per = walls
    print()
    for r in a.ranks:
        whole = {k: n / per[(k, r)][2] for k in CONTENDERS[1:]}
        print(f"whole process, {r} rank(s), granules/s: " + ", ".join(f"{k} {v:.2f}" for k, v in whole.items()))
    print("output: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items())
          + f" (dataset filters default/none: {sorted(filters, key=str)})")


if __name__ == "__main__":
    main()
