"""What a subset costs: full reduce vs a box keeping <= 10 % of the points vs a box that misses every
granule, readatl06 against the naive slice floor, on the same synthetic granules (1 rank).

    . scripts/mpienv.sh
    python bench/bench_subset.py                                  # 16 granules x 60,000 segments/beam
    python bench/bench_subset.py --granules 4 --segments-per-beam 20000 --repeat 2   # quick look

Every contender is a whole process started as a user starts it; its wall time is measured from
outside, and its zero-work start-up (the same command on an empty folder) is printed so that the
figures can be read with and without it. Contenders run interleaved, the best of ``--repeat`` counts.

  full              readatl06 reduce DIR -o OUT
  box               ... --bbox -180 180 S N, a latitude band holding --fraction of the points
  box --full-read   the same box, every beam decoded whole (the path without skips and slice reads)
  miss              ... --bbox in the other hemisphere: every granule is outside
  slice floor       an h5py script: latitude and longitude read whole, the box's index range found,
                    the other 14 datasets read as h5py slices [i0:i1], kept points written unfiltered
                    (no attributes): what a careful user writes by hand

The box outputs of readatl06 with and without --full-read are compared value for value.
"""
import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_reduce import BEAMS, SOURCES, granules, timed, write_parts  # noqa: E402


def slice_floor(files, out, south, north):
    import h5py
    import numpy as np
    for p in files:
        stem = os.path.basename(p)[:-3]
        with h5py.File(p, "r") as f:
            for b in BEAMS:
                g = f[b]["land_ice_segments"]
                lat, lon = g["latitude"][()], g["longitude"][()]
                inside = np.flatnonzero((lat >= south) & (lat <= north) & np.isfinite(lon))
                if not inside.size:
                    continue
                i0, i1 = int(inside[0]), int(inside[-1]) + 1
                v = {s: g[s][i0:i1] for s in SOURCES if s not in ("latitude", "longitude")}
                v["latitude"], v["longitude"] = lat[i0:i1], lon[i0:i1]
                h = v["h_li"]
                keep = ((v["latitude"] >= south) & (v["latitude"] <= north) & (h != np.float32(3.4028235e38))
                        & (v["atl06_quality_summary"] == 0) & (np.abs(h) < 1e4))
                write_parts(out, f"{stem}_{b}", v, keep)


def band(files, fraction):
    """A latitude band holding about ``fraction`` of all points, placed at the median latitude."""
    import h5py
    import numpy as np
    lat = []
    for p in files:
        with h5py.File(p, "r") as f:
            lat.append(f["gt1l/land_ice_segments/latitude"][()])
    lat = np.sort(np.concatenate(lat))
    lo = np.quantile(lat, 0.5 - fraction / 2)
    hi = np.quantile(lat, 0.5 + fraction / 2)
    return float(lo), float(hi), float(lat.min()), float(lat.max())


def contenders(folder, files, out, south, north, miss):
    py, here = sys.executable, os.path.abspath(__file__)
    red = [py, "-m", "readatl06", "reduce", folder, "-o", out, "--no-progress"]
    box = ["--bbox", "-180", "180", repr(south), repr(north)]
    return {
        "full": red,
        "box": red + box,
        "box --full-read": red + box + ["--full-read"],
        "miss": red + ["--bbox", "-180", "180", repr(miss[0]), repr(miss[1])],
        "slice floor": [py, here, "--floor", out, repr(south), repr(north), *files],
    }


def _same_outputs(a, b):
    import h5py
    import numpy as np
    names = sorted(os.listdir(a))
    names = [n for n in names if n.endswith(".h5")]
    assert names == sorted(n for n in os.listdir(b) if n.endswith(".h5")), "different file sets"
    for n in names:
        with h5py.File(os.path.join(a, n), "r") as x, h5py.File(os.path.join(b, n), "r") as y:
            for k in x:
                assert x[k].dtype == y[k].dtype and np.array_equal(x[k][()], y[k][()], equal_nan=True), (n, k)
    return len(names)


def _record_seconds(out):
    """Sum of the per-granule seconds in a run's manifest (the reduce of each granule, in-process)."""
    import json
    with open(os.path.join(out, "readatl06-manifest.jsonl"), encoding="utf-8") as fh:
        return sum(json.loads(line)["seconds"] for line in fh if line.strip())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--granules", type=int, default=16)
    ap.add_argument("--segments-per-beam", type=int, default=60000)
    ap.add_argument("--fraction", type=float, default=0.07, help="share of the points in the box (default 0.07)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--cache", default=os.path.join(os.environ.get("TMPDIR", "/tmp"), "readatl06-bench"))
    ap.add_argument("--floor", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.floor:
        out, south, north, *files = a.floor
        import h5py  # noqa: F401 - the floor pays the same imports with or without work
        slice_floor(files, out, float(south), float(north))
        return
    files = granules(a.cache, a.granules, a.segments_per_beam, a.seed)
    folder = os.path.dirname(files[0])
    south, north, lat_min, lat_max = band(files, a.fraction)
    miss = (-lat_max, -lat_min) if lat_max < 0 or lat_min > 0 else (89.5, 90.0)
    work = os.path.join(a.cache, "bench-subset")
    empty = os.path.join(work, "empty")
    os.makedirs(empty, exist_ok=True)
    print(f"{len(files)} granules x {a.segments_per_beam} segments/beam; box: latitudes {south:.3f}..{north:.3f} "
          f"(~{a.fraction:.0%} of the points); miss: {miss[0]:.2f}..{miss[1]:.2f}; best of {a.repeat}")
    runs = contenders(folder, files, os.path.join(work, "out"), south, north, miss)
    idle = contenders(empty, [], os.path.join(work, "out"), south, north, miss)
    best, zero = {}, {}
    for r in range(a.repeat):
        for name in (list(runs) if r % 2 == 0 else list(runs)[::-1]):
            out = os.path.join(work, name.replace(" ", "_"))
            cmd = [out if x == os.path.join(work, "out") else x for x in runs[name]]
            wall, _, _ = timed(cmd, out)
            best[name] = min(best.get(name, wall), wall)
            cmd0 = [out + "-0" if x == os.path.join(work, "out") else x for x in idle[name]]
            w0, _, _ = timed(cmd0, out + "-0")
            zero[name] = min(zero.get(name, w0), w0)
    rec = {name: _record_seconds(os.path.join(work, name)) for name in ("full", "miss", "box")}
    kept = _same_outputs(os.path.join(work, "box"), os.path.join(work, "box_--full-read"))
    print(f"box outputs with and without --full-read: {kept} files, identical")
    print(f"{'contender':18s} {'wall s':>8s} {'start-up s':>10s} {'work s':>8s} {'full / it':>10s} "
          f"{'full / it (work)':>17s}")
    full, full_work = best["full"], best["full"] - zero["full"]
    for name in runs:
        w, z = best[name], zero[name]
        print(f"{name:18s} {w:8.3f} {z:10.3f} {w - z:8.3f} {full / w:10.2f} {full_work / max(w - z, 1e-6):17.2f}")
    per_granule = (best["miss"] - zero["miss"]) / (best["full"] - zero["full"])
    in_run = rec["miss"] / rec["full"]
    print(f"box: {full / best['box']:.2f}x faster than the full reduce, whole process (target >= 5x); "
          f"{full_work / (best['box'] - zero['box']):.2f}x without start-up")
    print(f"miss: a granule outside the box costs {in_run:.2%} of its full reduce by the runs' own records "
          f"({1e3 * rec['miss'] / len(files):.2f} ms against {1e3 * rec['full'] / len(files):.1f} ms per granule), "
          f"{per_granule:.1%} by whole-process walls less start-up (target <= 3 %)")
    print(f"box vs slice floor: {best['box'] / best['slice floor']:.2f} (readatl06 / floor, whole process)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
