"""Run records (docs/output.md): one JSON line per granule and attempt, and what ``--resume`` may trust.

The manifest is the truth: a granule counts as finished only with a complete record. During a run
(one per folder, see :mod:`readatl06.outputs.folder`) every rank appends to its own
``readatl06-manifest.part-<rank>.jsonl`` (flushed and fsynced after each granule, so a killed run
keeps its records); rank 0 folds the parts into ``readatl06-manifest.jsonl`` at the end of a run and
at the start of the next (the leftovers of a killed run), atomically and each record once. Readers
take the main file and any leftover parts; the last record of a granule wins.
"""
import array
import glob
import hashlib
import itertools
import json
import os
import sys

from readatl06.outputs.folder import PlantedError, crash_point, open_existing, open_new, planted

MAIN = "readatl06-manifest.jsonl"
PART = "readatl06-manifest.part-{rank}.jsonl"
REJECTED = "readatl06-manifest.rejected.jsonl"    # lines of the manifest that are no record, kept aside


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


def is_record(value):
    """A run record: a JSON object with a granule name and a status (text)."""
    return isinstance(value, dict) and isinstance(value.get("granule"), str) and isinstance(value.get("status"), str)


def _read_lines(path, nofollow=False, rejected=None):
    """The records of a manifest file (``nofollow``: a part file, never read through a symbolic link).
    A line that is not a record (not UTF-8, not JSON, JSON but no record; a line cut by a kill) is
    skipped: ``rejected`` (a list) receives ``(path, line number, raw bytes, why)`` for each."""
    return list(_each_record(path, nofollow, rejected))


def _each_record(path, nofollow=False, rejected=None):
    """:func:`_read_lines` one record at a time."""
    if nofollow and os.path.islink(path):
        raise planted(path)
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw.decode("utf-8"))
                why = None if is_record(value) else f"JSON {type(value).__name__}, not a run record"
            except UnicodeDecodeError:
                why = "not UTF-8 text"
            except json.JSONDecodeError:
                why = "not JSON (a line cut by a kill?)"
            if why is None:
                yield value
            elif rejected is not None:
                rejected.append((path, number, raw.rstrip(b"\n"), why))


def rejection_notes(rejected):
    """One note per skipped line (see :func:`_read_lines`)."""
    return [f"{path} line {number}: {why}; skipped (kept in {REJECTED} when the manifest is next rewritten)"
            for path, number, _, why in rejected]


def part_paths(outdir):
    return sorted(glob.glob(os.path.join(glob.escape(outdir), PART.format(rank="*"))))


def has_manifest(outdir):
    return os.path.exists(os.path.join(outdir, MAIN)) or bool(part_paths(outdir))


_HEX = frozenset("0123456789abcdef")
_NO_DIGEST = bytes(32)


class Brief:
    """What the readers of a manifest need of a granule's last record (its granule, status, params,
    outputs, sizes and checksums), kept compactly: rank 0 holds one per granule of the folder (10^5 on
    a continent), ~0.8 KB for 12 outputs where the record is ~10 KB as a dict. Output names are kept
    as their suffix after the granule's stem (shared strings), sizes in an array, checksums as raw
    bytes. ``get`` gives the record's values as the dict would (lists and dicts made on demand); a
    record whose outputs, sizes or checksums are not of the usual form is kept as it is."""

    __slots__ = ("granule", "status", "params", "_outputs", "_sizes", "_digests", "_raw")

    def __init__(self, r):
        self.granule, self._raw = r["granule"], None
        self.status, self.params = sys.intern(r["status"]), r.get("params")
        if isinstance(self.params, str):
            self.params = sys.intern(self.params)
        outs, sizes, digests = r.get("outputs", []), r.get("sizes", {}), r.get("sha256")
        stem = self.granule.rsplit(".", 1)[0]
        if not (isinstance(outs, list) and isinstance(sizes, dict) and (digests is None or isinstance(digests, dict))
                and all(isinstance(o, str) and o.startswith(stem) and len(o) > len(stem) for o in outs)
                and all(_plain_size(sizes.get(o)) for o in outs)
                and all(_plain_digest((digests or {}).get(o)) for o in outs)):
            self._raw = {k: r[k] for k in ("outputs", "sizes", "sha256") if k in r}
            return
        self._outputs = tuple(sys.intern(o[len(stem):]) for o in outs)
        self._sizes = array.array("q", (-1 if sizes.get(o) is None else sizes[o] for o in outs))
        self._digests = b"".join(bytes.fromhex(d) if (d := (digests or {}).get(o)) else _NO_DIGEST for o in outs)

    def __getitem__(self, key):
        value = self.get(key, KeyError)
        if value is KeyError:
            raise KeyError(key)
        return value

    def get(self, key, default=None):
        if key in ("granule", "status", "params"):
            return getattr(self, key)
        if self._raw is not None:
            return self._raw.get(key, default)
        stem = self.granule.rsplit(".", 1)[0]
        names = [stem + o for o in self._outputs]
        if key == "outputs":
            return names
        if key == "sizes":
            return {n: b for n, b in zip(names, self._sizes) if b >= 0}
        if key == "sha256":
            return {n: self._digests[32 * i:32 * i + 32].hex() for i, n in enumerate(names)
                    if self._digests[32 * i:32 * i + 32] != _NO_DIGEST}
        return default


def _plain_size(value):
    return value is None or (type(value) is int and 0 <= value < 2 ** 63)


def _plain_digest(value):
    """None, or a SHA-256 in lower-case hex that is not all zeros (how the compact form keeps "none")."""
    return value is None or (isinstance(value, str) and len(value) == 64 and _HEX.issuperset(value)
                             and value != "0" * 64)


def read_briefs(outdir, notes=None):
    """granule name -> :class:`Brief` of its last record: the main manifest, then leftover parts of
    an interrupted run (lines that are no record skipped, each with a line in ``notes`` when given),
    read one record at a time; nothing is written (a reader's view: the folder may be read-only)."""
    out, rejected = {}, []
    main = os.path.join(outdir, MAIN)
    for path in ([main] if os.path.exists(main) else []) + part_paths(outdir):
        for r in _each_record(path, rejected=rejected):
            out[r["granule"]] = Brief(r)
    if notes is not None:
        notes.extend(rejection_notes(rejected))
    return out


def consolidated_briefs(outdir, notes=None):
    """Rank 0 under the folder's lock, before a run: :func:`consolidate` (a killed run's parts, lines
    that are no record moved aside), then granule name -> :class:`Brief` of its last record. The
    manifest streams through, never held whole (10^5 records): read once when there is nothing to
    consolidate (the usual resubmission), else read again as it is rewritten."""
    out, rejected = {}, []
    main = os.path.join(outdir, MAIN)
    if os.path.exists(main):
        for r in _each_record(main, rejected=rejected):
            out[r["granule"]] = Brief(r)
    if not part_paths(outdir) and not rejected:
        return out
    out.clear()
    consolidate(outdir, notes=notes, keep=False, visit=lambda r: out.__setitem__(r["granule"], Brief(r)))
    return out


def _key(r):
    return (r.get("run"), r.get("granule"), r.get("started"), r.get("rank"))


def consolidate(outdir, records=(), notes=None, keep=True, visit=None):
    """Rank 0, under the folder's lock: add the records of the part files (this run's, or a killed
    run's) and ``records`` to the main manifest, each record once, then drop the part files. The main
    file is replaced atomically (written under a temporary name, renamed), so a kill at any moment
    leaves either the old or the new manifest, and records already consolidated are never repeated.
    Lines that are no record are moved to ``REJECTED`` (one JSON line each: file, line, why, text),
    never dropped silently; ``notes`` (a list) receives one line each. Returns every record now in
    the manifest, oldest first (what :func:`read_briefs` would read next: no second read); with
    ``keep=False`` None, and the records stream through: memory is a 16-byte digest per record,
    not the records (the end of a run, whatever the number of granules); ``visit(record)`` is called
    on each record of the new manifest, in its order."""
    main = os.path.join(outdir, MAIN)
    rejected = []
    if not keep:
        _stream(outdir, main, records, rejected, visit)
    else:
        existing = _read_lines(main, rejected=rejected) if os.path.exists(main) else []
        seen = {_key(r) for r in existing}
        new = []
        for r in [r for p in part_paths(outdir) for r in _read_lines(p, nofollow=True, rejected=rejected)] + list(records):
            if _key(r) not in seen:
                seen.add(_key(r))
                new.append(r)
        _keep_rejected(outdir, rejected)
        if new or rejected:
            _replace(outdir, main, existing + new)
    if notes is not None:
        notes.extend(f"{path} line {number}: {why}; moved to {REJECTED}" for path, number, _, why in rejected)
    crash_point("consolidate-before-cleanup")
    for p in part_paths(outdir):
        os.remove(p)
    return existing + new if keep else None


def _keep_rejected(outdir, rejected):
    """The lines that are no record, kept aside (before the manifest is rewritten without them)."""
    if not rejected:
        return
    fd = open_existing(os.path.join(outdir, REJECTED), os.O_WRONLY | os.O_APPEND)
    with os.fdopen(fd, "ab") as fh:
        for path, number, raw, why in rejected:
            fh.write(json.dumps({"file": os.path.basename(path), "line": number, "why": why,
                                 "text": raw.decode("utf-8", "backslashreplace")}).encode() + b"\n")
        fh.flush()
        os.fsync(fh.fileno())


def _replace(outdir, main, records, before_rename=None):
    """``main`` replaced by ``records`` (an iterable: written as they come) under a temporary name,
    fsynced and renamed; ``before_rename()`` runs between; returns what it returns (False: the
    temporary file is dropped and ``main`` left as it is)."""
    tmp = os.path.join(outdir, f".{MAIN}.tmp-{os.getpid()}")
    fd = open_new(tmp)                  # PlantedError for a link planted at the name
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            for r in records:
                fh.write(json.dumps(r, sort_keys=True) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        if before_rename is not None and not before_rename():
            os.remove(tmp)
            return False
        crash_point("consolidate-before-rename")
        os.replace(tmp, main)
        return True
    except BaseException:
        if os.path.lexists(tmp):
            os.remove(tmp)
        raise


def _stream(outdir, main, records, rejected, visit=None):
    """consolidate(keep=False): the main manifest, then every new record of the parts and ``records``,
    written one at a time (each given to ``visit``); replaces ``main`` only when something was new or
    rejected."""
    seen, new = set(), [False]

    def digest(r):
        return hashlib.blake2b(repr(_key(r)).encode(), digest_size=16).digest()

    def each():
        if os.path.exists(main):
            for r in _each_record(main, rejected=rejected):
                seen.add(digest(r))
                if visit is not None:
                    visit(r)
                yield r
        for r in itertools.chain(*(_each_record(p, nofollow=True, rejected=rejected) for p in part_paths(outdir)),
                                 records):
            k = digest(r)
            if k not in seen:
                seen.add(k)
                new[0] = True
                if visit is not None:
                    visit(r)
                yield r

    def decide():
        _keep_rejected(outdir, rejected)
        return new[0] or bool(rejected)
    _replace(outdir, main, each(), before_rename=decide)


def complete(record, on_disk):
    """A done/empty record whose outputs are exactly the granule's files on disk (``{name: bytes}``,
    from one listing of the folder), at their recorded sizes (their checksums: :func:`digest_of`)."""
    if record.get("status") not in ("done", "empty"):
        return False
    outs, sizes = record.get("outputs", []), record.get("sizes", {})
    if not isinstance(outs, list) or not all(isinstance(o, str) for o in outs) or not isinstance(sizes, dict):
        return False
    if sorted(outs) != sorted(on_disk):
        return False
    return all(on_disk[out] == sizes.get(out) for out in outs)


def digest_of(record, name):
    """The recorded checksum of output ``name`` (the hex SHA-256 of its bytes), or None (a record
    made before checksums were recorded)."""
    return digests_of(record, [name])[0]


def digests_of(record, names):
    """:func:`digest_of` for each of ``names``, the record's checksums read once (a Brief makes
    them on demand)."""
    d = record.get("sha256")
    d = d if isinstance(d, dict) else {}
    return [value if isinstance(value := d.get(name), str) else None for name in names]


def file_digest(path, block=1 << 22):
    """The hex SHA-256 of a file's bytes (what the record's ``sha256`` holds for each output)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            h.update(chunk)
    return h.hexdigest()


def damaged(path, expected):
    """None when ``path``'s SHA-256 is ``expected`` (or nothing is expected), else one line saying
    what is wrong with it."""
    if expected is None:
        return None
    try:
        got = file_digest(path)
    except OSError as exc:
        return f"{path}: cannot be read ({exc.strerror or exc})"
    if got != expected:
        return f"{path}: damaged: its SHA-256 is not the one recorded in {MAIN} ({got[:12]}... not {expected[:12]}...)"
    return None
