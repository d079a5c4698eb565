"""``reduce`` across ranks: rank 0 lists and selects, every rank reduces its share independently."""
import dataclasses
import datetime as dt
import os
import sys
import time
import traceback

from readatl06 import manifest, schedule
from readatl06.errors import GranuleError, ReadATL06Error, SourceError
from readatl06.names import select
from readatl06.reduce import reduce_granule
from readatl06.sources import list_sources
from readatl06.write import write_tracks


@dataclasses.dataclass
class Plan:
    """What rank 0 decided, broadcast to everyone."""

    items: list            # [(GranuleName, path, size)] in DESIGN §3 order (time, name)
    skipped: list          # names trusted by --resume
    resumed: list          # their output files (read back by --merge)
    messages: list         # one line per name problem (unparsed, refused, duplicate)
    error: str = None      # a SourceError: stop before any work


def make_plan(sources, selection, outdir, params_key, resume):
    try:
        paths = list_sources(sources)
    except SourceError as exc:
        return Plan([], [], [], [], str(exc))
    sel = select(paths, selection)
    messages = [f"skipped, name does not parse: {m}" for m in sel.unparsed]
    messages += [f"refused: {m}" for m in sel.refused] + sel.duplicates
    done = manifest.trusted(outdir, params_key) if resume else {}
    items, skipped, resumed = [], [], []
    for g, p in sel.granules:
        if g.name in done:
            skipped.append(g.name)
            resumed.extend(os.path.join(outdir, o) for o in done[g.name])
            continue
        try:
            size = os.path.getsize(p)
        except OSError:
            size = 0
        items.append((g, p, size))
    return Plan(items, skipped, resumed, messages)


def reduce_one(g, path, opts, outdir, write, overwrite, rank):
    """Reduce and write one granule; always returns (record, tracks) — failures become records."""
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
    t0 = time.perf_counter()
    record = {"granule": g.name, "path": str(path), "rank": rank, "started": started, "outputs": [],
              "sizes": {}, "points": 0, "segments": 0, "error": None, "notes": [],
              "removed": {"subset": 0, "fill": 0, "quality": 0}}
    tracks = []
    try:
        res = reduce_granule(path, g, opts)
        tracks = res.tracks
        record.update(points=res.points, segments=res.segments, removed=res.removed, notes=res.notes)
        if write and tracks:
            for p in write_tracks(tracks, outdir, overwrite):
                name = os.path.basename(p)
                record["outputs"].append(name)
                record["sizes"][name] = os.path.getsize(p)
        record["status"] = "done" if tracks else "empty"
    except GranuleError as exc:
        record.update(status="failed", error=str(exc))
        tracks = []
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        record.update(status="failed", error=f"{g.name}: unexpected {type(exc).__name__}: {exc}",
                      traceback=traceback.format_exc(limit=6))
        tracks = []
    record["seconds"] = round(time.perf_counter() - t0, 4)
    return record, tracks


def run_reduce(comm, sources, selection, opts, outdir, *, resume=False, overwrite=False, write=True,
               progress=False, log=None, merge_path=None):
    """The whole ``reduce`` command on every rank; returns the exit status (same on every rank)."""
    t0 = time.perf_counter()
    key = manifest.params_key(opts.parameters())
    plan = None
    if comm.rank == 0:
        os.makedirs(outdir, exist_ok=True)
        plan = make_plan(sources, selection, outdir, key, resume)
    plan = comm.bcast(plan, root=0)
    if plan.error:
        if comm.rank == 0:
            print(f"readatl06 reduce: error: {plan.error}", file=sys.stderr)
        return 2
    if comm.rank == 0:
        for m in plan.messages:
            print(f"readatl06: {m}", file=sys.stderr)
        if plan.skipped:
            print(f"readatl06: --resume: {len(plan.skipped)} granules already done, skipped", file=sys.stderr)
    mine = schedule.assign([size for _, _, size in plan.items], comm.size)[comm.rank]
    writer = manifest.PartWriter(outdir, comm.rank)
    records, held = [], []
    try:
        for k, i in enumerate(mine, 1):
            g, path, _ = plan.items[i]
            record, tracks = reduce_one(g, path, opts, outdir, write, overwrite, comm.rank)
            record["params"] = key
            writer.write(record)
            records.append(record)
            if merge_path:
                held.extend((i, t) for t in tracks)
            if progress and comm.rank == 0:
                print(f"readatl06: rank 0 {k}/{len(mine)} ({len(plan.items)} granules on {comm.size} ranks) "
                      f"{g.name}: {record['status']}", file=sys.stderr)
    finally:
        writer.close()
    all_records = comm.gather(records, root=0)
    status = 0
    if comm.rank == 0:
        flat = sorted((r for rs in all_records for r in rs), key=lambda r: r["granule"])
        manifest.consolidate(outdir, flat)
        status = 1 if any(r["status"] == "failed" for r in flat) else 0
        report(flat, plan, comm.size, time.perf_counter() - t0, log)
    status = comm.bcast(status, root=0)
    if merge_path:
        _merge(comm, plan, held, merge_path, opts)
    return status


def _merge(comm, plan, held, merge_path, opts):
    """Merge the tracks the ranks hold; granules skipped by --resume are read back from their files."""
    from readatl06.merge import load_track, merge_tracks
    from readatl06.names import parse_name
    granules = sorted([g for g, _, _ in plan.items] + [parse_name(n) for n in plan.skipped])
    row = {g.name: i for i, g in enumerate(granules)}
    held = [(row[plan.items[i][0].name], t) for i, t in held]
    sizes = [os.path.getsize(p) for p in plan.resumed]
    for i in schedule.assign(sizes, comm.size)[comm.rank]:
        t = load_track(plan.resumed[i])
        held.append((row[t.granule.name], t))
    n = merge_tracks(comm, granules, held, merge_path, opts)
    if comm.rank == 0:
        print(f"readatl06 merge: {n} points of {len(granules)} granules -> {merge_path}")


def report(records, plan, nranks, seconds, log=None):
    """Rank 0: per-granule errors and notes to stderr/log, then the run summary."""
    lines = []
    for r in records:
        if r["status"] == "failed":
            lines.append(f"FAILED {r['error']}")
        for note in r.get("notes", []):
            lines.append(f"note {r['granule']}: {note}")
    n = {s: sum(r["status"] == s for r in records) for s in ("done", "empty", "failed")}
    points = sum(r["points"] for r in records)
    rate = len(records) / seconds if seconds > 0 else 0.0
    summary = (f"readatl06 summary: {len(plan.items) + len(plan.skipped)} granules selected, "
               f"{n['done']} done, {n['empty']} empty, {n['failed']} failed, {len(plan.skipped)} skipped "
               f"(--resume); {points} points kept; {seconds:.2f} s wall on {nranks} ranks; "
               f"{rate:.2f} granules/s")
    for line in lines:
        print(f"readatl06: {line}", file=sys.stderr)
    print(summary)
    if log:
        with open(log, "a", encoding="utf-8") as fh:
            for m in plan.messages:
                fh.write(m + "\n")
            for line in lines:
                fh.write(line + "\n")
            fh.write(summary + "\n")


def run_list(sources, selection, out=None, err=None):
    """``readatl06 list``: selected paths on stdout, problems and the count on stderr."""
    out, err = out or sys.stdout, err or sys.stderr
    try:
        paths = list_sources(sources)
    except ReadATL06Error as exc:
        print(f"readatl06 list: error: {exc}", file=err)
        return 2
    sel = select(paths, selection)
    for m in sel.unparsed:
        print(f"readatl06: skipped, name does not parse: {m}", file=err)
    for m in sel.refused:
        print(f"readatl06: refused: {m}", file=err)
    for m in sel.duplicates:
        print(f"readatl06: {m}", file=err)
    for _, p in sel.granules:
        print(p, file=out)
    print(f"readatl06: {len(sel.granules)} granules selected of {len(paths)} files", file=err)
    return 0
