"""Load balance of the two schedules: makespan / ideal for ``--schedule static`` and ``dynamic``.

    . scripts/mpienv.sh
    python bench/bench_balance.py                          # 2 ranks, 32 lognormal granules
    python bench/bench_balance.py --ranks 2 4 8 16 --granules 64       # on a 16-core machine

(a) granules of lognormal sizes (``synth --size-spread 1``: sigma = 1) reduced whole;
(b) the same granules with a subset (a MultiPolygon of boxes) that keeps every granule smaller than
    the median whole and misses every larger one but the largest (a small box on it): those are skipped by their
    bounds and cost almost nothing, so the cost of a granule no longer follows its file size — what
    a static plan made from file sizes cannot know.

Each run is its own ``mpirun -n R`` launch of this script in worker mode, timing ``readatl06 reduce``
in-process between two barriers. From the run's records (seconds per granule, rank that did it):

  makespan   the largest sum of granule seconds over the ranks (the work, without start-up)
  ideal      max(total granule seconds / R, the longest granule): no schedule can do better
  wall       the reduce between the barriers (listing, records and the summary included)

Runs are interleaved (static, dynamic, dynamic, static, ...) and the best of ``--repeat`` counts.
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
    from mpi4py import MPI

    from readatl06.cli import main
    comm = MPI.COMM_WORLD
    argv = ["reduce", a.input, "-o", a.out, "--no-progress", "--schedule", a.schedule] + a.extra
    comm.Barrier()
    t = time.perf_counter()
    status = main(argv)
    comm.Barrier()
    seconds = time.perf_counter() - t
    if comm.rank == 0:
        print("RESULT " + json.dumps({"seconds": seconds, "status": status}), flush=True)


def granules(cache, count, segments, seed):
    folder = os.path.join(cache, f"balance-g{count}-m{segments}-s{seed}")
    if not os.path.exists(os.path.join(folder, ".complete")):
        shutil.rmtree(folder, ignore_errors=True)
        print(f"bench_balance: writing {count} lognormal granules to {folder} (once)", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "readatl06", "synth", folder, "--granules", str(count),
                        "--segments-per-beam", str(segments), "--size-spread", "1", "--seed", str(seed),
                        "--segments", "2-13"], check=True, stdout=subprocess.DEVNULL)
        open(os.path.join(folder, ".complete"), "w").close()
    return sorted(glob.glob(os.path.join(folder, "*.h5")))


def small_boxes(files, path):
    """A MultiPolygon GeoJSON: the lon/lat box of every granule below the median size (all of its
    points kept) and a small box on the largest one; returns how many granules it touches."""
    import h5py
    sizes = sorted((os.path.getsize(p), p) for p in files)
    polys = []
    for k, (_, p) in enumerate(sizes[:len(sizes) // 2] + sizes[-1:]):
        with h5py.File(p, "r") as f:
            a = {key: float(f.attrs[f"geospatial_{key}"]) for key in ("lat_min", "lat_max", "lon_min", "lon_max")}
        w, e, s, n = a["lon_min"] - 0.05, a["lon_max"] + 0.05, a["lat_min"] - 0.05, a["lat_max"] + 0.05
        if k == len(sizes) // 2:                 # the largest granule: a small part of it
            s, n = 0.5 * (s + n) - 0.1, 0.5 * (s + n) + 0.1
        polys.append([[[w, s], [e, s], [e, n], [w, n], [w, s]]])
    with open(path, "w") as fh:
        json.dump({"type": "MultiPolygon", "coordinates": polys}, fh)
    return len(polys)


def run_once(folder, ranks, schedule, extra, work):
    out = os.path.join(work, "out")
    shutil.rmtree(out, ignore_errors=True)
    cmd = ["mpirun", "-n", str(ranks), sys.executable, HERE, "--worker", "--input", folder, "--out", out,
           "--schedule", schedule, "--", *extra]
    r = subprocess.run(cmd, capture_output=True, text=True)
    m = re.search(r"^RESULT (.*)$", r.stdout, re.M)
    if r.returncode != 0 or not m or json.loads(m.group(1))["status"] != 0:
        sys.exit(f"bench_balance: {' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-2000:]}{r.stderr[-3000:]}")
    with open(os.path.join(out, "readatl06-manifest.jsonl"), encoding="utf-8") as fh:
        records = [json.loads(x) for x in fh if x.strip()]
    load = [0.0] * ranks
    for rec in records:
        load[rec["rank"]] += rec["seconds"]
    total = sum(load)
    ideal = max(total / ranks, max(rec["seconds"] for rec in records))
    outputs = sorted(n for rec in records for n in rec["outputs"])
    return {"costs": {rec["granule"]: rec["seconds"] for rec in records},"wall": json.loads(m.group(1))["seconds"], "makespan": max(load), "ideal": ideal,
            "outputs": outputs, "empty": sum(rec["status"] == "empty" for rec in records)}


def simulated(files, costs, ranks):
    """makespan / ideal of both schedules at ``ranks``, replayed from measured granule costs: static
    is readatl06's own plan (schedule.assign by file size), dynamic hands the largest-first order to
    whichever rank is free first (what the shared counter does, without its latency)."""
    import heapq

    from readatl06.parallel.schedule import assign, largest_first
    sizes = [os.path.getsize(p) for p in files]
    cost = [costs[os.path.basename(p)] for p in files]
    ideal = max(sum(cost) / ranks, max(cost))
    static = max(sum(cost[i] for i in mine) for mine in assign(sizes, ranks))
    free = [(0.0, r) for r in range(ranks)]
    for i in largest_first(sizes):
        t, r = heapq.heappop(free)
        heapq.heappush(free, (t + cost[i], r))
    return static / ideal, max(t for t, _ in free) / ideal


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ranks", type=int, nargs="+", default=[2])
    ap.add_argument("--granules", type=int, default=32)
    ap.add_argument("--segments-per-beam", type=int, default=12000, help="median granule size (default 12000)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--simulate", type=int, nargs="*", default=[4, 8, 16],
                    help="rank counts to replay the measured granule costs on (default 4 8 16)")
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--cache", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "readatl06-bench"))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--input", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--schedule", help=argparse.SUPPRESS)
    ap.add_argument("extra", nargs="*", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a)
    files = granules(a.cache, a.granules, a.segments_per_beam, a.seed)
    folder = os.path.dirname(files[0])
    work = os.path.join(a.cache, "bench-balance")
    os.makedirs(work, exist_ok=True)
    boxes = os.path.join(work, "small.geojson")
    touched = small_boxes(files, boxes)
    sizes = [os.path.getsize(p) / 1e6 for p in files]
    print(f"{len(files)} granules, {min(sizes):.1f}..{max(sizes):.1f} MB (lognormal sigma 1); "
          f"case (b) boxes touch {touched}; best of {a.repeat}; load {os.getloadavg()[0]:.2f}")
    print(f"{'case':22s} {'ranks':>5s} {'schedule':>8s} {'makespan s':>10s} {'ideal s':>8s} "
          f"{'makespan/ideal':>14s} {'wall s':>7s}")
    for case, extra in (("(a) lognormal", []), ("(b) small boxes", ["--polygon", boxes])):
        for ranks in a.ranks:
            best = {}
            for r in range(a.repeat):
                for schedule in (("static", "dynamic") if r % 2 == 0 else ("dynamic", "static")):
                    res = run_once(folder, ranks, schedule, extra, work)
                    old = best.get(schedule)
                    if old is None or res["makespan"] / res["ideal"] < old["makespan"] / old["ideal"]:
                        best[schedule] = res
            if best["static"]["outputs"] != best["dynamic"]["outputs"]:
                sys.exit("bench_balance: static and dynamic wrote different files")
            for schedule, res in best.items():
                print(f"{case:22s} {ranks:5d} {schedule:>8s} {res['makespan']:10.3f} {res['ideal']:8.3f} "
                      f"{res['makespan'] / res['ideal']:14.3f} {res['wall']:7.3f}")
        costs = best["dynamic"]["costs"]
        for ranks in a.simulate:
            st, dy = simulated(files, costs, ranks)
            print(f"{case:22s} {ranks:5d} {'replayed':>8s}  static {st:.3f}, dynamic {dy:.3f} "
                  "(makespan / ideal from the measured granule costs)")
    shutil.rmtree(work, ignore_errors=True)
    print(f"(target: makespan <= 1.15 x ideal for both cases; load at the end {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
