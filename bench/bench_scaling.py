"""Strong and weak scaling of `readatl06 reduce` over MPI ranks (issue 12.3).

    . scripts/mpienv.sh
    python bench/bench_scaling.py                      # ranks 1, 2, 4, ... up to the cores
    python bench/bench_scaling.py --ranks 1 2 4 8 16 --granules-per-rank 8 --merge --json scaling.json

Synthetic granules (`readatl06 synth DIR --granules K --segments-per-beam M`, written once under
--cache and reused) are the input. Strong scaling: the same set (--strong-granules, default
granules-per-rank x the largest rank count) on every rank count. Weak scaling: granules-per-rank x
ranks granules. Each run is its own `mpirun -n R` launch of this script in --worker mode, which
times `readatl06 reduce` in-process between two barriers (Python and MPI start-up excluded; the
launch's whole wall time is printed too). Runs are interleaved (every rank count once, then again,
alternating direction) and the best of --repeat (3) counts. Efficiency: strong T1 / (R TR), weak
T1 / TR. The input is read from the page cache after the first round. Prints a table on stdout.
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.abspath(__file__)


def worker(a):
    """One timed run on every rank of this mpirun launch; rank 0 prints one RESULT line."""
    from mpi4py import MPI

    from readatl06.cli import main
    comm = MPI.COMM_WORLD
    argv = ["reduce", "@" + a.list, "-o", a.out, "--no-progress", "--schedule", a.schedule]
    if a.merge_file:
        argv += ["--merge", a.merge_file]
    comm.Barrier()
    t = time.perf_counter()
    status = main(argv)
    comm.Barrier()
    seconds = time.perf_counter() - t
    status = comm.allreduce(status, op=MPI.MAX)
    if comm.rank == 0:
        print("RESULT " + json.dumps({"seconds": seconds, "status": status, "ranks": comm.size}), flush=True)


def default_ranks():
    n = os.cpu_count() or 1
    ranks, r = [], 1
    while r < n:
        ranks.append(r)
        r *= 2
    return ranks + [n]


def synth(cache, count, segments, seed):
    """The cached folder of ``count`` synthetic granules (written on first use, all ranks of the machine)."""
    folder = os.path.join(cache, f"synth-g{count}-m{segments}-s{seed}")
    marker = os.path.join(folder, ".complete")
    if os.path.exists(marker):
        return folder
    tmp = folder + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    n = max(1, min(os.cpu_count() or 1, count))
    print(f"bench_scaling: writing {count} synthetic granules ({segments} segments per beam) to {folder} "
          f"on {n} ranks (once)", file=sys.stderr, flush=True)
    subprocess.run(["mpirun", "-n", str(n), sys.executable, "-m", "readatl06", "synth", tmp,
                    "--granules", str(count), "--segments-per-beam", str(segments), "--seed", str(seed)],
                   check=True, stdout=subprocess.DEVNULL)
    shutil.rmtree(folder, ignore_errors=True)
    os.rename(tmp, folder)
    with open(marker, "w") as f:
        f.write(json.dumps({"granules": count, "segments_per_beam": segments, "seed": seed}) + "\n")
    return folder


def run_once(granules, ranks, work, merge, schedule):
    """One mpirun launch reducing ``granules``: (seconds in reduce, seconds of the whole launch)."""
    out = os.path.join(work, "out")
    shutil.rmtree(out, ignore_errors=True)
    lst = os.path.join(work, "granules.txt")
    with open(lst, "w") as f:
        f.write("\n".join(granules) + "\n")
    cmd = ["mpirun", "-n", str(ranks), sys.executable, HERE, "--worker", "--list", lst, "--out", out,
           "--schedule", schedule]
    if merge:
        merged = os.path.join(work, "merged.h5")
        if os.path.exists(merged):
            os.remove(merged)
        cmd += ["--merge-path", merged]
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    m = re.search(r"^RESULT (.*)$", r.stdout, re.M)
    if r.returncode != 0 or not m:
        sys.exit(f"bench_scaling: {' '.join(cmd)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    res = json.loads(m.group(1))
    if res["status"] != 0:
        sys.exit(f"bench_scaling: reduce exited with {res['status']}:\n{r.stderr}")
    return res["seconds"], wall


def loadavg():
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, nargs="+", default=None, help="rank counts (default 1, 2, 4, ... cores)")
    ap.add_argument("--granules-per-rank", type=int, default=8, help="weak scaling: granules per rank (default 8)")
    ap.add_argument("--strong-granules", type=int, default=None,
                    help="strong scaling: the fixed set (default granules-per-rank x the largest rank count)")
    ap.add_argument("--segments-per-beam", type=int, default=10000, help="synthetic granule size (default 10000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="rounds; the best counts (default 3)")
    ap.add_argument("--merge", action="store_true", help="time reduce --merge (default: reduce only)")
    ap.add_argument("--schedule", choices=("dynamic", "static"), default="dynamic", help="reduce --schedule")
    ap.add_argument("--cache", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "readatl06-bench-scaling"))
    ap.add_argument("--json", help="write every run and the figures to this file")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--list", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--merge-path", dest="merge_file", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a)

    ranks = sorted(set(a.ranks or default_ranks()))
    strong_k = a.strong_granules or a.granules_per_rank * ranks[-1]
    total = max(strong_k, a.granules_per_rank * ranks[-1])
    folder = synth(a.cache, total, a.segments_per_beam, a.seed)
    granules = sorted(glob.glob(os.path.join(folder, "*.h5")))
    if len(granules) < total:
        sys.exit(f"bench_scaling: {folder} has {len(granules)} granules, expected {total}")
    mb = sum(os.path.getsize(p) for p in granules) / len(granules) / 1e6
    # (ranks, granules) runs; the largest weak-scaling run is often the strong set: measured once
    runs = sorted({(r, strong_k) for r in ranks} | {(r, a.granules_per_rank * r) for r in ranks})
    work = os.path.join(a.cache, f"work-{os.getpid()}")
    os.makedirs(work, exist_ok=True)
    best, every = {}, []
    print(f"bench_scaling: {os.cpu_count()} cores, load average before {loadavg()}; {len(runs)} runs x "
          f"{a.repeat} rounds", file=sys.stderr, flush=True)
    try:
        for rnd in range(a.repeat):
            for r, k in (runs if rnd % 2 == 0 else runs[::-1]):
                sec, wall = run_once(granules[:k], r, work, a.merge, a.schedule)
                every.append({"round": rnd, "ranks": r, "granules": k, "seconds": sec, "launch_seconds": wall})
                b = best.get((r, k))
                if b is None or sec < b[0]:
                    best[(r, k)] = (sec, wall)
                print(f"  round {rnd + 1}: {r} ranks, {k} granules: {sec:.2f} s (launch {wall:.2f} s)",
                      file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    after = loadavg()

    what = ("reduce --merge" if a.merge else "reduce") + f" --schedule {a.schedule}"
    print(f"bench_scaling: readatl06 {what}, synthetic granules of {a.segments_per_beam} segments per beam "
          f"({mb:.1f} MB each, page cache), best of {a.repeat} interleaved rounds; {os.cpu_count()} cores, "
          f"load average after {after}")
    t1 = best[(ranks[0], strong_k)][0] * ranks[0]
    figures = {"strong": [], "weak": []}
    print(f"strong scaling, {strong_k} granules:")
    print("  ranks   seconds  granules/s  speed-up  efficiency  (launch s)")
    for r in ranks:
        sec, wall = best[(r, strong_k)]
        eff = t1 / (r * sec)
        figures["strong"].append({"ranks": r, "granules": strong_k, "seconds": sec, "speedup": t1 / sec,
                                  "efficiency": eff, "launch_seconds": wall})
        print(f"  {r:5d}  {sec:8.2f}  {strong_k / sec:10.1f}  {t1 / sec:8.2f}  {eff:9.0%}   ({wall:.2f})")
    w1 = best[(ranks[0], a.granules_per_rank * ranks[0])][0]
    print(f"weak scaling, {a.granules_per_rank} granules per rank:")
    print("  ranks  granules   seconds  granules/s  efficiency  (launch s)")
    for r in ranks:
        k = a.granules_per_rank * r
        sec, wall = best[(r, k)]
        eff = w1 / sec
        figures["weak"].append({"ranks": r, "granules": k, "seconds": sec, "efficiency": eff,
                                "launch_seconds": wall})
        print(f"  {r:5d}  {k:8d}  {sec:8.2f}  {k / sec:10.1f}  {eff:9.0%}   ({wall:.2f})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"what": what, "segments_per_beam": a.segments_per_beam, "mb_per_granule": mb,
                       "cores": os.cpu_count(), "repeat": a.repeat, "runs": every, **figures}, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
