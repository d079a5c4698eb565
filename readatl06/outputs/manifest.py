"""Run records (docs/output.md): one JSON line per granule and attempt, and what ``--resume`` may trust.

The manifest is the truth: a granule counts as finished only with a complete record. During a run
(one per folder, see :mod:`readatl06.outputs.folder`) every rank appends to its own
``readatl06-manifest.part-<rank>.jsonl`` (flushed and fsynced after each granule, so a killed run
keeps its records); rank 0 folds the parts into ``readatl06-manifest.jsonl`` at the end of a run and
at the start of the next (the leftovers of a killed run), atomically and each record once. Readers
take the main file and any leftover parts; the last record of a granule wins.
"""
import glob
import hashlib
import json
import os

from readatl06.outputs.folder import PlantedError, crash_point, open_existing, open_new, planted

MAIN = "readatl06-manifest.jsonl"
PART = "readatl06-manifest.part-{rank}.jsonl"


def params_key(parameters):
    return hashlib.sha256(parameters.encode()).hexdigest()[:16]


class PartWriter:
    """Append-only records of one rank. A record that cannot be written (full disk) is not lost:
    rank 0 also receives every record and consolidates them; ``error`` keeps the first failure."""

    def __init__(self, outdir, rank):
        self.path = os.path.join(outdir, PART.format(rank=rank))
        self.error = None
        try:
            self.fh = os.fdopen(open_existing(self.path, os.O_WRONLY | os.O_APPEND), "a", encoding="utf-8")
        except (OSError, PlantedError) as exc:
            self.fh, self.error = None, exc

    def write(self, record):
        if self.fh is None:
            return
        try:
            self.fh.write(json.dumps(record, sort_keys=True) + "\n")
            self.fh.flush()
            if record.get("outputs"):      # a lost record without outputs costs only a redo (a skip)
                os.fsync(self.fh.fileno())
        except OSError as exc:
            self.error = self.error or exc

    def close(self):
        if self.fh is not None:
            try:
                self.fh.close()
            except OSError as exc:
                self.error = self.error or exc


def _read_lines(path, nofollow=False):
    """The records of a manifest file (``nofollow``: a part file, never read through a symbolic link)."""
    out = []
    if nofollow and os.path.islink(path):
        raise planted(path)
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue   # a line cut by a kill: that attempt is simply not trusted
    return out


def part_paths(outdir):
    return sorted(glob.glob(os.path.join(glob.escape(outdir), PART.format(rank="*"))))


def read_records(outdir):
    """All records, oldest first: the main manifest, then leftover parts of an interrupted run."""
    records = []
    main = os.path.join(outdir, MAIN)
    if os.path.exists(main):
        records.extend(_read_lines(main))
    for p in part_paths(outdir):
        records.extend(_read_lines(p))
    return records


def latest(records):
    """granule name -> its last record."""
    out = {}
    for r in records:
        out[r["granule"]] = r
    return out


def _key(r):
    return (r.get("run"), r.get("granule"), r.get("started"), r.get("rank"))


def consolidate(outdir, records=()):
    """Rank 0, under the folder's lock: add the records of the part files (this run's, or a killed
    run's) and ``records`` to the main manifest, each record once, then drop the part files. The main
    file is replaced atomically (written under a temporary name, renamed), so a kill at any moment
    leaves either the old or the new manifest, and records already consolidated are never repeated."""
    main = os.path.join(outdir, MAIN)
    existing = _read_lines(main) if os.path.exists(main) else []
    seen = {_key(r) for r in existing}
    new = []
    for r in [r for p in part_paths(outdir) for r in _read_lines(p, nofollow=True)] + list(records):
        if _key(r) not in seen:
            seen.add(_key(r))
            new.append(r)
    if new:
        tmp = os.path.join(outdir, f".{MAIN}.tmp-{os.getpid()}")
        fd = open_new(tmp)                  # PlantedError for a link planted at the name
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                for r in existing + new:
                    fh.write(json.dumps(r, sort_keys=True) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            crash_point("consolidate-before-rename")
            os.replace(tmp, main)
        except BaseException:
            if os.path.lexists(tmp):
                os.remove(tmp)
            raise
    crash_point("consolidate-before-cleanup")
    for p in part_paths(outdir):
        os.remove(p)
    return main


def complete(record, on_disk):
    """A done/empty record whose outputs are exactly the granule's files on disk (``{name: bytes}``,
    from one listing of the folder), at their recorded sizes."""
    if record.get("status") not in ("done", "empty"):
        return False
    outs = list(record.get("outputs", []))
    if sorted(outs) != sorted(on_disk):
        return False
    sizes = record.get("sizes", {})
    return all(on_disk[out] == sizes.get(out) for out in outs)
