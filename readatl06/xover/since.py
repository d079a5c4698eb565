"""Crossovers of what is new (``xover --since T [--append]``, docs/crossovers.md): which granules
are new, which lines are theirs, and how an existing crossover table takes the new rows.

A granule is *new* when its acquisition time (in its file name) is at or after T, or when it
replaces, by another release or revision, a granule whose crossings the appended table holds.
A line is new when its track id ``orbit`` is of a new granule: ``orbit // 100`` is the granule
(cycle, RGT, region, release, revision) and ``orbit // 10**7`` what it covers (cycle, RGT, region),
see docs/output.md. Pure numpy; no MPI.

``--append``: the table keeps its rows whose two tracks are old granules the product still holds,
takes every row with a new track from this run (so no crossing is there twice, and a granule
superseded since is gone) and is sorted as a full run sorts: the same rows as a full computation.
"""
import datetime as dt

import numpy as np

from readatl06.atl06.schema import BEAMS
from readatl06.atl06.track import orbit_id
from readatl06.errors import UsageError

GRANULE = 100              # orbit // GRANULE: cycle, RGT, region, release, revision
COVERS = 10 ** 7           # orbit // COVERS: cycle, RGT, region (one granule whatever its release)
CHECKED = ("crs_rule", "max_gap", "dt_max", "parameters_key")   # what an appended table must share


def granule_key(g):
    """The ``orbit // GRANULE`` of a granule's tracks (``g``: a GranuleName)."""
    return orbit_id(g.cycle, g.rgt, g.region, int(g.release), int(g.revision), 0, 0) // GRANULE


def held_keys(granules):
    """Sorted keys of every granule of the product (``granules``: GranuleNames)."""
    return np.unique(np.array([granule_key(g) for g in granules], np.int64))


def new_granules(granules, since, table=None):
    """``(new, replacing)``: sorted keys of the granules at or after ``since`` (every one for None)
    or replacing another release/revision of a granule in ``table`` (its columns), and how many
    were new only by replacing."""
    held = held_keys(granules)
    new = {granule_key(g) for g in granules if since is None or g.time >= since}
    replacing = 0
    if table is not None:
        orbits = np.unique(np.concatenate([table["orbit_1"], table["orbit_2"]]) // GRANULE)
        gone = {int(k) // (COVERS // GRANULE) for k in orbits[~np.isin(orbits, held)]}
        for g in granules:
            k = granule_key(g)
            if k // (COVERS // GRANULE) in gone and k not in new:
                new.add(k)
                replacing += 1
    return np.array(sorted(new), np.int64), replacing


def is_new(keys):
    """A function of lines (``LINE_DTYPE`` rows): True where the line's track is of a granule in ``keys``."""
    def new(lines):
        return np.isin(lines["orbit"] // GRANULE, keys)
    return new


def since_time(text):
    """``--since T`` (ISO date or date-time, an offset converted to UTC) as naive UTC."""
    from readatl06.atl06.names import parse_time
    try:
        return parse_time(text)
    except UsageError as exc:
        raise UsageError(f"xover --since {exc}") from None


def check_table(path, attrs, cols, expect, held):
    """UsageError (one line naming ``path``) unless the table was made with the ``expect``ed
    options (:data:`CHECKED`) from this product: every (cycle, RGT, region) it crosses is one of
    the product's granules (``held``: their keys)."""
    for key in CHECKED:
        have, want = attrs.get(key), expect.get(key)
        if key == "crs_rule" and have is None:
            raise UsageError(f"xover --append: {path}: has no crs_rule (made by an earlier readatl06); "
                             "expected a table made with --append in mind: run once without --append")
        if have != want and not (isinstance(want, float) and have is not None and float(have) == want):
            raise UsageError(f"xover --append: {path}: was made with {key} {have}; this run has {want} "
                             "(recompute it without --append, or use the same options)")
    covers = np.unique(np.concatenate([cols["orbit_1"], cols["orbit_2"]]) // COVERS)
    foreign = covers[~np.isin(covers, np.unique(held // (COVERS // GRANULE)))]
    if foreign.size:
        c, rest = divmod(int(foreign[0]), 10 ** 6)
        rgt, region = divmod(rest, 100)
        raise UsageError(f"xover --append: {path}: crosses {foreign.size} granules this product does not hold "
                         f"(e.g. cycle {c} RGT {rgt:04d} region {region:02d}); expected a table of this product")


def table_columns(cols):
    """A table read back (:func:`readatl06.xover.write.read`: beams as names) in the columns a run
    makes (beams as codes 1..6)."""
    codes = {name: k + 1 for k, name in enumerate(BEAMS)}
    out = dict(cols)
    for n in ("beam_1", "beam_2"):
        out[n] = np.array([codes[b] for b in cols[n]], np.int8).reshape(-1)
    return out


def append(table, cols, new, held):
    """The table's rows between old granules the product holds, then ``cols`` (this run's rows)."""
    g1, g2 = (table[n] // GRANULE for n in ("orbit_1", "orbit_2"))
    keep = np.isin(g1, held) & np.isin(g2, held) & ~np.isin(g1, new) & ~np.isin(g2, new)
    return {n: np.concatenate([np.asarray(table[n])[keep].astype(cols[n].dtype), cols[n]]) for n in cols}, \
        int(np.count_nonzero(keep))


def since_of(table_since, since):
    """The ``since`` of the appended table: the earlier of the two (None, a full table: None)."""
    if table_since is None or since is None:
        return None
    return min(dt.datetime.fromisoformat(table_since), since).isoformat()
