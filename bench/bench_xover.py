"""Benchmark ``readatl06 xover``: crossings per second at 1 and 2 ranks, and against brute force.

    . scripts/mpienv.sh
    python bench/bench_xover.py                          # 24 granules x 600 segments, 1 and 2 ranks + brute force
    python bench/bench_xover.py --segments-per-beam 2000 --no-brute --ranks 1 2 4

Synthetic granules (regions 10 and 12) are written so that every one crosses a 40 km box inside the
Kamb ice stream box (``--box``), reduced with the Kamb box and merged (kept in ``--workdir`` and
reused when it already holds them). Then, best of ``--repeat``:

* index, N ranks   the whole command (read the merged file, project, lines, tiles, crossings, sort,
                   write HDF5) timed inside ``mpirun -n N`` between barriers (no process start-up);
* index core       ``xover.find_crossings`` + columns on lines already in memory, one process;
* brute force      ``xover.brute_force``: every ascending line against every descending line
                   (the same crossing rule, no index), one process, once.

It prints lines, candidate pairs, crossings, seconds and crossings per second, checks that the
brute force finds exactly the crossings of the index and of every rank count (exit status 1
otherwise), and the speed-up of the index over the brute force against ``--target`` (10x).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from readatl06.xover import crossings as xover
from readatl06.xover import run as xover_run
from readatl06.xover import write as xover_write  # noqa: E402
from readatl06.cli import main  # noqa: E402

KAMB = ["-1124782", "81623", "-919821", "-96334"]


def prepare(workdir, granules, segments, box):
    merged = os.path.join(workdir, f"m{granules}x{segments}.h5")
    if os.path.exists(merged):
        return merged
    g, out = os.path.join(workdir, f"g{granules}x{segments}"), os.path.join(workdir, f"o{granules}x{segments}")
    t = time.perf_counter()
    assert main(["synth", g, "--granules", str(granules), "--segments-per-beam", str(segments), "--segments",
                 "10", "12", "--bbox-xy", *map(str, box), "--crs", "EPSG:3031"]) == 0
    assert main(["reduce", g, "-o", out, "--merge", merged, "--no-progress", "--bbox-xy", *KAMB,
                 "--crs", "EPSG:3031"]) == 0
    print(f"prepared {merged} in {time.perf_counter() - t:.0f} s", flush=True)
    return merged


def load_lines(merged):
    a, d = [], []
    for t in xover_run.list_tracks(merged):
        (a if t[3] == "ascending" else d).append(xover_run.read_lines(t, 0, t[4], 100.0))
    return np.concatenate(a), np.concatenate(d)


def worker(merged, out, repeat):
    """Under mpirun: the whole command ``repeat`` times between barriers; rank 0 prints JSON."""
    from readatl06.parallel.world import world
    comm = world()
    best = float("inf")
    for _ in range(repeat):
        comm.Barrier()
        t = time.perf_counter()
        with open(os.devnull, "w") as quiet:
            stdout, sys.stdout = sys.stdout, quiet
            try:
                xover_run.run_xover(comm, merged, out, overwrite=True)
            finally:
                sys.stdout = stdout
        comm.Barrier()
        best = min(best, time.perf_counter() - t)
    if comm.rank == 0:
        print(json.dumps({"ranks": comm.size, "seconds": best}))


def timed(fn, repeat):
    best, value = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - t)
    return best, value


def candidate_pairs(a, d):
    size = xover.cell_size(a, d)
    ox = float(min(a["x0"].min(), d["x0"].min(), a["x1"].min(), d["x1"].min()))
    oy = float(min(a["y0"].min(), d["y0"].min(), a["y1"].min(), d["y1"].min()))
    return sum(c[0].size for c in xover._candidate_chunks(a, d, ox, oy, size, xover.MAX_PAIRS))


def run(args):
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench-xover-")
    os.makedirs(workdir, exist_ok=True)
    merged = prepare(workdir, args.granules, args.segments_per_beam, args.box)
    a, d = load_lines(merged)
    t_core, found = timed(lambda: xover.find_crossings(a, d), args.repeat)
    n = found[0].size
    rows, ok = [], True
    rows.append(("index core, 1 process", t_core, n))
    reference = None
    for ranks in args.ranks:
        out = os.path.join(workdir, f"x{ranks}.h5")
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", merged, out, "--repeat", str(args.repeat)]
        if ranks > 1:
            cmd = ["mpirun", "-n", str(ranks), *cmd]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_COMM_WORLD", "PMIX_", "PMI_"))}
        r = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if r.returncode:
            sys.exit(f"bench_xover: {' '.join(cmd)} failed:\n{r.stderr}")
        seconds = json.loads(r.stdout.strip().splitlines()[-1])["seconds"]
        cols, _ = xover_write.read(out)
        rows.append((f"index, whole command, {ranks} rank(s)", seconds, cols["x"].size))
        if reference is None:
            reference = cols
        same = all(np.array_equal(reference[k], cols[k]) for k in xover.COLUMNS)
        ok &= same and cols["x"].size == n
        if not same:
            print(f"MISMATCH: {ranks} ranks differ from {args.ranks[0]}")
    speedup = None
    if args.brute:
        t_brute, brute = timed(lambda: xover.brute_force(a, d), 1)
        rows.append(("brute force, 1 process", t_brute, brute[0].size))
        same = sorted(zip(brute[0], brute[1])) == sorted(zip(found[0], found[1]))
        ok &= same
        if not same:
            print("MISMATCH: brute force and index find different crossings")
        speedup = t_brute / t_core
    pairs = candidate_pairs(a, d)
    print(f"\n{args.granules} granules x {args.segments_per_beam} segments per beam: {a.size:,} ascending x "
          f"{d.size:,} descending lines = {a.size * d.size:.3g} line pairs; the index tests {pairs:,} "
          f"candidate pairs ({pairs / max(a.size * d.size, 1):.2e} of them); {n:,} crossings\n")
    print(f"| {'what':<34} | {'seconds':>8} | {'crossings':>9} | {'crossings/s':>12} |")
    print(f"|{'-' * 36}|{'-' * 10}|{'-' * 11}|{'-' * 14}|")
    for what, s, k in rows:
        print(f"| {what:<34} | {s:8.3f} | {k:9,} | {k / s:12,.0f} |")
    if speedup is not None:
        verdict = "meets" if speedup >= args.target else "MISSES"
        whole = [s for w, s, _ in rows if w.endswith(" 1 rank(s)")]
        print(f"\nindex core / brute force: {speedup:,.0f}x faster ({verdict} the {args.target:g}x target)"
              + (f"; whole 1-rank command: {t_brute / whole[0]:,.0f}x faster" if whole else ""))
    print("identical crossings: " + ("yes" if ok else "NO"))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"granules": args.granules, "segments_per_beam": args.segments_per_beam, "lines_a": int(a.size),
                       "lines_d": int(d.size), "candidate_pairs": int(pairs), "crossings": int(n),
                       "rows": [{"what": w, "seconds": s, "crossings": k} for w, s, k in rows],
                       "speedup": speedup, "identical": bool(ok)}, fh, indent=1)
    return 0 if ok else 1


def parse(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--granules", type=int, default=24)
    p.add_argument("--segments-per-beam", type=int, default=600)
    p.add_argument("--box", type=float, nargs=4, default=[-880000, -840000, -880000, -840000],
                   metavar=("XMIN", "XMAX", "YMIN", "YMAX"), help="EPSG:3031 box every granule crosses")
    p.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--brute", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--target", type=float, default=10.0)
    p.add_argument("--workdir", help="keep the synthetic granules here (reused when present)")
    p.add_argument("--json", help="also write the figures to this JSON file")
    p.add_argument("--worker", nargs=2, metavar=("MERGED", "OUT"), help=argparse.SUPPRESS)
    return p.parse_args(argv)


if __name__ == "__main__":
    args = parse()
    if args.worker:
        worker(*args.worker, args.repeat)
        sys.exit(0)
    sys.exit(run(args))
