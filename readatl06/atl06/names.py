"""ATL06 file names: parse ``[processed_]ATL06_yyyymmddhhmmss_ttttccss_vvv_rr.h5`` and select on its fields.

Pure functions: nothing here opens a file.
"""
import dataclasses
import datetime as dt
import os
import re
import sys
import urllib.parse

from readatl06.errors import GranuleError, NotATL06Error, UsageError
from readatl06.redact import redact

# One named group per field of the ATL06 file-name convention (ATL06 user guide, "File naming").
GRANULE_RE = re.compile(
    r"^(?P<prefix>processed_)?"
    r"ATL06_"
    r"(?P<time>\d{14})_"      # acquisition start yyyymmddhhmmss (UTC)
    r"(?P<rgt>\d{4})"         # reference ground track 0001-1387
    r"(?P<cycle>\d{2})"       # 91-day repeat cycle
    r"(?P<region>\d{2})_"     # latitude region ("segment") 01-14
    r"(?P<release>\d{3})_"    # release, e.g. 006
    r"(?P<revision>\d{2})"    # version/revision of that release, e.g. 01
    r"(?P<suffix>[^.]*)"      # anything a subsetter appended (real ones: none, or a prefix)
    r"\.(?:h5|hdf5|he5)$"
)
# readatl06's own per-beam outputs: <granule stem>_<beam>[_<A|D>].h5 -- never taken for the granule.
PER_BEAM_SUFFIX_RE = re.compile(r"_(?P<beam>gt[123][lr])(?:_(?P<direction>[AD]))?")
# Any ICESat-2 product name, used to refuse other products by name (ATL03, ATL07-01, ...).
PRODUCT_RE = re.compile(r"(?i)(?:^|[_/])(ATL\d\d)(?:-\d\d)?_")


class PerBeamOutputError(NotATL06Error):
    """A readatl06 per-beam output (``..._gt2r_A.h5``) found among the inputs: refused by name."""

    def __init__(self, name):
        GranuleError.__init__(self, name, "a readatl06 per-beam output, not a granule")


@dataclasses.dataclass(frozen=True, order=True, slots=True)
class GranuleName:
    """The fields of a granule's file name. Ordering = acquisition time, then file name. Slots and
    interned short strings: a plan holds one per granule on every rank (10^5 on a continent)."""

    time: dt.datetime
    name: str                 # the file name (no folder), e.g. processed_ATL06_..._01.h5
    rgt: int
    cycle: int
    region: int
    release: str              # three digits as in the name, e.g. "006"
    revision: str             # two digits, e.g. "01"
    processed: bool           # NSIDC subsetter prefix

    @property
    def stem(self):
        return self.name.rsplit(".", 1)[0]

    @property
    def identity(self):
        """What makes two inputs the same granule (``processed_X`` and ``X`` are the same)."""
        return (self.time, self.rgt, self.cycle, self.region, self.release, self.revision)

    @property
    def track_key(self):
        """What one granule covers whatever its release and revision: (RGT, cycle, region)."""
        return (self.rgt, self.cycle, self.region)

    @property
    def version(self):
        """(release, revision) as numbers: the larger is the newer processing of the same data."""
        return (int(self.release), int(self.revision))


def parse_name(path):
    """Parse a path's file name; raise NotATL06Error for another product or a readatl06 per-beam
    output (PerBeamOutputError), ValueError if unparseable."""
    text = str(path)
    if "://" in text:                # a URL: its path only (a signed URL's ?query is not the name)
        text = urllib.parse.urlsplit(text).path
    name = os.path.basename(text.rstrip("/"))
    m = GRANULE_RE.match(name)
    if m is None:
        other = PRODUCT_RE.search(name)
        if other and other.group(1).upper() != "ATL06":
            raise NotATL06Error(name, f"the name says {other.group(1).upper()}")
        raise ValueError(f"{name}: file name does not follow "
                         "[processed_]ATL06_yyyymmddhhmmss_ttttccss_vvv_rr.h5")
    if PER_BEAM_SUFFIX_RE.fullmatch(m["suffix"]):
        raise PerBeamOutputError(name)
    try:
        t = m["time"]              # 14 digits (the pattern): strptime's result, 15 times as fast
        time = dt.datetime(int(t[:4]), int(t[4:6]), int(t[6:8]), int(t[8:10]), int(t[10:12]), int(t[12:14]))
    except ValueError:
        raise ValueError(f"{name}: {m['time']!r} is not a valid date-time yyyymmddhhmmss") from None
    region = int(m["region"])
    if not 1 <= region <= 14:
        raise ValueError(f"{name}: region {region} is outside 1-14")
    return GranuleName(time=time, name=name, rgt=int(m["rgt"]), cycle=int(m["cycle"]), region=region,
                       release=sys.intern(m["release"]), revision=sys.intern(m["revision"]),
                       processed=bool(m["prefix"]))


def parse_time(text, end=False):
    """ISO-8601 date or date-time, as naive UTC: a date-time with a UTC offset (``+02:00``, ``-0500``)
    is converted to UTC, one without (or with ``Z``) is UTC. A bare date as ``end`` means the whole
    day (inclusive)."""
    s = text.strip()
    s = s[:-1] + "+00:00" if s[-1:] in ("Z", "z") else s
    try:
        if len(s) == 10:
            t = dt.datetime.strptime(s, "%Y-%m-%d")
            return t + dt.timedelta(days=1) - dt.timedelta(microseconds=1) if end else t
        m = re.fullmatch(r"(.*[T ]\d\d(?::?\d\d)*(?:\.\d+)?)([+-])(\d\d):?(\d\d)", s)
        if m:                                   # +hh:mm / +hhmm (fromisoformat of Python < 3.11: only +hh:mm)
            s = f"{m[1]}{m[2]}{m[3]}:{m[4]}"
        t = dt.datetime.fromisoformat(s.replace(" ", "T"))
        if t.tzinfo is not None:
            t = t.astimezone(dt.timezone.utc).replace(tzinfo=None)
        return t
    except ValueError:
        raise UsageError(f"{text!r} is not an ISO-8601 date (2019-01-31) or date-time "
                         "(2019-01-31T12:00:00)") from None


def parse_int_list(values, what, lo=None, hi=None):
    """``["10", "11-13", "14,15"]`` -> ``{10, 11, 12, 13, 14, 15}``; range and bounds checked."""
    out = set()
    for value in values:
        for item in str(value).split(","):
            if not item:
                continue
            m = re.fullmatch(r"(\d+)(?:-(\d+))?", item.strip())
            if m is None:
                raise UsageError(f"{what}: {item!r} is neither a number nor a range like 10-12")
            a, b = int(m[1]), int(m[2] or m[1])
            if b < a:
                raise UsageError(f"{what}: range {item!r} runs backwards")
            for v in (a, b):
                if (lo is not None and v < lo) or (hi is not None and v > hi):
                    raise UsageError(f"{what}: {v} is outside {lo}-{hi}")
            out.update(range(a, b + 1))
    return out


@dataclasses.dataclass(frozen=True)
class Selection:
    """What to keep, decided from names alone. ``None`` means no constraint."""

    start: dt.datetime = None
    end: dt.datetime = None
    segments: frozenset = None
    rgts: frozenset = None
    cycles: frozenset = None
    releases: frozenset = None
    all_releases: bool = False     # keep every release/revision of a granule (default: the newest wins)

    @classmethod
    def from_args(cls, args):
        def ints(values, what, lo, hi):
            return frozenset(parse_int_list(values, what, lo, hi)) if values else None
        start = parse_time(args.start) if args.start else None
        end = parse_time(args.end, end=True) if args.end else None
        if start and end and end < start:
            raise UsageError(f"--end {args.end} is before --start {args.start}")
        releases = None
        if args.releases:
            releases = frozenset(f"{int(r):03d}" for r in parse_int_list(args.releases, "--releases", 1, 999))
        return cls(start=start, end=end,
                   segments=ints(args.segments, "--segments", 1, 14),
                   rgts=ints(args.rgts, "--rgts", 1, 1387),
                   cycles=ints(args.cycles, "--cycles", 1, 99),
                   releases=releases, all_releases=bool(getattr(args, "all_releases", False)))

    def matches(self, g):
        return ((self.start is None or g.time >= self.start)
                and (self.end is None or g.time <= self.end)
                and (self.segments is None or g.region in self.segments)
                and (self.rgts is None or g.rgt in self.rgts)
                and (self.cycles is None or g.cycle in self.cycles)
                and (self.releases is None or g.release in self.releases))

    def as_dict(self):
        def iso(t):
            return t.isoformat() if t else None

        def srt(s):
            return sorted(s) if s is not None else None
        out = {"start": iso(self.start), "end": iso(self.end), "segments": srt(self.segments),
               "rgts": srt(self.rgts), "cycles": srt(self.cycles), "releases": srt(self.releases)}
        if self.all_releases:        # only when set: the parameters of earlier runs keep their key
            out["all_releases"] = True
        return out


@dataclasses.dataclass
class Selected:
    """The outcome of selecting over listed paths."""

    granules: list          # [(GranuleName, path)] sorted by (time, name), duplicates removed
    unparsed: list          # [message] names that do not parse (reported once, skipped)
    refused: list           # [message] other products refused by name
    duplicates: list        # [message] same granule found again: which one was skipped
    excluded: int = 0       # parsed fine but outside the selection
    superseded: list = dataclasses.field(default_factory=list)   # [(old path, newer path)] not selected

    def superseded_line(self):
        """One line naming every granule a newer release or revision replaced, with the count."""
        if not self.superseded:
            return None
        pairs = ", ".join(f"{os.path.basename(old)} (by {os.path.basename(new)})" for old, new in self.superseded)
        return (f"{len(self.superseded)} granule{'s' if len(self.superseded) != 1 else ''} superseded by a newer "
                f"release or revision, not selected (--all-releases keeps them): {pairs}")

    def messages(self):
        """Every line about names: unparsed, refused, duplicates, superseded (in that order)."""
        out = [f"skipped, name does not parse: {m}" for m in self.unparsed]
        out += [f"refused: {m}" for m in self.refused] + list(self.duplicates)
        line = self.superseded_line()
        return out + ([line] if line else [])


def newest_releases(granules):
    """``[(GranuleName, path)]`` -> (kept, superseded): per (RGT, cycle, region) only the highest
    release, then revision, is kept (order preserved); ``superseded`` = ``[(old path, newer path)]``."""
    newest = {}
    for g, path in granules:
        best = newest.get(g.track_key)
        if best is None or g.version > best[0].version:
            newest[g.track_key] = (g, path)
    kept, superseded = [], []
    for g, path in granules:
        best = newest[g.track_key]
        if g.version < best[0].version:
            superseded.append((path, best[1]))
        else:
            kept.append((g, path))
    return kept, superseded


def select(paths, selection=Selection()):
    """Parse every path's name, keep those ``selection`` matches, drop duplicates (first in sorted
    order wins) and, unless ``selection.all_releases``, granules a newer release or revision of the
    same (RGT, cycle, region) supersedes."""
    parsed, unparsed, refused, excluded = [], [], [], 0
    for path in dict.fromkeys(str(p) for p in paths):
        try:
            g = parse_name(path)
        except NotATL06Error as exc:
            refused.append(str(exc))
            continue
        except ValueError as exc:
            unparsed.append(str(exc))
            continue
        if selection.matches(g):
            parsed.append((g, path))
        else:
            excluded += 1
    parsed.sort(key=lambda gp: (gp[0].time, gp[0].name, gp[1]))
    kept, seen, duplicates = [], {}, []
    for g, path in parsed:
        first = seen.get(g.identity)
        if first is not None:
            duplicates.append(f"duplicate selection: skipped {redact(path)} (same granule as {redact(first)})")
            continue
        seen[g.identity] = path
        kept.append((g, path))
    superseded = []
    if not selection.all_releases:
        kept, superseded = newest_releases(kept)
    return Selected(kept, unparsed, refused, duplicates, excluded, superseded)
