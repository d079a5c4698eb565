"""Benchmark: ``readatl06 plot --kind map`` with millions of points.

    python bench/bench_plot.py                 # 5,000,000 synthetic points in memory -> PNG
    python bench/bench_plot.py --points 2e7    # more
    python bench/bench_plot.py --files DIR     # also write them as per-beam files and time plot_map(DIR)

Prints one line per measurement; exits 1 when the in-memory map takes longer than --limit seconds
(default 10, the target for 5 million points).
"""
import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from readatl06 import plot  # noqa: E402
from readatl06.plot.data import BEAMS, Track  # noqa: E402
from readatl06.plot import style as plot_style  # noqa: E402


def synthetic_tracks(n_points, n_tracks=120, seed=0):
    """Straight-ish Antarctic tracks (half ascending, half descending) with a smooth ice surface."""
    rng = np.random.default_rng(seed)
    per = n_points // n_tracks
    tracks = []
    for k in range(n_tracks):
        n = per + (n_points - per * n_tracks if k == n_tracks - 1 else 0)
        lon0 = rng.uniform(-180, 180)
        lat = np.linspace(-60.0, -86.0, n)
        asc = k % 2 == 0
        if asc:
            lat = lat[::-1]
        lon = lon0 + np.linspace(0, 25.0, n) * (1 if asc else -1)
        h = (3000.0 * np.clip((-60.0 - lat) / 20.0, 0, 1) + 30 * np.sin(lon / 3)).astype(np.float32)
        g = f"ATL06_2019{1 + k // 28:02d}{1 + k % 28:02d}000000_{k:04d}0310_006_01.h5"
        tracks.append(Track(granule=g, beam=BEAMS[k % 6], direction="ascending" if asc else "descending",
                            strength="strong" if k % 2 else "weak", kind="reduced", source="memory",
                            lon=lon, lat=lat, h=h, parameters={"bbox": [-180, 180, -90, -70]}))
    return tracks


def write_files(tracks, outdir):
    import h5py
    for t in tracks:
        stem = t.granule[:-3]
        with h5py.File(os.path.join(outdir, f"{stem}_{t.beam}_{t.direction[0].upper()}.h5"), "w") as f:
            f["lon"], f["lat"], f["h_elv"] = t.lon, t.lat, t.h
            f["h_elv"].attrs["units"] = "m"
            f.attrs.update(granule=t.granule, beam=t.beam, direction=t.direction, beam_strength=t.strength,
                           parameters=json.dumps(t.parameters))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=float, default=5e6)
    ap.add_argument("--max-points", type=int, default=plot_style.MAX_POINTS)
    ap.add_argument("--out", default=None, help="PNG to write (default: a temporary file)")
    ap.add_argument("--files", metavar="DIR", help="also time plot_map on per-beam files written to DIR")
    ap.add_argument("--limit", type=float, default=10.0)
    a = ap.parse_args(argv)
    n = int(a.points)
    with tempfile.TemporaryDirectory(prefix="bench_plot_") as tmp:
        return _bench(a, n, a.out or os.path.join(tmp, "map.png"))


def _bench(a, n, out):

    tracks = synthetic_tracks(n)
    t0 = time.perf_counter()
    facts = plot.draw_map(tracks, out, max_points=a.max_points)
    dt = time.perf_counter() - t0      # includes matplotlib's first import, projection and PNG writing
    print(f"map, in memory: {facts['n_points']:,} points ({facts['n_drawn']:,} drawn), {facts['crs']}: "
          f"{dt:.2f} s -> {out} ({os.path.getsize(out) / 1e3:.0f} kB)")
    t0 = time.perf_counter()
    plot.draw_map(tracks, out, max_points=a.max_points)
    print(f"map, in memory, second call (matplotlib warm): {time.perf_counter() - t0:.2f} s")
    if a.files:
        os.makedirs(a.files, exist_ok=True)
        write_files(tracks, a.files)
        t0 = time.perf_counter()
        f2 = plot.plot_map([a.files], out, max_points=a.max_points)
        print(f"map, {len(tracks)} per-beam files: {f2['n_points']:,} points: {time.perf_counter() - t0:.2f} s")
    return 0 if dt < a.limit else 1


if __name__ == "__main__":
    sys.exit(main())
