"""Continent scale (issue 23): what a job over 10^5 granules on hundreds of ranks costs, measured on
this machine and modelled from the measurements.

    . scripts/mpienv.sh
    python bench/bench_continent.py                                  # every part, full size (long)
    python bench/bench_continent.py --parts a --granules 1000 10000  # the plan only, quicker
    python bench/bench_continent.py --parts b c --pipeline-granules 100 --ranks 1 4   # quick (< 2 min)

(a) ``--granules``: rank 0's plan of a resubmitted ``reduce --resume``. For N granules it lays out N
zero-byte stand-ins with valid ATL06 names (regions 10-12, 1,387 RGTs, cycles from 1 on) as the
SOURCE folder, and an OUTDIR holding 12 per-beam files (zero bytes) per granule and a manifest whose
records say every granule is done with exactly those files; ``reduce --resume --timings`` then has
nothing to reduce, and its "list" seconds are the plan. Printed per N: list seconds, microseconds per
granule and their ratio to the smallest N's (flat = O(N)). Best of ``--repeat``.

(b) ``--pipeline-granules``, ``--ranks``: the whole pipeline over small synthetic granules
(``readatl06 synth``, ``--segments-per-beam``, made once on 2 ranks and kept in ``--cache``) on each
rank count, oversubscribed: ``reduce --merge``, ``merge OUTDIR``, ``export`` and ``xover`` of the
merged file (of OUTDIR with ``--from-outdir``). Per command: wall seconds of the whole ``mpirun``,
the largest rank's peak resident memory, the bytes the busiest rank sent and received in MPI calls (``READATL06_TRAFFIC``,
readatl06/parallel/traffic.py), reduce's ``--timings``; and the sha256 of every output (the per-beam
files as one digest), which must be the same at every rank count (exit status 1 otherwise).

(m) ``--memory-granules``, ``--memory-ranks``, ``--memory-merge-memory``: peak memory per rank of
``reduce --merge`` at a fixed ``--merge-memory`` (16 MB: the merge's rounds are full from 10^3 granules
on; per-beam files written: with ``--no-per-beam`` a rank keeps all its tracks) for 10^3 and 10^4 granules (past the 2,000 distinct synthetic ones: hard links to them under the names of
later cycles, 91 days on); then of its resubmission (``--resume --overwrite``: every granule skipped
after its files are checked against their recorded checksums, the merged file rebuilt from them).

(c) ``--model-*``, ``--bandwidth``: 10^5 granules on 256, 1,024 and 4,096 ranks modelled from the
figures of (a), (b) and (m) (kept in ``--results``, so each part can run alone), from rank 0's HDF5
calls per merged dataset and chunk (measured here) and from one typical synthetic granule
(``--typical-segments``) reduced and merged here; every formula is printed with what is measured and
what is modelled, and the headline: Antarctica on 256 ranks, ``reduce --merge`` end to end.
"""
import argparse
import hashlib
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


# ---- part (b): the pipeline on 1, 4, 16, 64 ranks -------------------------------------------------

def mpirun(ranks, args, traffic=None, cwd=None):
    """``mpirun -n ranks python -m readatl06 args`` (READATL06_TRAFFIC=traffic); (wall s, stdout+stderr)."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_btl_vader_single_copy_mechanism="none",
               OMPI_MCA_hwloc_base_binding_policy="none")
    if traffic:
        env["READATL06_TRAFFIC"] = traffic
    cmd = ["mpirun", "-n", str(ranks), sys.executable, "-m", "readatl06", *map(str, args)]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-1500:]}\n{r.stderr[-2500:]}")
    return wall, r.stdout + r.stderr


def synth_cache(cache, n, segments):
    """A folder of n distinct synthetic granules (``readatl06 synth``, made once on 2 ranks and kept)."""
    for have in sorted(int(d.split("-")[1]) for d in os.listdir(cache) if re.fullmatch(rf"synth-\d+-{segments}", d)):
        if have >= n:
            return os.path.join(cache, f"synth-{have}-{segments}")
    path = os.path.join(cache, f"synth-{n}-{segments}")
    t0 = time.perf_counter()
    mpirun(2, ["synth", path + ".part", "--granules", n, "--segments-per-beam", segments])
    os.rename(path + ".part", path)
    print(f"synth: {n} granules of {segments} segments per beam in {time.perf_counter() - t0:.0f} s -> {path}")
    return path


def source_folder(cache, n, segments, replicas=False):
    """SRC with n granules as hard links into the cache: distinct synthetic granules, or (``replicas``)
    as many as the cache has, each again under the name of a later cycle (91 days on) until n."""
    base = synth_cache(cache, n if not replicas else min(n, 2000), segments)
    names = sorted(f for f in os.listdir(base) if f.endswith(".h5"))
    src = os.path.join(cache, f"src-{n}-{segments}")
    if os.path.isdir(src) and len(os.listdir(src)) == n:
        return src
    shutil.rmtree(src, ignore_errors=True)
    os.makedirs(src)
    for i in range(n):
        name, k = names[i % len(names)], i // len(names)
        if k and not replicas:
            sys.exit(f"{base} has only {len(names)} granules")
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(
            time.mktime(time.strptime(name[6:20], "%Y%m%d%H%M%S")) + k * 91 * 86400))
        new = f"ATL06_{stamp}_{name[21:25]}{int(name[25:27]) + k:02d}{name[27:]}"
        os.link(os.path.join(base, name), os.path.join(src, new))
    return src


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def traffic(folder):
    """Per rank: peak MiB, bytes sent, bytes received (every operation), from READATL06_TRAFFIC's files."""
    rows = []
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name)) as fh:
            r = json.load(fh)
        ops = r["ops"].values()
        rows.append({"rank": r["rank"], "mib": r["maxrss_kib"] / 1024, "sent": sum(o["sent"] for o in ops),
                     "received": sum(o["received"] for o in ops), "ops": r["ops"]})
    return sorted(rows, key=lambda x: x["rank"])


COMMANDS = ("reduce --merge", "merge OUTDIR", "export", "xover")


def pipeline(src, root, ranks, merge_memory, from_outdir=False):
    """The four commands on ``ranks`` ranks in the folder ``root``: {command: figures}, {output: sha256},
    {output: bytes}."""
    out, merged = os.path.join(root, "out"), os.path.join(root, "reduced.h5")
    steps = {
        "reduce --merge": ["reduce", src, "-o", "out", "--merge", "reduced.h5", "--merge-memory", merge_memory,
                           "--timings", "--no-progress"],
        "merge OUTDIR": ["merge", "out", "-o", "merged.h5", "--merge-memory", merge_memory],
        "export": ["export", "out" if from_outdir else "reduced.h5", "-o", "table.parquet"],
        "xover": ["xover", "out" if from_outdir else "reduced.h5", "-o", "xovers.h5"],
    }
    figures = {}
    for name, args in steps.items():
        folder = os.path.join(root, "traffic", name.split()[0])
        wall, text = mpirun(ranks, args, traffic=folder, cwd=root)
        rows = traffic(folder)
        f = {"wall": wall, "peak_mib": max(r["mib"] for r in rows), "rank0_mib": rows[0]["mib"],
             "sent": max(r["sent"] for r in rows), "received": max(r["received"] for r in rows),
             "rank0_sent": rows[0]["sent"], "rank0_received": rows[0]["received"],
             "ops": {op: max(r["ops"].get(op, {}).get("received", 0) for r in rows)
                     for op in sorted({op for r in rows for op in r["ops"]})}}
        m = re.search(r"timings \(seconds summed over ranks\): list ([0-9.]+), read and inflate ([0-9.]+), "
                      r"filter ([0-9.]+), write ([0-9.]+)", text)
        if m:
            f.update(zip(("list", "read", "filter", "write"), map(float, m.groups())))
        m = re.search(r"timings: merge ([0-9.]+) s", text)
        if m:
            f["merge"] = float(m.group(1))
        m = re.search(r"([0-9]+) points kept", text)
        if m:
            f["points"] = int(m.group(1))
        figures[name] = f
    digests = {os.path.basename(p): sha256(p) for p in
               [merged, os.path.join(root, "merged.h5"), os.path.join(root, "table.parquet"), os.path.join(root, "xovers.h5")]}
    beams = hashlib.sha256()
    for name in sorted(n for n in os.listdir(out) if re.search(r"_gt\d[lr]_[AD]\.h5$", n)):
        beams.update(f"{name} {sha256(os.path.join(out, name))}\n".encode())
    digests["per-beam files"] = beams.hexdigest()
    sizes = {k: os.path.getsize(os.path.join(root, k)) for k in ("reduced.h5", "table.parquet", "xovers.h5")}
    sizes["per-beam files"] = sum(os.path.getsize(os.path.join(out, n)) for n in os.listdir(out)
                                  if re.search(r"_gt\d[lr]_[AD]\.h5$", n))
    return figures, digests, sizes


def part_b(args, results):
    src = source_folder(args.cache, args.pipeline_granules, args.segments_per_beam)
    n = args.pipeline_granules
    print(f"\n(b) the pipeline: {n} synthetic granules ({args.segments_per_beam} segments per beam), "
          f"--merge-memory {args.merge_memory}, export and xover of {'OUTDIR' if args.from_outdir else 'MERGED'}; load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    print("    wall s: the whole mpirun; peak MiB: the largest rank's ru_maxrss; sent/received: the busiest rank's")
    print("    bytes in MPI calls (pickled objects as pickled, buffers as counted); list/merge s: reduce --timings")
    head = f"{'ranks':>5} {'command':<15} {'wall s':>7} {'peak MiB':>8} {'rank0 MiB':>9} {'sent KiB':>9} {'recv KiB':>9}  phases"
    print(head + "\n" + "-" * len(head))
    rows, reference, ok = {}, None, True
    for p in args.ranks:
        root = os.path.join(args.cache, f"run-{n}")     # one path for all (xover records its source's)
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        figures, digests, sizes = pipeline(src, root, p, args.merge_memory, args.from_outdir)
        for name, f in figures.items():
            phases = ", ".join(f"{k} {f[k]:.2f}" for k in ("list", "read", "filter", "write", "merge") if k in f)
            print(f"{p:>5} {name:<15} {f['wall']:>7.1f} {f['peak_mib']:>8.0f} {f['rank0_mib']:>9.0f} "
                  f"{f['sent'] / 1024:>9.0f} {f['received'] / 1024:>9.0f}  {phases}")
        reference = reference or digests
        same = digests == reference
        ok &= same
        print(f"{p:>5} outputs {'identical to ' + str(args.ranks[0]) + ' rank(s)' if same else 'DIFFER'}: "
              + ", ".join(f"{k} {v[:12]}" for k, v in digests.items()))
        rows[str(p)] = {"figures": figures, "digests": digests, "sizes": sizes}
        shutil.rmtree(root, ignore_errors=True)
    results["b"] = {"granules": n, "segments": args.segments_per_beam, "merge_memory": args.merge_memory, "ranks": rows}
    return ok


# ---- part (m): memory per rank against the number of granules ------------------------------------

def part_m(args, results):
    print(f"\n(m) memory per rank: reduce --merge --merge-memory {args.memory_merge_memory} on "
          f"{args.memory_ranks} ranks, {args.segments_per_beam} segments per beam; load {os.getloadavg()[0]:.2f}")
    print("    rounds: the merge's (12 groups; more than one round per group: its buffers were as large as "
          "--merge-memory lets them be)")
    print("    resume: the same command again with --resume --overwrite: every granule skipped (its files "
          "checked against the manifest), the merged file rebuilt from the per-beam files")
    head = (f"{'granules':>8} {'run':>7} {'wall s':>7} {'peak MiB (max rank)':>19} {'rank0 MiB':>9} {'recv KiB':>9} "
            f"{'ratio':>6} {'rounds':>7}")
    print(head + "\n" + "-" * len(head))
    rows, resumed, first = {}, {}, {}
    for n in args.memory_granules:
        src = source_folder(args.cache, n, args.segments_per_beam, replicas=True)
        root = os.path.join(args.cache, f"mem-{n}")
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        folder = os.path.join(root, "traffic")
        command = ["reduce", src, "-o", os.path.join(root, "out"), "--merge", os.path.join(root, "m.h5"),
                   "--merge-memory", args.memory_merge_memory, "--no-progress"]
        for how, extra in (("first", []), ("resume", ["--resume", "--overwrite"])):
            folder = os.path.join(root, f"traffic-{how}")
            wall, text = mpirun(args.memory_ranks, command + extra, traffic=folder)
            if how == "resume" and f"{n} granules already done, skipped" not in text:
                sys.exit(f"the resubmission did not skip every granule:\n{text[-1500:]}")
            t = traffic(folder)
            peak = max(r["mib"] for r in t)
            rounds = re.search(r"\(in ([0-9]+) rounds\)", text)      # more than 12: the rounds were full
            row = {"wall": wall, "peak_mib": peak, "rank0_mib": t[0]["mib"], "received": max(r["received"] for r in t),
                   "rounds": int(rounds.group(1)) if rounds else 12}
            if how == "first":
                rows[str(n)] = row
            else:
                resumed[str(n)] = row
            first.setdefault(how, peak)
            print(f"{n:>8} {how:>7} {wall:>7.1f} {peak:>19.1f} {t[0]['mib']:>9.1f} {row['received'] / 1024:>9.0f} "
                  f"{peak / first[how]:>6.3f} {row['rounds']:>7}")
        shutil.rmtree(root, ignore_errors=True)
    results["m"] = {"ranks": args.memory_ranks, "merge_memory": args.memory_merge_memory, "granules": rows,
                    "resume": resumed}


# ---- part (c): the model of 10^5 granules on 256, 1,024, 4,096 ranks ------------------------------

def chunk_costs(tmp, datasets=24, chunks=400):
    """Rank 0's HDF5 calls of a merge, measured: (s per dataset created, s per chunk placed) through the
    merge's own file object (readatl06.merge.writer.ChunkHoles) and creation property lists; CPU
    seconds of this process (the calls are CPU-bound; a loaded machine would inflate wall time)."""
    import h5py
    import numpy as np
    from readatl06.merge import layout
    from readatl06.merge.writer import CHUNK, ChunkHoles, file_access
    holes = ChunkHoles(os.path.join(tmp, "chunks.h5"))
    f = h5py.File(h5py.h5f.create(b"chunks", h5py.h5f.ACC_TRUNC, fapl=file_access(holes)))
    fid = f.id
    n = CHUNK * chunks
    t0 = time.process_time()
    dsets = [h5py.h5d.create(fid, f"v{i}".encode(), h5py.h5t.IEEE_F64LE, h5py.h5s.create_simple((n,)),
                             dcpl=layout.dcpl(n, CHUNK, "deflate", np.float64, np.nan)) for i in range(datasets)]
    t1 = time.process_time()
    for c in range(chunks):                       # chunk-major, as the merge places them
        for d in dsets:
            holes.allocate(d, c * CHUNK, 30000 + c % 7)
    t2 = time.process_time()
    del dsets
    f.close()                                     # every object of the file, then the file object
    holes.close()
    return (t1 - t0) / datasets, (t2 - t1) / (datasets * chunks)


def typical_granule(args):
    """One synthetic granule of --typical-segments per beam reduced and merged on 1 rank: its sizes."""
    base = synth_cache(args.cache, 1, args.typical_segments)
    src = os.path.join(args.cache, f"typical-{args.typical_segments}")
    shutil.rmtree(src, ignore_errors=True)
    os.makedirs(os.path.join(src, "in"))
    name = sorted(f for f in os.listdir(base) if f.endswith(".h5"))[0]
    os.link(os.path.join(base, name), os.path.join(src, "in", name))
    out, merged = os.path.join(src, "out"), os.path.join(src, "m.h5")
    _, text = mpirun(1, ["reduce", os.path.join(src, "in"), "-o", out, "--merge", merged, "--timings", "--no-progress"])
    m = re.search(r"read and inflate ([0-9.]+), filter ([0-9.]+), write ([0-9.]+); ([0-9.]+) MB read", text)
    g = {"file": os.path.getsize(os.path.join(src, "in", name)), "read": float(m.group(4)) * 1e6,
         "cpu": sum(map(float, m.groups()[:3])), "merge": float(re.search(r"merge ([0-9.]+) s", text).group(1)),
         "per_beam": sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out) if f.endswith("_A.h5") or f.endswith("_D.h5")),
         "merged": os.path.getsize(merged), "points": int(re.search(r"([0-9]+) points kept", text).group(1))}
    import h5py
    with h5py.File(merged, "r") as f:
        g["vars"] = len([k for k in f["gt1l/ascending"] if isinstance(f["gt1l/ascending"][k], h5py.Dataset)])
    shutil.rmtree(src, ignore_errors=True)
    return g


DATA_OPS = ("Alltoallv", "Alltoall", "p2p", "scatter")   # a rank's share of the data: N/P, plus counts per rank


def nonnegative_fit(columns, y):
    """Least squares with coefficients >= 0: the best over every subset of the columns."""
    import itertools
    import numpy as np
    best = (np.inf, np.zeros(len(columns)))
    for k in range(1, len(columns) + 1):
        for subset in itertools.combinations(range(len(columns)), k):
            if k > len(y):
                continue
            a = np.column_stack([columns[i] for i in subset])
            c = np.linalg.lstsq(a, y, rcond=None)[0]
            if np.all(c >= 0):
                err = float(np.sum((a @ c - y) ** 2))
                if err < best[0] - 1e-9 * max(1.0, float(y @ y)):
                    full = np.zeros(len(columns))
                    full[list(subset)] = c
                    best = (err, full)
    return best[1]


def fit_messages(rows, command, nb):
    """(a, b, c, d): the busiest rank of ``command`` receives R(N,P) = a N + b N/P + c P + d P^2 bytes,
    fitted per operation over the measured P > 1 at N = nb (coefficients >= 0): tables (broadcast,
    gathers) as a N + c P + d P^2, a rank's share of the points (DATA_OPS) as b N/P + c P."""
    import numpy as np
    ps = np.array([int(p) for p in rows if int(p) > 1], float)
    coef = np.zeros(4)
    if not ps.size:
        return tuple(coef)
    ops = {op for p in ps for op in rows[str(int(p))]["figures"][command]["ops"]}
    for op in ops:
        y = np.array([rows[str(int(p))]["figures"][command]["ops"].get(op, 0) for p in ps], float)
        if op in DATA_OPS:
            b, c = nonnegative_fit([nb / ps, ps], y)
            coef += (0, b, c, 0)
        else:
            a, c, d = nonnegative_fit([np.full(ps.size, float(nb)), ps, ps ** 2], y)
            coef += (a, 0, c, d)
    return tuple(float(x) for x in coef)


def received(fit, n, p):
    a, b, c, d = fit
    return a * n + b * n / p + c * p + d * p * p


def memory_model(rows, nb, m):
    """(M0 MiB, j KiB per granule, k KiB per granule per rank, P of part (m)): the largest rank's peak
    M(N,P) = M0 + j N + k N/P. k from part (b) (peak = alpha + beta/P over its rank counts at N = nb,
    k = beta/nb), j from part (m)'s slope at its fixed P (slope = j + k/P), M0 from the rest."""
    import numpy as np
    ps = np.array(sorted(int(p) for p in rows), float)
    peaks = np.array([rows[str(int(p))]["figures"]["reduce --merge"]["peak_mib"] for p in ps])
    alpha, beta = nonnegative_fit([np.ones(ps.size), 1 / ps], peaks) if ps.size > 1 else (peaks[0], 0.0)
    k = beta * 1024 / nb
    j, pm = 0.0, 0
    if m and len(m["granules"]) >= 2:
        pm = m["ranks"]
        (n1, r1), (n2, r2) = sorted((int(n), v["peak_mib"]) for n, v in m["granules"].items())[:2]
        j = max(0.0, (r2 - r1) * 1024 / (n2 - n1) - k / pm)
    return alpha - j * nb / 1024, j, k, pm


def part_c(args, results):
    a, b, m = results.get("a"), results.get("b"), results.get("m")
    if not b:
        sys.exit("part (c) needs the figures of part (b) in --results: run --parts b first")
    tmp = tempfile.mkdtemp(prefix="continent-c-", dir=args.cache)
    try:                                   # best of 3: the machine's load is not rank 0's cost
        costs = [chunk_costs(os.path.join(tmp, str(i))) for i in range(3) if not os.makedirs(os.path.join(tmp, str(i)))]
        t_dset, t_chunk = min(c[0] for c in costs), min(c[1] for c in costs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    g = results["typical"] = results.get("typical") if results.get("typical", {}).get("segments") == args.typical_segments \
        else dict(typical_granule(args), segments=args.typical_segments)
    starts = []
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import mpi4py.MPI, h5py, numpy, readatl06.reduce.run, "
                        "readatl06.merge.writer"], check=True)
        starts.append(time.perf_counter() - t0)
    startup = args.startup if args.startup is not None else min(starts)
    nb, rows = b["granules"], b["ranks"]
    one = rows[min(rows, key=int)]["figures"]["reduce --merge"]
    plan_us = a["us_per_granule"] if a else one["list"] / nb * 1e6
    fits = {c: fit_messages(rows, c, nb) for c in COMMANDS}
    scale = g["points"] / (one["points"] / nb)      # the points travel: b per granule grows with its points
    fits = {c: (fa, fb * scale, fc, fd) for c, (fa, fb, fc, fd) in fits.items()}
    mem = memory_model(rows, nb, m)
    N, bw, net = args.model_granules, args.bandwidth * 1e9, args.network * 1e9
    vars_ = g["vars"]
    chunks = -(-N * g["points"] // (12 * 16384)) * 12 * vars_
    print(f"\n(c) model: N = {N:,} granules; file system {args.bandwidth:g} GB/s; network {args.network:g} GB/s per rank")
    print("measured here (this machine):")
    print(f"  plan       {plan_us:8.1f} us per granule on rank 0 ({'part (a)' if a else 'reduce --timings list, part (b)'})")
    print(f"  rank 0     {t_dset * 1e3:8.3f} ms per merged dataset created, {t_chunk * 1e6:.1f} us per chunk placed (HDF5 fileobj, CPU time)")
    print(f"  granule    {g['segments']} segments per beam (synthetic): {g['file'] / 1e6:.1f} MB file, {g['read'] / 1e6:.2f} MB read, "
          f"{g['points']:,} points, per-beam files {g['per_beam'] / 1e6:.2f} MB, merged {g['merged'] / 1e6:.2f} MB, "
          f"{vars_} datasets per group; reduce CPU {g['cpu']:.2f} s, merge {g['merge']:.2f} s on 1 rank")
    print(f"  start-up   {startup:8.2f} s (Python + numpy + h5py + mpi4py + readatl06 imports, one process)")
    print(f"  messages   the busiest rank receives R(N,P) = a N + b N/P + c P + d P^2 bytes (fitted per operation "
          f"over the measured P > 1 at N = {nb}: tables a N + c P + d P^2, {'/'.join(DATA_OPS)} b N/P + c P, "
          f"b times {scale:.0f} = the typical granule's points / the bench granule's {one['points'] / nb:.0f}):")
    for c, (fa, fb, fc, fd) in fits.items():
        print(f"             {c:<15} a = {fa:,.0f}, b = {fb:,.0f}, c = {fc:,.0f}, d = {fd:,.1f}")
    print(f"  memory     peak of the largest rank of reduce --merge at --merge-memory {b['merge_memory']}: "
          f"M(N,P) = {mem[0]:.1f} MiB + {mem[1]:.2f} KiB x N + {mem[2]:.2f} KiB x N/P (the N/P term from part (b)'s "
          f"rank counts at N = {nb}, the N term from part (m)'s slope at P = {mem[3]}{'' if m else ' (missing: 0)'})")
    print("modelled (the formulas, per phase of reduce --merge):")
    print(f"  plan = N x {plan_us:.0f} us (rank 0 alone); reduce = N x {args.granule_cpu} s / P + {args.granule_cpu} s (given CPU "
          f"per granule; the last granule); I/O = N x ({g['read'] / 1e6:.2f} + {g['per_beam'] / 1e6:.2f} + "
          f"{g['merged'] / 1e6:.2f}) MB / bandwidth; rank 0 HDF5 = 12 x {vars_} datasets x {t_dset * 1e3:.2f} ms + "
          f"chunks x {t_chunk * 1e6:.1f} us, chunks = ceil(N x {g['points']:,} / 12 / 16384) x 12 x {vars_} = {chunks:,}; "
          f"merge CPU = N x {g['merge']:.2f} s / P; messages = R_reduce(N,P) / network; start-up {startup:.1f} s; "
          f"memory = M(N,P) + (c P + d P^2) of reduce --merge's messages")
    head = (f"{'ranks':>6} {'start':>6} {'plan':>6} {'reduce':>7} {'I/O':>6} {'rank0 HDF5':>10} {'merge CPU':>9} "
            f"{'msgs MiB/rank':>13} {'msgs s':>6} {'memory MiB/rank':>15} {'total min':>9}")
    print(head + "\n" + "-" * len(head))
    model = {}
    for p in args.model_ranks:
        recv = received(fits["reduce --merge"], N, p)
        parts = {"start": startup, "plan": N * plan_us * 1e-6, "reduce": N * args.granule_cpu / p + args.granule_cpu,
                 "io": N * (g["read"] + g["per_beam"] + g["merged"]) / bw, "rank0": 12 * vars_ * t_dset + chunks * t_chunk,
                 "merge": N * g["merge"] / p, "msgs": recv / net}
        total = sum(parts.values())
        fa, fb, fc, fd = fits["reduce --merge"]
        mem_p = mem[0] + (mem[1] * N + mem[2] * N / p) / 1024 + (fc * p + fd * p * p) / 2 ** 20
        model[p] = {"total": total, "memory": mem_p, **parts}
        print(f"{p:>6} {parts['start']:>6.1f} {parts['plan']:>6.1f} {parts['reduce']:>7.1f} {parts['io']:>6.1f} "
              f"{parts['rank0']:>10.1f} {parts['merge']:>9.1f} {recv / 2 ** 20:>13.1f} {parts['msgs']:>6.2f} {mem_p:>15.0f} "
              f"{total / 60:>9.1f}")
    for c in COMMANDS[1:]:
        print(f"  {c}: the busiest rank receives " + ", ".join(
            f"{received(fits[c], N, p) / 2 ** 20:,.1f} MiB at {p:,} ranks" for p in args.model_ranks))
    if m and len(m.get("resume", {})) >= 2:      # the resubmission: part (m)'s slope, extended to N
        (n1, r1), (n2, r2) = sorted((int(n), v["peak_mib"]) for n, v in m["resume"].items())[:2]
        slope = (r2 - r1) / (n2 - n1)
        print(f"  resubmission (reduce --resume --merge, every granule skipped): the largest rank's peak grows "
              f"{slope * 1024:.2f} KiB per granule at P = {m['ranks']} (part (m)): {r1 + slope * (N - n1):,.0f} MiB "
              f"for N = {N:,}, P = {m['ranks']} (at more ranks less: the merge's share of files is N/P)")
    t = model[args.model_ranks[0]]["total"] if args.model_ranks else float("nan")
    print(f"\nHEADLINE: Antarctica ({N:,} granules, regions 10-12, {g['segments']}-segment granules) on "
          f"{args.model_ranks[0]} ranks, reduce --merge end to end at {args.bandwidth:g} GB/s: {t / 60:.1f} min modelled "
          f"(target < 15 min: {'met' if t < 900 else 'NOT met'})")
    results["c"] = {"model": model, "t_dataset": t_dset, "t_chunk": t_chunk, "startup": startup, "fits": fits}


def part_a(args, results):
    print(f"\n(a) the plan of a resubmission; load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores")
    print(f"{'granules':>9} {'files':>10} {'layout s':>9} {'list s':>8} {'us/granule':>11} {'ratio':>6} {'wall s':>7}")
    first, rows = None, {}
    for n in args.granules:
        root = tempfile.mkdtemp(prefix=f"continent-{n}-", dir=args.workdir)
        try:
            t0 = time.perf_counter()
            src, out = lay_out(root, n)
            layout = time.perf_counter() - t0
            best = min((plan_seconds(src, out) for _ in range(args.repeat)), key=lambda x: x[0])
            per = best[0] / n * 1e6
            first = first or per
            rows[str(n)] = {"list": best[0], "us_per_granule": per, "wall": best[1]}
            print(f"{n:>9} {n * 13:>10} {layout:>9.1f} {best[0]:>8.2f} {per:>11.1f} {per / first:>6.2f} {best[1]:>7.2f}")
        finally:
            shutil.rmtree(root, ignore_errors=True)
    results["a"] = {"granules": rows, "us_per_granule": rows[str(max(args.granules))]["us_per_granule"]}
    print(f"load average {os.getloadavg()[0]:.2f} at the end")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--parts", nargs="+", choices=("a", "b", "m", "c"), default=["a", "b", "m", "c"])
    ap.add_argument("--cache", default="/tmp/readatl06-continent", help="synthetic granules and runs (kept)")
    ap.add_argument("--results", help="JSON of the measured figures, read by (c) (default CACHE/results.json)")
    g = ap.add_argument_group("(a) plan")
    g.add_argument("--granules", nargs="+", type=int, default=[1000, 10000, 100000])
    g.add_argument("--repeat", type=int, default=3)
    g.add_argument("--workdir", default=None, help="where to lay out the folders (default: a temporary folder)")
    g = ap.add_argument_group("(b) pipeline and (m) memory")
    g.add_argument("--pipeline-granules", type=int, default=2000)
    g.add_argument("--ranks", nargs="+", type=int, default=[1, 4, 16, 64])
    g.add_argument("--segments-per-beam", type=int, default=300)
    g.add_argument("--merge-memory", type=int, default=64, help="MB (--merge-memory of reduce and merge)")
    g.add_argument("--from-outdir", action="store_true", help="export and xover read OUTDIR (default: the merged file)")
    g.add_argument("--memory-granules", nargs="+", type=int, default=[1000, 10000])
    g.add_argument("--memory-ranks", type=int, default=2)
    g.add_argument("--memory-merge-memory", type=int, default=16,
                   help="MB, part (m)'s --merge-memory: small enough that the merge's rounds are full at 10^3 "
                        "granules already, so that only what grows with N differs")
    g = ap.add_argument_group("(c) model")
    g.add_argument("--model-granules", type=int, default=100_000)
    g.add_argument("--model-ranks", nargs="+", type=int, default=[256, 1024, 4096])
    g.add_argument("--bandwidth", type=float, default=20.0, help="file system bandwidth, GB/s (default 20)")
    g.add_argument("--network", type=float, default=5.0, help="network bandwidth per rank, GB/s (default 5)")
    g.add_argument("--granule-cpu", type=float, default=0.16, help="reduce CPU seconds per granule (default 0.16)")
    g.add_argument("--typical-segments", type=int, default=49193, help="segments per beam of the typical granule")
    g.add_argument("--startup", type=float, help="seconds to start a rank (default: measured here, one process)")
    args = ap.parse_args()
    os.makedirs(args.cache, exist_ok=True)
    path = args.results or os.path.join(args.cache, "results.json")
    results = {}
    if os.path.exists(path):
        with open(path) as fh:
            results = json.load(fh)
    ok = True
    for part in ("a", "b", "m", "c"):
        if part in args.parts:
            ok &= {"a": part_a, "b": part_b, "m": part_m, "c": part_c}[part](args, results) is not False
            with open(path, "w") as fh:
                json.dump(results, fh, indent=1, sort_keys=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
