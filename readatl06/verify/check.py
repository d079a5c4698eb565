"""What ``readatl06 verify`` checks (docs/output.md, "Checking a folder: verify").

An OUTDIR: every output of every granule whose last record is complete (done or empty) is there,
at its recorded size, and its bytes have the recorded SHA-256 (a record made before checksums were
recorded: the file opens and every dataset reads); no per-beam file is there that no such record
lists (unrecorded: a leftover of an interrupted or failed attempt, or a file from elsewhere); every
line of the manifest is a record. A merged file (it has no record): it opens, ``/granules`` holds
names, every ``/<beam>/<direction>`` group's datasets have one length, its ``granule_index`` is
sorted and within the rows of ``/granules``, and every value of every dataset reads (every chunk
inflates). The files (or datasets) are spread over the ranks; rank 0 prints one line per problem
and a summary. Exit status 0: all is well; 1: anything is missing, damaged or unrecorded; 2: the
target is neither."""
import os
import sys

import numpy as np

from readatl06.errors import UsageError
from readatl06.outputs import locks, manifest
from readatl06.outputs.outdir import BEAM_FILE_RE, list_beam_files
from readatl06.parallel.spread import decided, spread

BLOCK = 1 << 20          # elements read at once


def _read_all(obj, name=""):
    """Read every dataset under an h5py group (``BLOCK`` elements at a time); one line or None."""
    import h5py
    bad = []

    def visit(key, item):
        if isinstance(item, h5py.Dataset) and not bad:
            try:
                n = item.shape[0] if item.shape else 1
                for a in range(0, n, BLOCK) if item.shape else [0]:
                    item[a:a + BLOCK] if item.shape else item[()]
            except (OSError, ValueError, RuntimeError) as exc:
                bad.append(f"{name}/{key}: does not read ({str(exc).splitlines()[0]})")
    obj.visititems(visit)
    return bad[0] if bad else None


def check_file(item):
    """(``path``, size, sha256) of a recorded output -> ("damaged"|"unreadable"|"unchecked"|None, line)."""
    path, size, digest = item
    try:
        got = os.path.getsize(path)
    except OSError as exc:
        return "damaged", f"{path}: cannot be read ({exc.strerror or exc})"
    if size is not None and got != size:
        return "damaged", f"{path}: damaged: {got} bytes, recorded {size}"
    if digest is not None:
        bad = manifest.damaged(path, digest)
        return ("damaged", bad) if bad else (None, None)
    import h5py
    try:
        with h5py.File(path, "r") as f:
            bad = _read_all(f, path)
    except OSError as exc:
        bad = f"{path}: not a readable HDF5 file ({str(exc).splitlines()[0]})"
    if bad:
        return "damaged", f"{bad}: damaged (no checksum recorded)"
    return "unchecked", None


def plan_outdir(outdir):
    """Rank 0: (items to check, problems found from the listing alone, counts of the records)."""
    notes = []
    records = manifest.read_briefs(outdir, notes)
    listed = list_beam_files(outdir)
    problems = [("unreadable", n) for n in notes]
    items, recorded, failed = [], set(), 0
    for name, r in sorted(records.items()):
        if r.get("status") not in ("done", "empty"):
            failed += 1
            continue
        outs, sizes = r.get("outputs", []), r.get("sizes", {})
        if not isinstance(outs, list) or not isinstance(sizes, dict):
            problems.append(("unreadable", f"{manifest.MAIN}: the record of {name} has no list of outputs"))
            continue
        for o, digest in zip(outs, manifest.digests_of(r, outs)):
            recorded.add(o)
            path = os.path.join(outdir, o)
            if o not in listed.sizes:
                problems.append(("missing", f"{path}: missing (recorded as an output of {name})"))
            else:
                items.append((path, sizes.get(o), digest))
    for n in listed.sizes:
        if n not in recorded:
            stem = BEAM_FILE_RE.fullmatch(n)["stem"]
            problems.append(("unrecorded", f"{os.path.join(outdir, n)}: unrecorded (no complete record of "
                                           f"{stem} lists it: a leftover of an interrupted or failed attempt?)"))
    return items, problems, (len(records), failed)


def _check_group(item):
    """One group of a merged file: (problem or None, rows)."""
    import h5py
    path, group, ngranules = item
    where = f"{path}:{group}"
    with h5py.File(path, "r") as f:
        g = f[group]
        if group == "/granules":
            return _read_all(g, where), 0
        lengths = {k: v.shape[0] for k, v in g.items() if isinstance(v, h5py.Dataset) and v.shape}
        if len(set(lengths.values())) > 1:
            return f"{where}: damaged: datasets of different lengths {lengths}", 0
        n = next(iter(lengths.values()), 0)
        if n and "granule_index" not in g:
            return f"{where}: no granule_index", n
        last = 0
        for a in range(0, n, BLOCK):
            try:
                gi = g["granule_index"][a:a + BLOCK].astype(np.int64)
            except (OSError, ValueError, RuntimeError) as exc:
                return f"{where}/granule_index: does not read ({str(exc).splitlines()[0]})", n
            if gi.size and (gi[0] < last or np.any(np.diff(gi) < 0) or gi.min() < 0 or gi.max() >= ngranules):
                return (f"{where}/granule_index: not sorted within the {ngranules} rows of /granules "
                        f"(found {int(gi.min())}..{int(gi.max())})"), n
            last = int(gi[-1]) if gi.size else last
        return _read_all(g, where), n


def plan_merged(path):
    """Rank 0: the groups of a merged file to check, and the number of granules; UsageError if it is
    not one."""
    import h5py
    from readatl06.atl06.schema import BEAMS, DIRECTIONS
    from readatl06.export.plan import merged_head
    names, _ = merged_head(path)
    with h5py.File(path, "r") as f:
        groups = [f"/{b}/{d}" for b in BEAMS for d in DIRECTIONS if f"{b}/{d}" in f]
    return [(path, g, len(names)) for g in groups] + [(path, "/granules", len(names))], len(names)


def _outdir_head(target, held):
    """Rank 0: take the shared lock, plan (:func:`plan_outdir`)."""
    held.append(locks.Lock(target, "verify", shared=True))
    head = plan_outdir(target)
    if held[0].note:
        print(f"readatl06 verify: note: {held[0].note}", file=sys.stderr)
    if not manifest.has_manifest(target):
        head[1].insert(0, ("unreadable", f"{target}: no run manifest ({manifest.MAIN}): nothing "
                                         "to check the files against"))
    return head


def _verify_outdir(comm, target):
    held = locks.Held()
    try:
        try:
            head = decided(comm, lambda: _outdir_head(target, held), UsageError)
        except UsageError as exc:
            if comm.rank == 0:
                print(f"readatl06 verify: error: {exc}", file=sys.stderr)
            return 2
        items, problems, (ngranules, failed) = head
        verdicts = spread(comm, items, check_file)
    finally:
        held.release()
    if comm.rank != 0:
        return 1 if problems or any(v[0] == "damaged" for v in verdicts) else 0
    problems = problems + [(kind, line) for kind, line in verdicts if kind == "damaged"]
    for _, line in problems:
        print(f"readatl06 verify: {line}", file=sys.stderr)
    count = {k: sum(p[0] == k for p in problems) for k in ("missing", "damaged", "unrecorded", "unreadable")}
    unchecked = sum(v[0] == "unchecked" for v in verdicts)
    good = len(items) - count["damaged"]
    manifest_problems = f", {count['unreadable']} manifest problems" if count["unreadable"] else ""
    print(f"readatl06 verify: {target}: {len(items)} recorded files of {ngranules} granules: {good} good"
          f"{f' ({unchecked} without a recorded checksum, read back whole)' if unchecked else ''}, "
          f"{count['damaged']} damaged, {count['missing']} missing, {count['unrecorded']} unrecorded"
          f"{manifest_problems}"
          f"{f'; {failed} granules failed in their last attempt (no outputs)' if failed else ''}"
          f"; {'all is well' if not problems else 'NOT all is well'}")
    return 1 if problems else 0


def _verify_merged(comm, target):
    try:
        head = decided(comm, lambda: plan_merged(target), UsageError)
    except UsageError as exc:
        if comm.rank == 0:
            print(f"readatl06 verify: error: {exc}", file=sys.stderr)
        return 2
    items, ngranules = head
    verdicts = spread(comm, items, _check_group)
    bad = [line for line, _ in verdicts if line]
    if comm.rank == 0:
        for line in bad:
            print(f"readatl06 verify: {line}", file=sys.stderr)
        points = sum(n for (_, g, _), (_, n) in zip(items, verdicts) if g != "/granules")
        print(f"readatl06 verify: {target}: a merged file of {ngranules} granules, {len(items) - 1} groups, "
              f"{points} points: {'every dataset reads, granule_index in order' if not bad else f'{len(bad)} problems'}"
              f"; {'all is well' if not bad else 'NOT all is well'}")
    return 1 if bad else 0


def run_verify(comm, target):
    """``readatl06 verify OUTDIR|MERGED.h5`` (called on every rank alike); returns the exit status."""
    if os.path.isdir(target):
        return _verify_outdir(comm, target)
    if os.path.isfile(target):
        return _verify_merged(comm, target)
    if comm.rank == 0:
        print(f"readatl06 verify: error: {target}: no such file or folder; expected an OUTDIR or a merged file",
              file=sys.stderr)
    return 2
