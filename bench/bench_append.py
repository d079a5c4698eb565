"""Benchmark of ``merge --append`` (issue 25, docs/merge.md "Appending"): one new cycle appended to a
product of ``--cycles`` cycles, against a full merge of all of them, in seconds and bytes written.

    . scripts/mpienv.sh
    python bench/bench_append.py                          # 10 + 1 cycles of 4 granules, 1000 segments per beam
    python bench/bench_append.py --granules 8 --segments-per-beam 4000 --repeat 3

Setup (not timed): ``readatl06 synth`` makes ``--cycles + 1`` batches of ``--granules`` granules, 91
days apart, and ``readatl06 reduce --resume`` puts them in one OUTDIR, the last batch last. Timed, in
this process (one rank), best of ``--repeat``:

* full       ``merge OUTDIR -o full.h5`` of every cycle;
* plain+1    ``merge --append`` of the last cycle to a plain merged file of the others (the first
             append: the plain file becomes part 0 and its granule_index is read once);
* index+1    ``merge --append`` of the last cycle to a product that is already an index (every earlier
             cycle appended one by one): the usual case, a new cycle every 91 days.

Bytes written: the ``wchar`` of /proc/self/io over the command (every byte handed to write/pwrite),
and the bytes of the files the command made (a hard link to a file already there is not counted). Each appended product is checked equal to the full merge
(every dataset's bytes, dtype and attributes); exit status 1 if not.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

import h5py
import numpy as np


def wchar():
    with open("/proc/self/io") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("wchar"))


def run(args):
    from readatl06.cli import main
    code = main([str(a) for a in args])
    if code:
        sys.exit(f"bench_append: readatl06 {' '.join(map(str, args))}: exit status {code}")


def timed(args):
    w, t = wchar(), time.perf_counter()
    run(args)
    return time.perf_counter() - t, wchar() - w


def files_bytes(paths):
    """{inode: bytes} of the files ``paths`` (a folder: its files)."""
    out = {}
    for p in paths:
        names = [os.path.join(p, n) for n in os.listdir(p)] if os.path.isdir(p) else [p] * os.path.exists(p)
        for q in names:
            st = os.stat(q)
            out[st.st_ino] = st.st_size
    return out


def equal(full, appended):
    with h5py.File(full, "r") as a, h5py.File(appended, "r") as b:
        names = []
        a.visititems(lambda k, v: names.append(k) if isinstance(v, h5py.Dataset) else None)
        return all(a[k].dtype == b[k].dtype and a[k][()].tobytes() == b[k][()].tobytes() for k in names)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cycles", type=int, default=10, help="cycles of the product before the append")
    ap.add_argument("--granules", type=int, default=4, help="granules per cycle")
    ap.add_argument("--segments-per-beam", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--keep", metavar="DIR", help="work here and keep it (default: a temporary folder)")
    a = ap.parse_args()
    work = a.keep or tempfile.mkdtemp(prefix="bench_append_")
    os.makedirs(work, exist_ok=True)
    out = os.path.join(work, "out")
    n = a.cycles + 1
    for i in range(n):
        day = np.datetime64("2019-01-01") + np.timedelta64(91 * i, "D")
        src = os.path.join(work, f"g{i:02d}")
        run(["synth", src, "--granules", a.granules, "--segments-per-beam", a.segments_per_beam, "--seed", i + 1,
             "--start", str(day)])
        run(["reduce", src, "-o", out, "--resume", "--no-progress"])
        if i == a.cycles - 1:                  # the product before the last cycle, a plain file
            os.makedirs(os.path.join(work, "plain"))
            run(["merge", out, "-o", os.path.join(work, "plain", "M.h5")])
    # the same as an index: every cycle appended one by one (OUTDIR holds them all: from a second one)
    stage = os.path.join(work, "stage")
    os.makedirs(os.path.join(work, "index"))
    for i in range(a.cycles):
        run(["reduce", os.path.join(work, f"g{i:02d}"), "-o", stage, "--resume", "--no-progress"])
        run(["merge", stage, "-o", os.path.join(work, "index", "M.h5"), "--append"])
    best = {}
    for _ in range(a.repeat):
        for name, base in (("full", None), ("plain+1", "plain"), ("index+1", "index")):
            folder = os.path.join(work, name)
            shutil.rmtree(folder, ignore_errors=True)
            if base:                           # hard links: the append never changes a file it did not make
                shutil.copytree(os.path.join(work, base), folder, copy_function=os.link)
            else:
                os.makedirs(folder)
            target = os.path.join(folder, "M.h5")
            before = files_bytes([target, target + ".parts"])
            seconds, written = timed(["merge", out, "-o", target] + (["--append"] if base else []))
            made = sum(v for k, v in files_bytes([target, target + ".parts"]).items() if k not in before)
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, written, made, target)
    full = best["full"][3]
    ok = all(equal(full, best[k][3]) for k in ("plain+1", "index+1"))
    print(f"{a.cycles} cycles + 1, {a.granules} granules per cycle, {a.segments_per_beam} segments per beam; "
          f"best of {a.repeat}, one rank")
    print(f"{'':10s} {'seconds':>8s} {'MB written':>11s} {'MB of new files':>16s}")
    for name in ("full", "plain+1", "index+1"):
        s, w, m, _ = best[name]
        print(f"{name:10s} {s:8.2f} {w / 1e6:11.1f} {m / 1e6:16.1f}")
    print("appended products equal the full merge" if ok else "MISMATCH: an appended product differs")
    if not a.keep:
        shutil.rmtree(work)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
