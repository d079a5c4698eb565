"""``reduce`` across ranks: rank 0 lists and selects, every rank reduces its share independently."""
import datetime as dt
import errno
import os
import socket
import sys
import time
import traceback

from readatl06.outputs import manifest
from readatl06.parallel import schedule
from readatl06.outputs import folder as outdir_mod
from readatl06.outputs import locks
from readatl06.errors import GranuleError, UsageError
from readatl06.atl06.schema import OUTPUT_VARS
from readatl06.reduce.items import Items
from readatl06.reduce.plan import Plan, check_resumed, make_plan
from readatl06.reduce.resumed import Resumed
from readatl06.reduce.tally import Tally
from readatl06.parallel.handout import hand_out
from readatl06.parallel.local import writes_together
from readatl06.parallel.world import SerialComm
from readatl06.parallel.progress import Progress
from readatl06.redact import redact
from readatl06.sources import remote


WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG}


def _failed(record, message, exc=None):
    record.update(status="failed", error=message, points=0, outputs=[], sizes={}, sha256={})
    if exc is not None:
        record["traceback"] = traceback.format_exc(limit=6)


def reduce_one(g, path, opts, outdir, write, replace, rank, on_disk=()):
    """Reduce and write one granule; always returns (record, tracks, stop) — failures become records.
    ``replace``: the granule's files already in OUTDIR (``on_disk``) are the run's own to replace
    (--overwrite, --resume); the new files are renamed over them and stale ones removed after.
    ``stop``: a write error of the output folder (full disk ...) that every later granule would hit."""
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds")
    t0 = time.perf_counter()
    record = {"granule": g.name, "path": redact(str(path)), "rank": rank, "started": started, "outputs": [],
              "sizes": {}, "sha256": {}, "points": 0, "segments": 0, "error": None, "notes": [],
              "removed": {"subset": 0, "invalid": 0, "fill": 0, "quality": 0}}
    from readatl06.reduce.granule import reduce_granule   # not imported by `list`
    from readatl06.outputs.trackfile import write_tracks
    tracks, stop = [], False
    try:
        if on_disk and write and not replace:
            more = f" and {len(on_disk) - 1} more" if len(on_disk) > 1 else ""
            raise GranuleError(g.name, f"output {on_disk[0]}{more} of an earlier run exists; use --overwrite "
                                       "to replace it or --resume to keep finished granules")
        with remote.opened(path) as source:           # local path, remote granule read in place, or staged
            res = reduce_granule(source, g, opts)
        record["timings"] = {"read": round(res.read_seconds, 4), "filter": round(res.seconds - res.read_seconds, 4)}
        record["bytes_read"] = res.bytes_read
        tracks = res.tracks
        t_write = time.perf_counter()
        record.update(points=res.points, segments=res.segments, removed=res.removed, notes=res.notes)
        user = [v.source for v in opts.vars[len(OUTPUT_VARS):]]
        record["vars"] = {s: s in res.found for s in user if s in res.looked_up}   # --vars: found here?
        if write and tracks:
            digests = {}
            for p in write_tracks(tracks, outdir, overwrite=replace, compression=opts.compression, digests=digests):
                name = os.path.basename(p)
                record["outputs"].append(name)
                record["sizes"][name] = os.path.getsize(p)
            record["sha256"] = digests
        record["timings"]["write"] = round(time.perf_counter() - t_write, 4)
        outdir_mod.crash_point("granule-written")
        if write:
            for name in set(on_disk) - set(record["outputs"]):     # stale files of an earlier run
                os.remove(os.path.join(outdir, name))
        record["status"] = "done" if tracks else "empty"
        if not tracks:
            record["reason"] = res.skipped or "no point kept: the subset, fill and quality removed every one"
    except GranuleError as exc:
        _failed(record, str(exc))
        tracks = []
    except MemoryError:
        _failed(record, f"{g.name}: not enough memory to read it (declared sizes too large?)")
        tracks = []
    except OSError as exc:
        if exc.errno in WRITE_ERRNOS:
            stop = True
            _failed(record, f"{g.name}: cannot write to {outdir}: {exc.strerror or exc}")
        else:
            _failed(record, f"{g.name}: unexpected {type(exc).__name__}: {exc}", exc)
        tracks = []
    except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as exc:
        _failed(record, f"{g.name}: unexpected {type(exc).__name__}: {exc}", exc)
        tracks = []
    record["seconds"] = round(time.perf_counter() - t0, 4)
    return record, tracks, stop


def _start(comm, sources, selection, outdir, key, resume, overwrite, merge_path, log):
    """Rank 0 checks the folder, takes its lock and plans; everybody gets the plan. (plan, lock, rank
    0's skipped granules with their checksums, which are not broadcast)"""
    plan, lock = None, locks.Held()
    if comm.rank == 0:
        try:
            outdir_mod.check_outdir(outdir)
            lock.append(locks.Lock(outdir, "reduce"))
            t_list = time.perf_counter()
            plan = make_plan(sources, selection, outdir, key, resume, overwrite, merge_path, log, lock)
            plan.list_seconds = time.perf_counter() - t_list
            plan.run = f"{socket.gethostname()}-{os.getpid()}-{time.time():.3f}"
            if lock[0].note:
                plan.messages.insert(0, f"note: {lock[0].note}")
        except UsageError as exc:
            plan = Plan(Items(), Resumed(), [], str(exc))
        if plan.error:
            lock.release()
    from readatl06.parallel.exchange import bcast_object
    digests = plan.skipped if comm.rank == 0 else None      # the checksums stay here (check_resumed)
    return bcast_object(comm, plan), lock, digests


def run_reduce(comm, sources, selection, opts, outdir, *, resume=False, overwrite=False, write=True,
               progress=False, log=None, merge_path=None, schedule_how="dynamic", merge_memory=None,
               timings=False):
    """The whole ``readatl06 reduce`` command, called on every rank alike (docs/command-line.md).

    Rank 0 checks OUTDIR, takes its lock, lists and selects the granules and decides what
    ``--resume`` skips; every rank then reduces the granules the schedule gives it, writes their
    per-beam files and appends their records; rank 0 consolidates the manifest and prints the
    summary; with ``merge_path`` all ranks write the merged file together.

    Args:
        comm: the communicator of the ranks taking part: an mpi4py communicator, or the one-rank
            stand-in of ``readatl06.parallel.world.world()`` without an MPI launcher.
        sources: the SOURCE strings, as on the command line (paths, folders, globs, ``@list.txt``,
            ``ssh://``, ``s3://``, ``https://``).
        selection: a ``readatl06.atl06.names.Selection``: which granules, by file name.
        opts: a ``readatl06.reduce.granule.ReduceOptions``: subset, variables, beams, quality,
            compression; its ``parameters()`` are stored in every output and their hash in every
            record.
        outdir: OUTDIR, the folder of the per-beam files, the manifest and the lock (created).
        resume: skip granules whose last record is complete with the same options (``--resume``).
        overwrite: replace existing outputs, a merged file and a log (``--overwrite``).
        write: write the per-beam files; False is ``--no-per-beam`` (needs ``merge_path``).
        progress: show progress over all ranks on rank 0 (``--progress``).
        log: a file that errors, notes and the summary are appended to (``--log``), or None.
        merge_path: the merged file to write after reducing (``--merge``), or None.
        schedule_how: ``"dynamic"`` (ranks take the next largest granule as they finish) or
            ``"static"`` (the largest-first plan made up front); the outputs are the same.
        merge_memory: the merge's memory per rank in MB (``--merge-memory``); None: the default
            (512).
        timings: print seconds per stage and the bytes read, summed over ranks (``--timings``).

    Returns:
        int: the exit status, the same on every rank: 0 when every granule was reduced or had
        nothing inside the subset, 1 when a granule or the merge failed or a write error stopped a
        rank, 2 for bad usage found before any work (rank 0 printed the one-line reason).
    """
    t0 = time.perf_counter()
    key = manifest.params_key(opts.parameters())
    plan, lock, digests = _start(comm, sources, selection, outdir, key, resume, overwrite, merge_path, log)
    if plan.error:
        if comm.rank == 0:
            print(f"readatl06 reduce: error: {plan.error}", file=sys.stderr)
        return 2
    try:
        check_resumed(comm, plan, digests)
        digests, plan.skipped.digests = None, bytearray()     # checked: not held through the run
        return _run(comm, plan, opts, outdir, key, t0, resume or overwrite, write, progress, log, merge_path,
                    schedule_how, merge_memory, timings)
    finally:
        lock.release()


def _work(comm, plan, how):
    """This rank's granule indices: the static plan, or the next largest one as this rank finishes.
    (A rank that stops early leaves the rest of the counter to the others.)"""
    sizes = plan.items.sizes()
    if how == "static":
        yield from schedule.assign(sizes, comm.size)[comm.rank]
        return
    yield from hand_out(comm, schedule.largest_first(sizes))


def _run(comm, plan, opts, outdir, key, t0, replace, write, progress, log, merge_path, how, merge_memory=None,
         timings=False):
    from readatl06.merge.redistribute import HeldTracks   # tracks for --merge: in memory up to a limit, then their files
    # local workers (-j) cannot write one file together: each keeps only what points to the per-beam
    # files it wrote (memory 0) and rank 0 merges alone, after the others, exactly as one rank would
    together = writes_together(comm)
    if comm.rank == 0:
        for m in plan.messages:
            print(f"readatl06: {m}", file=sys.stderr)
        if plan.skipped:
            print(f"readatl06: --resume: {len(plan.skipped)} granules already done, skipped", file=sys.stderr)
    writer = manifest.PartWriter(outdir, comm.rank)
    tally, unwritten = Tally(), []        # what the report needs; whole records the part file lacks
    held, stopped = HeldTracks(outdir, write, merge_memory if together else 0), None
    shown = Progress(comm, len(plan.items), enabled=progress)
    try:
        for i in _work(comm, plan, how):
            g, path, _, on_disk = plan.items[i]
            record, tracks, stop = reduce_one(g, path, opts, outdir, write, replace, comm.rank, on_disk)
            record["params"], record["run"] = key, plan.run
            writer.write(record)
            if record["status"] in ("done", "empty"):
                for old in plan.superseded.get(g.name, ()):    # its files went with the stale ones
                    writer.write({"granule": old, "status": "superseded", "by": g.name, "params": key,
                                  "run": plan.run, "rank": comm.rank, "outputs": [], "sizes": {}, "points": 0})
            outdir_mod.crash_point("record-written")
            tally.add(i, record)
            if writer.error is not None:
                unwritten.append(record)
            if merge_path:
                held.extend((i, t) for t in tracks)
            shown.update(record)
            if stop:
                stopped = f"rank {comm.rank} stopped after a write error: {record['error']}; " \
                          "granules not attempted are left for --resume"
                break
    finally:
        writer.close()
    shown.close()
    from readatl06.parallel.exchange import bcast_object, gather_objects
    gathered = gather_objects(comm, (tally, stopped, unwritten))      # bytes in pieces below 2^31
    status, reduced = 0, None
    if comm.rank == 0:
        tally = Tally.combined(t for t, _, _ in gathered)
        stops = [s for _, s, _ in gathered if s] + tally.vars_found_nowhere()
        status = 1 if stops or tally.count["failed"] else 0
        try:
            manifest.consolidate(outdir, [r for _, _, u in gathered for r in u], keep=False)
        except (OSError, outdir_mod.PlantedError) as exc:
            stops.append(f"the manifest cannot be written ({getattr(exc, 'strerror', None) or exc}); "
                         "the part files keep the records")
            status = 1
        report(tally, plan, comm.size, time.perf_counter() - t0, log, stops, timings)
        reduced = tally.reduced
    status, reduced = bcast_object(comm, (status, reduced))
    gathered = tally = unwritten = None             # not held through the merge
    if merge_path and not together:
        everyone = comm.gather(held, root=0)
        if comm.rank != 0:
            return status
        comm, held = SerialComm(), everyone[0]
        for other in everyone[1:]:
            for row, t in other:                 # their per-beam files (a worker keeps no Track)
                held.add(row, t)
    if merge_path:
        t_merge = time.perf_counter()
        status = max(status, _merge(comm, plan, held, merge_path, opts, reduced, merge_memory))
        if timings and comm.rank == 0:
            print(f"readatl06 timings: merge {time.perf_counter() - t_merge:.3f} s (wall)")
    return status


def _merge(comm, plan, held, merge_path, opts, reduced, merge_memory=None):
    """Merge the tracks the ranks hold (in memory, or as the per-beam files they wrote once their
    share of ``merge_memory`` MB was used); granules skipped by --resume are merged from their files.
    Only reduced granules (done or empty) are in the file. Returns an exit status."""
    import numpy as np

    from readatl06.merge.redistribute import memory_bytes, open_tracks
    from readatl06.parallel.world import first_error
    from readatl06.merge.writer import merge_tracks, rounds_note
    from readatl06.atl06.names import parse_name
    granules = sorted([plan.items[i][0] for i in reduced] + [parse_name(n) for n in plan.skipped])
    if not granules:
        if comm.rank == 0:
            print(f"readatl06 merge: error: no granule was reduced; {merge_path} not written", file=sys.stderr)
        return 1
    over = comm.allgather(held.bytes if getattr(held, "over", False) else 0)
    row = {g.name: i for i, g in enumerate(granules)}
    items = plan.items
    held.renumber(np.array([row.get(items.name(i), -1) for i in range(len(items))], np.int64))  # item -> row
    skipped = plan.skipped             # their files, a share of the granules each (sizes from rank 0's listing)
    mine = schedule.assign(skipped.granule_bytes(), comm.size)[comm.rank]
    _, error = open_tracks((p for k in sorted(mine) for p in skipped.paths(k)),
                           keep=lambda t: held.add(row[t.granule.name], t))
    row = mine = None                          # not held through the merge
    error = first_error(comm, error)
    if error:
        if comm.rank == 0:
            print(f"readatl06 merge: error: {error}; {merge_path} not written", file=sys.stderr)
        return 1
    need = held.nbytes()
    need = comm.allreduce(need) if comm.size > 1 else need
    free = outdir_mod.free_bytes(os.path.dirname(os.path.abspath(merge_path))) if comm.rank == 0 else 0
    free = comm.bcast(free, root=0)
    if need > free:
        if comm.rank == 0:
            print(f"readatl06 merge: error: {merge_path} may need up to {need / 1e6:.1f} MB, only "
                  f"{free / 1e6:.1f} MB free there; not written", file=sys.stderr)
        return 1
    if comm.rank == 0 and max(over):
        print(f"readatl06 merge: --no-per-beam: the ranks keep their tracks in memory for the merge (up to "
              f"{max(over) / 2 ** 20:.3g} MB on one rank, more than the tracks' share of --merge-memory "
              f"{memory_bytes(merge_memory) / 2 ** 20:.3g} MB); with per-beam files they would be read back",
              file=sys.stderr)
    n = merge_tracks(comm, granules, held, merge_path, opts, memory=merge_memory)
    if comm.rank == 0:
        from readatl06.merge.append import drop_parts
        drop_parts(merge_path)                 # the parts of an appended product it replaced
        print(f"readatl06 merge: {n} points of {len(granules)} granules -> {merge_path}{rounds_note()}")
    return 0


def report(tally, plan, nranks, seconds, log=None, stops=(), timings=False):
    """Rank 0: per-granule errors and notes to stderr/log, then the run summary (``tally``: every
    rank's :class:`~readatl06.reduce.tally.Tally` combined). Points are counted only for reduced
    granules."""
    shown, more = tally.shown()
    lines = [f"ERROR {s}" for s in stops] + shown
    if more:
        lines.append(f"... and {more} more lines of failures and notes, not shown: every granule's error and "
                     f"notes are in its record in OUTDIR/{manifest.MAIN}")
    n = tally.count
    rate = len(tally) / seconds if seconds > 0 else 0.0
    summary = (f"readatl06 summary: {len(plan.items) + len(plan.skipped)} granules selected, "
               f"{n['done']} done, {n['empty']} empty, {n['failed']} failed, {len(plan.skipped)} skipped "
               f"(--resume){f', {len(plan.items) - len(tally)} not attempted' if len(tally) < len(plan.items) else ''}; "
               f"{tally.points} points kept; {seconds:.2f} s wall on {nranks} ranks; "
               f"{rate:.2f} granules/s")
    for line in lines:
        print(f"readatl06: {line}", file=sys.stderr)
    print(summary)
    if timings:
        stage = tally.seconds
        print(f"readatl06 timings (seconds summed over ranks): list {plan.list_seconds:.3f}, read and inflate "
              f"{stage['read']:.3f}, filter {stage['filter']:.3f}, write {stage['write']:.3f}; "
              f"{tally.bytes_read / 1e6:.1f} MB read")
    if log:
        with os.fdopen(outdir_mod.open_existing(log, os.O_WRONLY | os.O_APPEND, single=False), "a",
                       encoding="utf-8") as fh:
            for m in plan.messages:
                fh.write(m + "\n")
            for line in lines:
                fh.write(line + "\n")
            fh.write(summary + "\n")


