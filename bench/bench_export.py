"""Benchmark ``readatl06 export`` (docs/export.md): the whole export of a merged file against a floor, and a
DuckDB bbox query on the covering column against the row groups it must read.

    . scripts/mpienv.sh
    python bench/bench_export.py                          # ~4 M points, export on 1 and 2 ranks vs the floor
    python bench/bench_export.py --points 400000 --ranks 1 # quick run
    python bench/bench_export.py --workdir /tmp/bx         # keep the synthetic data for the next run

Data: 16 synthetic granules (``readatl06 synth``, regions 10-12, ``--segments-per-beam`` from
``--points``) reduced and merged with the default options (kept in ``--workdir`` and reused).
Contenders take turns ``--repeat`` (3) times, the best time of each counts:

* floor       pyarrow writes the same columns with no geometry and no bbox (the table already in
              memory, the same writer options: zstd, byte-stream-split floats, row groups of 100 000);
* export      ``export.run_export`` on one rank, in this process: plan, read the merged file, convert,
              build WKB points and bbox, write, rename;
* export, N   the same under ``mpirun -n N`` (``--ranks``), timed inside between barriers (after a
              warm-up export in the same processes).

It prints seconds, MB/s of table and export / floor against ``--target`` (2.0), and checks that every
rank count wrote the same file (byte for byte; exit status 1 otherwise). Then the query: a lon/lat box
around the point at 1/7 of the rows, grown until it holds ``--box-share`` (5 %) of the points (or
``--box W E S N``); it prints the share of row groups whose bbox.* statistics meet the box (what any
reader must read), the same counted by pyarrow's own pruning (``split_by_row_group(filter)``), the
DuckDB count (checked against numpy) and the DuckDB time against a scan the statistics cannot prune
(``bbox.xmin + 0``), against ``--rg-target`` (20 %).
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

from readatl06.export import writer as export
from readatl06.outputs import geoparquet  # noqa: E402
from readatl06.cli import main  # noqa: E402
from readatl06.parallel.world import SerialComm  # noqa: E402

GRANULES = 16
KEPT = 0.847        # kept points per segment of the synthetic granules with the default options


def prepare(workdir, points):
    segments = max(200, round(points / (GRANULES * 6 * KEPT)))
    merged = os.path.join(workdir, f"m{GRANULES}x{segments}.h5")
    if not os.path.exists(merged):
        g, out = os.path.join(workdir, f"g{segments}"), os.path.join(workdir, f"o{segments}")
        t = time.perf_counter()
        assert main(["synth", g, "--granules", str(GRANULES), "--segments-per-beam", str(segments)]) == 0
        assert main(["reduce", g, "-o", out, "--merge", merged, "--no-progress"]) == 0
        print(f"prepared {merged} in {time.perf_counter() - t:.0f} s", flush=True)
    return merged


def quiet(fn):
    with open(os.devnull, "w") as null:
        stdout, sys.stdout = sys.stdout, null
        try:
            return fn()
        finally:
            sys.stdout = stdout


def worker(merged, out):
    """Under mpirun: a warm-up export (imports, page cache: as the in-process contender has them),
    then one between barriers; rank 0 prints JSON."""
    from readatl06.parallel.world import world
    comm = world()
    quiet(lambda: export.run_export(comm, merged, out, overwrite=True))
    comm.Barrier()
    t = time.perf_counter()
    quiet(lambda: export.run_export(comm, merged, out, overwrite=True))
    comm.Barrier()
    if comm.rank == 0:
        print(json.dumps({"ranks": comm.size, "seconds": time.perf_counter() - t}))


def mpirun_export(ranks, merged, out):
    cmd = ["mpirun", "-n", str(ranks), sys.executable, os.path.abspath(__file__), "--worker", merged, out]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMPI_COMM_WORLD", "PMIX_", "PMI_"))}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if r.returncode:
        sys.exit(f"bench_export: {' '.join(cmd)} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])["seconds"]


def floor_writer(table, path):
    import pyarrow.parquet as pq
    plain = table.drop_columns([geoparquet.GEOMETRY, geoparquet.BBOX])
    opts = geoparquet.writer_options(plain.schema, dictionary=export.CATEGORIES)
    return lambda: pq.write_table(plain, path, row_group_size=geoparquet.ROW_GROUP, **opts)


def row_group_boxes(path):
    import pyarrow.parquet as pq
    md = pq.ParquetFile(path).metadata
    out = []
    for i in range(md.num_row_groups):
        rg = md.row_group(i)
        st = {rg.column(j).path_in_schema: rg.column(j).statistics for j in range(rg.num_columns)}
        out.append((st["bbox.xmin"].min, st["bbox.ymin"].min, st["bbox.xmax"].max, st["bbox.ymax"].max))
    return np.array(out)


def choose_box(lon, lat, share):
    """A lon/lat box around the point at 1/7 of the rows, grown until it holds ``share`` of the points."""
    x0, y0 = lon[lon.size // 7], lat[lat.size // 7]
    for half in np.geomspace(0.05, 30, 60):
        w = min(half / max(np.cos(np.radians(y0)), 0.05), 180)
        box = (max(x0 - w, -180.0), min(x0 + w, 180.0), max(y0 - half, -90.0), min(y0 + half, 90.0))
        if inside(lon, lat, box).mean() >= share:
            return box
    return box


def inside(lon, lat, box):
    w, e, s, n = box
    return (lon >= w) & (lon <= e) & (lat >= s) & (lat <= n)


def query(path, lon, lat, box, repeat):
    import duckdb
    import pyarrow.dataset as ds
    w, e, s, n = box
    expected = int(inside(lon, lat, box).sum())
    boxes = row_group_boxes(path)
    meets = (boxes[:, 0] <= e) & (boxes[:, 2] >= w) & (boxes[:, 1] <= n) & (boxes[:, 3] >= s)
    f = ds.field
    expr = (f("bbox", "xmin") <= e) & (f("bbox", "xmax") >= w) & (f("bbox", "ymin") <= n) & (f("bbox", "ymax") >= s)
    fragment = next(iter(ds.dataset(path, format="parquet").get_fragments()))
    pruned = len(fragment.split_by_row_group(filter=expr))
    con = duckdb.connect()
    sql = ("SELECT count(*) FROM read_parquet(?) WHERE bbox.xmin {a} <= ? AND bbox.xmax {a} >= ? "
           "AND bbox.ymin {a} <= ? AND bbox.ymax {a} >= ?")
    times = {}
    for name, a in (("filter", ""), ("no pruning", "+ 0")):
        best = float("inf")
        for _ in range(repeat):
            t = time.perf_counter()
            got = con.execute(sql.format(a=a), [path, e, w, n, s]).fetchone()[0]
            best = min(best, time.perf_counter() - t)
        times[name] = best
        if got != expected:
            print(f"MISMATCH: DuckDB ({name}) counts {got} points in the box, numpy {expected}")
            return None
    return {"points": expected, "share": expected / lon.size, "row_groups": len(boxes), "meet": int(meets.sum()),
            "pyarrow_pruned": pruned, "duckdb_s": times["filter"], "duckdb_full_s": times["no pruning"]}


def run(args):
    import pyarrow.parquet as pq
    workdir = args.workdir or tempfile.mkdtemp(prefix="bench-export-")
    os.makedirs(workdir, exist_ok=True)
    merged = prepare(workdir, args.points)
    paths = {r: os.path.join(workdir, f"t{r}.parquet") for r in args.ranks}
    serial = paths.get(1, os.path.join(workdir, "t1.parquet"))
    quiet(lambda: export.run_export(SerialComm(), merged, serial, overwrite=True))     # warm-up, and the table
    table = pq.read_table(serial)
    floor_path = os.path.join(workdir, "floor.parquet")
    contenders = {"floor (no geometry)": floor_writer(table, floor_path)}
    for r in args.ranks:
        if r == 1:
            contenders["export, 1 rank"] = lambda: quiet(lambda: export.run_export(SerialComm(), merged, paths[1],
                                                                                   overwrite=True))
        else:
            contenders[f"export, {r} ranks"] = (lambda r=r: mpirun_export(r, merged, paths[r]))
    best = {k: float("inf") for k in contenders}
    for _ in range(args.repeat):
        for name, fn in contenders.items():
            t = time.perf_counter()
            inner = fn()
            took = inner if isinstance(inner, float) else time.perf_counter() - t
            best[name] = min(best[name], took)
    n, mb = table.num_rows, table.nbytes / 1e6
    print(f"\n{n:,} points, {len(table.schema)} columns, {mb:.0f} MB in memory; export file "
          f"{os.path.getsize(serial) / 1e6:.0f} MB, floor file {os.path.getsize(floor_path) / 1e6:.0f} MB, "
          f"merged file {os.path.getsize(merged) / 1e6:.0f} MB; best of {args.repeat}, {os.cpu_count()} cores, "
          f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}\n")
    print(f"| {'what':<22} | {'seconds':>7} | {'MB/s':>6} | {'/ floor':>7} |")
    print(f"|{'-' * 24}|{'-' * 9}|{'-' * 8}|{'-' * 9}|")
    floor = best["floor (no geometry)"]
    for name, s in best.items():
        print(f"| {name:<22} | {s:7.2f} | {mb / s:6.0f} | {s / floor:6.2f}x |")
    status = 0
    with open(serial, "rb") as fh:
        ref = fh.read()
    for r, p in paths.items():
        with open(p, "rb") as fh:
            if fh.read() != ref:
                print(f"MISMATCH: the file of {r} ranks differs from the file of 1 rank")
                status = 1
    ratio = best.get("export, 1 rank", min(v for k, v in best.items() if k.startswith("export"))) / floor
    print(f"\nexport / floor = {ratio:.2f} on 1 rank ({'meets' if ratio <= args.target else 'ABOVE'} the "
          f"{args.target:.1f}x target); every rank count wrote the same bytes: {'yes' if not status else 'NO'}")
    lon, lat = table["lon"].to_numpy(), table["lat"].to_numpy()
    box = tuple(args.box) if args.box else choose_box(lon, lat, args.box_share)
    q = query(serial, lon, lat, box, args.repeat)
    if q is None:
        return 1
    share = q["meet"] / q["row_groups"]
    print(f"\nbbox query W E S N = {' '.join(f'{v:.3f}' for v in box)}: {q['points']:,} points "
          f"({100 * q['share']:.1f} %); row groups whose bbox statistics meet the box: {q['meet']} of "
          f"{q['row_groups']} ({100 * share:.0f} %; pyarrow's pruning keeps {q['pyarrow_pruned']}); DuckDB "
          f"count(*) {q['duckdb_s'] * 1e3:.0f} ms, {q['duckdb_full_s'] * 1e3:.0f} ms when the statistics "
          f"cannot prune ({'meets' if share <= args.rg_target else 'ABOVE'} the {100 * args.rg_target:.0f} % target)")
    return status


def parse(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", type=float, default=4e6, help="about this many points (default 4e6)")
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2], help="rank counts of the export (default 1 2)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--workdir", help="keep the synthetic data here (reused when present)")
    ap.add_argument("--target", type=float, default=2.0, help="export / floor target (default 2.0)")
    ap.add_argument("--box", type=float, nargs=4, metavar=("W", "E", "S", "N"), help="the query box")
    ap.add_argument("--box-share", type=float, default=0.05, help="share of points in the chosen box (default 0.05)")
    ap.add_argument("--rg-target", type=float, default=0.20, help="share of row groups read target (default 0.20)")
    ap.add_argument("--worker", nargs=2, metavar=("MERGED", "OUT"), help=argparse.SUPPRESS)
    return ap.parse_args(argv)


if __name__ == "__main__":
    args = parse(sys.argv[1:])
    if args.worker:
        worker(*args.worker)
        sys.exit(0)
    sys.exit(run(args))
