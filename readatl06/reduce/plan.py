"""What ``reduce`` does, decided by rank 0 before any work: list and select the granules, check and
reserve the targets, read the manifest and one listing of OUTDIR, and decide per granule what
``--resume`` skips, what is redone and what a newer release supersedes (O(granules + files))."""
import contextlib
import dataclasses
import gc
import os

from readatl06.atl06.names import parse_name, select
from readatl06.errors import ReadATL06Error, SourceError, UsageError
from readatl06.outputs import folder as outdir_mod
from readatl06.outputs import locks, manifest
from readatl06.outputs.outdir import list_beam_files
from readatl06.reduce.items import Items
from readatl06.reduce.resumed import Resumed
from readatl06.sources import discover, remote


@dataclasses.dataclass
class Plan:
    """What rank 0 decided, broadcast to everyone."""

    items: "Items"         # [(GranuleName, path, size, files of it already in OUTDIR)] in (time, name) order
    skipped: "Resumed"     # the granules whose complete records --resume trusts, their outputs (--merge reads them)
    messages: list         # one line per name problem (unparsed, refused, duplicate) or resume decision
    error: str = None      # bad usage or a SourceError: stop before any work (exit 2)
    run: str = ""          # this run's id, in every record
    list_seconds: float = 0.0
    superseded: dict = dataclasses.field(default_factory=dict)   # new granule -> older ones in OUTDIR it replaces


def check_targets(outdir, inputs, merge_path, log, overwrite, resume, held=None):
    """Every file the run writes, before any work (UsageError): never an input, never an existing
    merged file or log without --overwrite (a text log is appended to with --resume). The merged
    file is reserved for this run (``held`` receives the reservation)."""
    if merge_path:
        if held is None:
            outdir_mod.check_file_target("--merge", merge_path, inputs, overwrite)
        else:
            held.append(locks.reserve("--merge", merge_path, inputs, overwrite, "reduce --merge"))
    if log:
        if os.path.islink(log):                  # appended to or emptied: never through a link
            raise outdir_mod.planted(log)
        outdir_mod.check_file_target("--log", log, inputs, overwrite, append_ok=resume)
        if overwrite and os.path.isfile(log):
            fd = outdir_mod.open_existing(log, single=False)       # not through a symbolic link
            os.ftruncate(fd, 0)
            os.close(fd)


@contextlib.contextmanager
def collector_paused():
    """Python's cyclic garbage collector paused while a plan of some ten objects per granule (none in
    a cycle) is built, and those objects frozen after it (``gc.freeze``: never scanned again). The
    collector's rescans of the growing plan otherwise made planning superlinear: 10^3 granules 144,
    2·10^4 granules 210 µs per granule; paused, 150 and 165 (bench/bench_continent.py part (a))."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was:
            gc.enable()


def make_plan(sources, selection, outdir, params_key, resume, overwrite=False, merge_path=None, log=None,
              held=None):
    """Rank 0, under the folder's lock: list, select, check (and reserve) targets, tidy leftovers,
    decide (with the collector paused: :func:`collector_paused`)."""
    with collector_paused():
        return _make_plan(sources, selection, outdir, params_key, resume, overwrite, merge_path, log, held)


def _make_plan(sources, selection, outdir, params_key, resume, overwrite, merge_path, log, held):
    try:
        listing = discover(sources, exclude=[outdir])
        paths = listing.paths
        check_targets(outdir, paths, merge_path, log, overwrite, resume, held)
    except (SourceError, UsageError) as exc:
        return Plan(Items(), Resumed(), [], str(exc))
    notes = []
    # a killed run's part files -> manifest; read once, a compact Brief kept per granule
    records = manifest.consolidated_briefs(outdir, notes=notes)
    locks.remove_leftovers(outdir)                # its temporary files
    sel = select(paths, selection)
    messages = notes + listing.messages() + sel.messages()
    beam_files = list_beam_files(outdir)          # one listing of OUTDIR, whatever the number of granules
    replaced = superseded_in_outdir(sel.granules, records, beam_files) if resume or overwrite else {}
    items, skipped, changed, unfinished = [], Resumed(outdir), [], []

    def size_of(path):                  # from the listing's stat: no second stat per granule
        size = listing.sizes.get(path)
        return remote_size_of(path) if size is None else size
    for g, p in sel.granules:
        on_disk = beam_files.of(g.stem)
        if g.name in replaced:      # an older release's files are stale files of this granule: (re)done
            on_disk = {**on_disk, **{n: b for _, files in replaced[g.name] for n, b in files.items()}}
        r = records.get(g.name)
        if resume and r is not None and g.name not in replaced:
            if r.get("params") == params_key and manifest.complete(r, on_disk):
                # its checksums are checked by every rank, a share each; the sizes are the listing's
                outputs = r.get("outputs", [])
                skipped.add((g, p, size_of(p)), outputs, [on_disk[o] for o in outputs],
                            manifest.digests_of(r, outputs))
                continue
            if r.get("status") in ("done", "empty") and r.get("params") != params_key:
                changed.append(g.name)
        if resume and on_disk and g.name not in changed and g.name not in replaced:
            unfinished.append(g.name)
        items.append((g, p, size_of(p), list(on_disk)))
    if replaced:
        pairs = [f"{old} (by {new})" for new, olds in sorted(replaced.items()) for old, _ in olds]
        messages.append(f"{'--resume' if resume else '--overwrite'}: {len(pairs)} granules in {outdir} are "
                        f"superseded by a newer release or revision; their per-beam files are removed when "
                        f"the newer one is written: {' '.join(pairs[:5])}{' ...' if len(pairs) > 5 else ''}")
    if changed:
        messages.append(f"--resume: {len(changed)} granules were reduced with other options and are "
                        f"redone: {' '.join(changed[:5])}{' ...' if len(changed) > 5 else ''}")
    if unfinished:
        messages.append(f"--resume: {len(unfinished)} granules have files but no complete record "
                        f"(interrupted) and are redone: {' '.join(unfinished[:5])}{' ...' if len(unfinished) > 5 else ''}")
    return Plan(Items(items), skipped.done(), messages,
                superseded={new: [old for old, _ in olds] for new, olds in replaced.items()})


def check_resumed(comm, plan, digests=None):
    """The files --resume would trust, checked against their recorded SHA-256 by every rank, a share
    each (no serial pass on rank 0); a granule with a damaged file moves from ``skipped`` to the
    granules to reduce, on every rank alike. ``digests``: rank 0's ``plan.skipped`` before the plan
    was broadcast (it alone holds the checksums: each rank receives only its share, one scatter).
    Only the damaged ones travel back (one small allgather)."""
    skipped, bad = plan.skipped, []
    if not len(skipped):
        return
    from readatl06.parallel.exchange import scatter_bytes
    share = scatter_bytes(comm, [(skipped if digests is None else digests).share(r, comm.size) for r in range(comm.size)]
                          if comm.rank == 0 else None)
    at = 0
    for k in range(comm.rank, len(skipped), comm.size):
        checks, at = skipped.checks(k, share, at)
        line = next((m for m in (manifest.damaged(path, digest) for path, digest in checks) if m), None)
        if line:
            bad.append((k, line))
    bad = sorted(b for part in (comm.allgather(bad) if comm.size > 1 else [bad]) for b in part)
    if not bad:
        return
    redo = [skipped.item(k) for k, _ in bad]
    plan.skipped = skipped.without([k for k, _ in bad])
    plan.items = Items(sorted(list(plan.items) + redo, key=lambda it: (it[0].time, it[0].name, it[1])))
    plan.messages.append(f"--resume: {len(bad)} granules have a file that is not the one recorded and are "
                         f"redone: {bad[0][1]}{f' (and {len(bad) - 1} more)' if len(bad) > 1 else ''}")


def superseded_in_outdir(granules, records, beam_files):
    """``{new name: [(old name, {file: bytes})]}``: granules already in OUTDIR (by their records or
    their per-beam files) that a selected granule of a newer release or revision of the same (RGT,
    cycle, region) replaces. One pass over the records and the listing: O(granules + files)."""
    newest, selected = {}, {g.name for g, _ in granules}     # --all-releases: nothing is superseded
    for g, _ in granules:
        if g.version >= newest.get(g.track_key, g).version:
            newest[g.track_key] = g
    present = {name for name, r in records.items() if r.get("status") in ("done", "empty")}
    present |= {stem + ".h5" for stem in beam_files.by_stem}
    out = {}
    for name in sorted(present):
        if name in selected:
            continue
        try:
            old = parse_name(name)
        except (ValueError, ReadATL06Error):
            continue
        new = newest.get(old.track_key)
        if new is not None and old.version < new.version:
            out.setdefault(new.name, []).append((old.name, dict(beam_files.of(old.stem))))
    return out


def remote_size_of(path):
    """Bytes of a granule the listing did not stat (a URL: from its listing; 0 when unknown)."""
    try:
        return remote.size_of(path)
    except OSError:
        return 0
