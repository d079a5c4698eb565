"""``readatl06 demo``: synthetic Antarctic granules -> reduce in parallel -> merge -> crossovers -> figures.
No download.

1. *Granules* (readatl06.synth with ``fit_box``): reference ground tracks chosen one by one to fill the
   Kamb ice stream box of the seed (EPSG:3031 x -1124782..81623, y -919821..-96334), ascending and
   descending parts alike, flown over ``--cycles`` 91-day windows; each granule is cut to the part of
   its track inside the box, so every track crosses the box from edge to edge and nothing outside it is
   generated. They are cached in ``WORKDIR/granules-<key>/``, ``key`` a hash of the generator's options,
   its version and its source code, so a second run (same options) skips this step.
2. *Reduce* on all ranks with that box as subset, merged into one parallel-HDF5 file.
3. *Crossovers* of the merged file (``readatl06 xover``), when that command is installed.
4. *Figures*: ``demo-map.png``, ``demo-profile.png``, ``demo-summary.png``, ``demo-xover.png``.

Each step's time is printed. The outputs are the same on any number of ranks and without mpirun.
"""
import hashlib
import json
import os
import shutil
import sys
import time

KAMB = (-1124782.0, 81623.0, -919821.0, -96334.0)
CRS = "EPSG:3031"
CACHE_MARK = "demo-granules.json"


HELP = "synth -> reduce -> merge -> plot, no download"


def add_arguments(parser):
    parser.add_argument("--workdir", default="readatl06-demo", metavar="DIR",
                        help="folder for granules, tracks, merged file and figures (default ./readatl06-demo)")
    parser.add_argument("--granules", type=int, default=10, metavar="N", help="granules to generate (default 10)")
    parser.add_argument("--cycles", type=int, default=3, metavar="K",
                        help="91-day windows the tracks are spread over (default 3)")
    parser.add_argument("--seed", type=int, default=2019, help="random seed (default 2019)")
    from readatl06.atl06.schema import BEAMS
    parser.add_argument("--beams", nargs="+", metavar="BEAM", choices=BEAMS,
                        help="beams to generate (default all six)")
    parser.add_argument("--figures", metavar="DIR", help="folder for the figures (default WORKDIR/figures)")
    parser.add_argument("--regenerate", action="store_true", help="generate the granules even if cached")
    parser.add_argument("--no-plots", action="store_true", help="skip the figures")
    parser.add_argument("--no-xover", action="store_true", help="skip the crossovers")
    return parser


def synth_options(args):
    """The generator's options of this demo (keyword arguments of readatl06.synth.generate)."""
    from readatl06.atl06.schema import BEAMS
    return {"granules": args.granules, "seed": args.seed, "segments": [10, 11, 12], "start": "2019-01-01",
            "region_box": [CRS, *KAMB], "fit_box": True, "cycles": args.cycles,
            "beams": [b for b in BEAMS if not args.beams or b in args.beams], "release": "006",
            "fill_fraction": 0.05, "bad_quality_fraction": 0.1}


def generator_version():
    """readatl06's version and a hash of the generator's source (readatl06/synth/*.py)."""
    import readatl06
    h = hashlib.sha256()
    folder = os.path.join(os.path.dirname(os.path.abspath(readatl06.__file__)), "synth")
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            with open(os.path.join(folder, name), "rb") as fh:
                h.update(name.encode() + b"\0" + fh.read() + b"\0")
    return f"{readatl06.__version__}+{h.hexdigest()[:12]}"


def cache_key(options, version):
    text = json.dumps({"options": options, "version": version}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached(folder):
    """The granule paths of a complete cache folder (its record lists them with their sizes), else None."""
    try:
        with open(os.path.join(folder, CACHE_MARK), encoding="utf-8") as fh:
            files = json.load(fh)["files"]
        paths = [os.path.join(folder, name) for name in sorted(files)]
        if all(os.path.getsize(p) == files[os.path.basename(p)] for p in paths) and paths:
            return paths
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _say(comm, text):
    if comm.rank == 0:
        print(text, flush=True)


def generate(comm, work, args):
    """Step 1 on every rank: (granules folder, paths, reused?)."""
    from readatl06 import synth
    options = synth_options(args)
    version = generator_version()
    folder = os.path.join(work, f"granules-{cache_key(options, version)}")
    todo = None
    if comm.rank == 0:
        paths = None if args.regenerate else cached(folder)
        if paths is None:
            for name in os.listdir(work):             # older caches and half-written folders
                if name.startswith(("granules-", ".granules-")):
                    shutil.rmtree(os.path.join(work, name), ignore_errors=True)
            todo = os.path.join(work, f".granules-{os.getpid()}.tmp")
            os.makedirs(todo)
        else:
            folder_paths = paths
    todo = comm.bcast(todo, root=0)
    if todo is None:
        return folder, (folder_paths if comm.rank == 0 else None), True
    kw = dict(options, region_box=tuple(options["region_box"]))
    synth.generate(todo, rank=comm.rank, size=comm.size, **kw)
    comm.barrier()
    paths = None
    if comm.rank == 0:
        files = {n: os.path.getsize(os.path.join(todo, n)) for n in sorted(os.listdir(todo)) if n.endswith(".h5")}
        with open(os.path.join(todo, CACHE_MARK), "w", encoding="utf-8") as fh:
            json.dump({"version": version, "options": options, "files": files}, fh, indent=1, sort_keys=True)
        os.rename(todo, folder)
        paths = [os.path.join(folder, n) for n in files]
    comm.barrier()
    return folder, paths, False


def _xover():
    """readatl06's crossover command and figure, or None when they are not installed."""
    try:
        from readatl06.plot.xover import plot_xover
        from readatl06.xover.run import run_xover
    except ImportError:
        return None
    return run_xover, plot_xover


def run(args, comm):
    from readatl06.atl06.names import Selection
    from readatl06.reduce.granule import ReduceOptions
    from readatl06.reduce.run import run_reduce
    from readatl06.atl06.subset import Subset

    t0 = time.perf_counter()
    work = os.path.abspath(args.workdir)
    tracks, merged = os.path.join(work, "tracks"), os.path.join(work, "kamb_merged.h5")
    xovers = os.path.join(work, "kamb_xovers.h5")
    figures = os.path.abspath(args.figures) if args.figures else os.path.join(work, "figures")
    xover = None if args.no_xover else _xover()
    if comm.rank == 0:
        os.makedirs(work, exist_ok=True)
        shutil.rmtree(tracks, ignore_errors=True)
        for f in (merged, xovers):
            if os.path.exists(f):
                os.remove(f)
    steps = []

    def step(name, t):
        steps.append((name, time.perf_counter() - t))
        _say(comm, f"demo: {name}: {steps[-1][1]:.1f} s")

    t = time.perf_counter()
    _say(comm, f"demo: {args.granules} synthetic ATL06 granules (regions 10-12, cut to the Kamb box "
               f"{' '.join(f'{v:.0f}' for v in KAMB)} {CRS}, {args.cycles} cycles), {comm.size} rank(s) ...")
    folder, paths, reused = generate(comm, work, args)
    if comm.rank == 0:
        size = sum(os.path.getsize(p) for p in paths) / 1e6
        print(f"demo: granules {'reused from the cache' if reused else 'written'}: {len(paths)} ({size:.0f} MB) "
              f"in {folder}", flush=True)
    step("generate" + (" (cached)" if reused else ""), t)

    t = time.perf_counter()
    opts = ReduceOptions(subset=Subset(bbox_xy=KAMB, crs=CRS))
    status = run_reduce(comm, [folder], Selection(), opts, tracks, merge_path=merged)
    comm.barrier()                                  # rank 0 has renamed the merged file and the manifest
    step("reduce + merge", t)

    if xover is not None and status == 0:
        t = time.perf_counter()
        xstatus = xover[0](comm, merged, xovers, overwrite=True)
        step("crossovers", t)
        if xstatus != 0:
            status = xstatus
    elif comm.rank == 0 and xover is None and not args.no_xover:
        print("demo: crossovers skipped (readatl06 xover is not installed)")

    figs = []
    if not args.no_plots and status == 0:
        t = time.perf_counter()
        xfig = (xovers, xover[1]) if xover is not None else None
        figs = draw(comm, figures, tracks, merged, folder, xfig)
        step("figures", t)
    if comm.rank == 0:
        total = time.perf_counter() - t0
        print(f"demo: finished in {total:.1f} s (" + ", ".join(f"{n} {s:.1f} s" for n, s in steps)
              + f"; exit status {status})")
        print(f"  granules : {folder}")
        print(f"  tracks   : {tracks}  (one file per granule, beam and direction; readatl06-manifest.jsonl)")
        print(f"  merged   : {merged}")
        if xover is not None and os.path.exists(xovers):
            print(f"  xovers   : {xovers}")
        if figs:
            print(f"  figures  : {figures}: {', '.join(os.path.basename(f) for f in figs)}")
        sys.stdout.flush()
    return status


def draw(comm, figures, tracks, merged, folder, xover=None):
    """The demo's figures: the map of the merged file, the profile of the largest granule, the run's
    summary and, with crossovers (``xover``: (file, plot_xover)), their map; shared by the ranks
    (rank 0 the map and the crossovers, the next rank the profile and the summary). Returns the
    paths written (rank 0)."""
    from readatl06 import plot
    if comm.rank == 0:
        os.makedirs(figures, exist_ok=True)
    comm.barrier()
    largest = max((n for n in os.listdir(folder) if n.endswith(".h5")),
                  key=lambda n: (os.path.getsize(os.path.join(folder, n)), n))
    jobs = [("demo-map.png", lambda out: plot.plot_map([merged], out)),
            ("demo-profile.png", lambda out: plot.plot_profile([tracks], out, granule=largest[:-3])),
            ("demo-summary.png", lambda out: plot.plot_summary(tracks, out))]
    if xover is not None and os.path.exists(xover[0]):
        jobs.insert(1, ("demo-xover.png", lambda out: xover[1](xover[0], out)))
    mine = [j for i, j in enumerate(jobs) if (0 if i < 2 or comm.size == 1 else 1 % comm.size) == comm.rank]
    done = []
    for name, fn in mine:
        done.append(os.path.join(figures, name))
        fn(done[-1])
    every = comm.gather(done, root=0)
    return sorted(p for part in every for p in part) if comm.rank == 0 else []
