"""Run records (DESIGN §4): one JSON line per granule and attempt, and what ``--resume`` may trust.

During a run every rank appends to its own ``readatl06-manifest.part-<rank>.jsonl`` (flushed after
each granule, so a killed run keeps its records); at the end rank 0 appends the run's records to
``readatl06-manifest.jsonl`` and removes the parts. Readers take the main file and any leftover
parts; the last record of a granule wins.
"""
import glob
import hashlib
import json
import os

MAIN = "readatl06-manifest.jsonl"
PART = "readatl06-manifest.part-{rank}.jsonl"


def params_key(parameters):
    return hashlib.sha256(parameters.encode()).hexdigest()[:16]


class PartWriter:
    """Append-only records of one rank."""

    def __init__(self, outdir, rank):
        self.path = os.path.join(outdir, PART.format(rank=rank))
        self.fh = open(self.path, "a", encoding="utf-8")

    def write(self, record):
        self.fh.write(json.dumps(record, sort_keys=True) + "\n")
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self):
        self.fh.close()


def _read_lines(path):
    out = []
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
    return sorted(glob.glob(os.path.join(outdir, PART.format(rank="*"))))


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


def consolidate(outdir, records):
    """Rank 0, end of run: append this run's records to the main manifest, drop the part files."""
    main = os.path.join(outdir, MAIN)
    leftovers = [r for p in part_paths(outdir) for r in _read_lines(p)]
    seen = {(r["granule"], r.get("started")) for r in records}
    with open(main, "a", encoding="utf-8") as fh:
        for r in leftovers:   # records of an earlier, killed run that were never consolidated
            if (r["granule"], r.get("started")) not in seen:
                fh.write(json.dumps(r, sort_keys=True) + "\n")
        for r in records:
            fh.write(json.dumps(r, sort_keys=True) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    for p in part_paths(outdir):
        os.remove(p)
    return main


def trusted(outdir, key):
    """{granule name: its outputs} that ``--resume`` may skip: last record done/empty, same
    parameters, and every output present with the size recorded when it was written."""
    ok = {}
    for name, r in latest(read_records(outdir)).items():
        if r.get("status") not in ("done", "empty") or r.get("params") != key:
            continue
        sizes = r.get("sizes", {})
        complete = True
        for out in r.get("outputs", []):
            p = os.path.join(outdir, out)
            if not os.path.isfile(p) or os.path.getsize(p) != sizes.get(out):
                complete = False
                break
        if complete:
            ok[name] = list(r.get("outputs", []))
    return ok
