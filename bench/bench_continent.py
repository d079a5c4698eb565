"""Continent scale, part (a): what rank 0's plan of ``reduce --resume`` costs as the granules grow.

    . scripts/mpienv.sh
    python bench/bench_continent.py                        # 10^3, 10^4, 10^5 granules
    python bench/bench_continent.py --granules 1000 10000  # quicker

For N granules it lays out what a resubmitted continent job meets: N zero-byte stand-ins with valid
ATL06 names (regions 10-12, 1,387 RGTs, cycles from 1 on) as the SOURCE folder, and an OUTDIR holding
12 per-beam files (zero bytes) per granule and a manifest whose records say every granule is done
with exactly those files. ``readatl06 reduce SRC -o OUTDIR --resume --timings`` then has nothing to
reduce: its "list" seconds are the plan (listing the sources, selecting by name, reading the
manifest, one listing of OUTDIR, the resume decisions), the rest of its wall time is start-up and
the summary. Printed per N: files, list seconds, microseconds per granule, and the ratio of that to
the smallest N's (flat = O(N); target within 1.3x from 10^3 to 10^5, and 10^5 planned in under a
minute). Best of ``--repeat``; the machine's load is printed.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

BEAMS = ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")


def granule_names(n):
    """n valid, distinct ATL06 names: regions 10-12, RGTs 1-1387, cycles 1.., one second apart."""
    t0 = 1_546_300_800          # 2019-01-01T00:00:00Z
    out = []
    for i in range(n):
        region = 10 + i % 3
        rgt = 1 + (i // 3) % 1387
        cycle = 1 + i // (3 * 1387)
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(t0 + 60 * i))
        out.append(f"ATL06_{stamp}_{rgt:04d}{cycle:02d}{region:02d}_006_01.h5")
    return out


def params_key():
    """The parameter-set key of ``reduce`` with default options (what the records must carry)."""
    from readatl06.atl06.names import Selection
    from readatl06.outputs import manifest
    from readatl06.reduce.granule import ReduceOptions
    return manifest.params_key(ReduceOptions(selection=Selection().as_dict()).parameters())


def lay_out(root, n):
    """SRC/ with n stand-ins, OUT/ with 12 per-beam files each and complete records."""
    src, out = os.path.join(root, "src"), os.path.join(root, "out")
    os.makedirs(src)
    os.makedirs(out)
    key = params_key()
    with open(os.path.join(out, "readatl06-manifest.jsonl"), "w") as manifest:
        for i, name in enumerate(granule_names(n)):
            open(os.path.join(src, name), "wb").close()
            stem = name[:-3]
            outputs = [f"{stem}_{b}_{d}.h5" for b in BEAMS for d in "AD"]
            for o in outputs:
                open(os.path.join(out, o), "wb").close()
            record = {"granule": name, "status": "done", "outputs": outputs, "sizes": {o: 0 for o in outputs},
                      "points": 0, "segments": 0, "params": key, "run": "bench", "rank": 0,
                      "started": "2026-01-01T00:00:00.000+00:00", "error": None, "notes": []}
            manifest.write(json.dumps(record, sort_keys=True) + "\n")
    return src, out


def plan_seconds(src, out):
    """(list seconds from --timings, whole wall seconds) of one resubmission."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "readatl06", "reduce", src, "-o", out, "--resume", "--timings",
                        "--no-progress"], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"reduce --resume failed ({r.returncode}):\n{r.stderr[-2000:]}")
    m = re.search(r"timings \(seconds summed over ranks\): list ([0-9.]+)", r.stdout + r.stderr)
    if not m or "already done, skipped" not in r.stderr:
        sys.exit(f"no list seconds or nothing skipped in the output:\n{r.stdout[-1500:]}\n{r.stderr[-1500:]}")
    return float(m.group(1)), wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--granules", nargs="+", type=int, default=[1000, 10000, 100000])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", default=None, help="where to lay out the folders (default: a temporary folder)")
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")
    print(f"{'granules':>9} {'files':>10} {'layout s':>9} {'list s':>8} {'us/granule':>11} {'ratio':>6} {'wall s':>7}")
    first = None
    for n in args.granules:
        root = tempfile.mkdtemp(prefix=f"continent-{n}-", dir=args.workdir)
        try:
            t0 = time.perf_counter()
            src, out = lay_out(root, n)
            layout = time.perf_counter() - t0
            best = min((plan_seconds(src, out) for _ in range(args.repeat)), key=lambda x: x[0])
            per = best[0] / n * 1e6
            first = first or per
            print(f"{n:>9} {n * 13:>10} {layout:>9.1f} {best[0]:>8.2f} {per:>11.1f} {per / first:>6.2f} {best[1]:>7.2f}")
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
