"""Data for ``readatl06 plot``: find and read per-beam files, merged files, raw granules (a run's
manifest is read in :mod:`.summary`).

No matplotlib here. Every reader returns :class:`TrackView` objects (what a figure needs of a track) (one beam, one direction, one
granule, arrays in along-track order) so the drawing code never needs to know where they came from.
"""
import glob
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from readatl06.errors import UsageError
from readatl06.hdf5.attrs import text
from readatl06.outputs.outdir import list_beam_files, read_outdir, verify

log = logging.getLogger("readatl06.plot")

BEAMS = ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")
DIRECTIONS = ("ascending", "descending")
MANIFEST_NAME = "readatl06-manifest.jsonl"
# reduced variable -> raw ATL06 variable under gtx/land_ice_segments/
RAW_NAMES = {"lon": "longitude", "lat": "latitude", "h_elv": "h_li", "s_elv": "h_li_sigma",
             "segment_id": "segment_id"}


@dataclass
class TrackView:
    """What a figure draws of one beam × direction of one granule (the data type is
    :class:`readatl06.atl06.track.Track`). ``kind``: ``reduced`` / ``merged`` (after) or ``raw`` (before)."""
    granule: str
    beam: str
    direction: str
    strength: str
    kind: str
    source: str
    lon: np.ndarray
    lat: np.ndarray
    h: np.ndarray
    s: Optional[np.ndarray] = None
    segment_id: Optional[np.ndarray] = None
    h_units: str = "m"
    parameters: dict = field(default_factory=dict)

    @property
    def size(self):
        return int(self.h.size)


def fill_value(attrs):
    """``_FillValue`` as a scalar (ATL06 stores a scalar in 001/006 and a 1-element array in 003)."""
    v = attrs.get("_FillValue")
    if v is None:
        return None
    v = np.asarray(v)
    return v.ravel()[0] if v.size else None


def parse_parameters(value):
    """The ``parameters`` attribute (a JSON string) as a dict; {} when absent or unreadable."""
    s = text(value)
    if not s:
        return {}
    try:
        out = json.loads(s)
    except json.JSONDecodeError:
        log.warning("plot: ignoring a 'parameters' attribute that is not JSON: %.60s", s)
        return {}
    return out if isinstance(out, dict) else {}


def granule_stem(name):
    """``processed_ATL06_2019..._01.h5`` -> ``ATL06_2019..._01`` (the granule's identity, no folder)."""
    base = os.path.basename(str(name))
    if base.endswith(".h5"):
        base = base[:-3]
    return base[len("processed_"):] if base.startswith("processed_") else base


def _read(ds, fill_to_nan=False):
    a = ds[()]
    if fill_to_nan and a.dtype.kind == "f":
        fv = fill_value(ds.attrs)
        a = a.astype(np.float64 if a.dtype == np.float64 else np.float32, copy=False)
        bad = ~np.isfinite(a)
        if fv is not None:
            bad |= a == np.asarray(fv, a.dtype)
        if bad.any():
            a = a.copy()
            a[bad] = np.nan
    return a


# ---------------------------------------------------------------- what is this file?
def check_parts(h5, path):
    """The parts of an appended product all present (readatl06.outputs.merged)."""
    from readatl06.outputs.merged import check_parts as check
    check(h5, path)


def classify(h5):
    """``beamfile`` | ``merged`` | ``raw`` | None for an open h5py.File."""
    if "h_elv" in h5 and "lat" in h5 and "lon" in h5:
        return "beamfile"
    if "granules" in h5 and any(b in h5 and any(d in h5[b] for d in DIRECTIONS) for b in BEAMS):
        return "merged"
    if any(b in h5 and "land_ice_segments" in h5[b] for b in BEAMS):
        return "raw"
    return None


def _outdir_files(folder):
    """The per-beam files of an OUTDIR that its records vouch for (every parameter set; without a
    manifest every one, readatl06.outputs.outdir.read_outdir), each checked against its recorded
    checksum: what is left out is logged, one line each."""
    if not list_beam_files(folder).sizes:
        return []
    view = read_outdir(folder, any_params=True)
    for note in view.notes:
        log.warning("plot: %s", note)
    damaged = verify(view)
    for _, line in damaged:
        log.warning("plot: skipped %s", line)
    bad = {p for p, _ in damaged}
    return [p for p in view.files if p not in bad]


def expand_paths(paths):
    """PATHs -> HDF5 files. A folder gives its per-beam files (``*_gtNx_A|D.h5``), or, when it holds
    none, its other ``*.h5`` files (merged files, raw granules). A quoted glob is expanded."""
    out = []
    for p in paths:
        p = os.fspath(p)
        if os.path.isdir(p):
            found = _outdir_files(p)
            if not found:
                found = sorted(glob.glob(os.path.join(glob.escape(p), "*.h5")))   # a folder name is no pattern
            if not found:
                raise UsageError(f"plot: {p}: no .h5 files in this folder")
            out.extend(found)
        elif os.path.exists(p):
            out.append(p)
        elif glob.has_magic(p) and glob.glob(p):
            out.extend(sorted(glob.glob(p)))
        else:
            raise UsageError(f"plot: {p}: no such file or folder")
    seen, unique = set(), []
    for p in out:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


# ---------------------------------------------------------------- readers
def _wanted(granule, beam, granules, beams):
    if beams and beam not in beams:
        return False
    return not granules or granule_stem(granule) in granules


def _read_beamfile(h5, path, extra, granules, beams):
    a = h5.attrs
    granule = text(a.get("granule")) or os.path.basename(path).rsplit("_gt", 1)[0] + ".h5"
    name = os.path.basename(path)
    beam = text(a.get("beam")) or name[-10:-6]
    direction = text(a.get("direction"))
    if direction not in DIRECTIONS:
        direction = "descending" if name.endswith("_D.h5") else "ascending"
    if not _wanted(granule, beam, granules, beams):
        return []
    t = TrackView(granule=granule, beam=beam, direction=direction,
              strength=text(a.get("beam_strength")) or "unknown", kind="reduced", source=path,
              lon=_read(h5["lon"]), lat=_read(h5["lat"]), h=_read(h5["h_elv"], True),
              h_units=text(h5["h_elv"].attrs.get("units")) or "m",
              parameters=parse_parameters(a.get("parameters")))
    if extra:
        t.s = _read(h5["s_elv"], True) if "s_elv" in h5 else None
        t.segment_id = _read(h5["segment_id"]) if "segment_id" in h5 else None
    return [t]


def _merged_strength(h5, grp, beam, gidx):
    """Strength for merged points: a group attribute if the writer left one, else from a per-granule
    ``/granules/sc_orient`` (0 backward: left beams strong; 1 forward: right beams strong)."""
    for obj in (grp, grp.parent):
        s = text(obj.attrs.get("beam_strength"))
        if s in ("strong", "weak"):
            return s
    g = h5["granules"]
    if "sc_orient" in g and gidx is not None:
        orient = int(np.asarray(g["sc_orient"][()])[gidx])
        if orient in (0, 1):
            return "strong" if beam.endswith("r" if orient == 1 else "l") else "weak"
    return "unknown"


def _read_merged(h5, path, extra, granules, beams):
    from readatl06.hdf5.attrs import granule_names as stored_names
    names = stored_names(h5["granules/name"], path)
    params = parse_parameters(h5.attrs.get("parameters"))
    want_rows = [i for i, n in enumerate(names) if not granules or granule_stem(n) in granules]
    out = []
    for beam in BEAMS:
        if beam not in h5 or (beams and beam not in beams):
            continue
        for direction in DIRECTIONS:
            if direction not in h5[beam] or "h_elv" not in h5[beam][direction]:
                continue
            grp = h5[beam][direction]
            gi = np.asarray(grp["granule_index"][()]) if "granule_index" in grp else np.zeros(
                grp["h_elv"].shape[0], np.int32)
            cols = {"lon": _read(grp["lon"]), "lat": _read(grp["lat"]), "h": _read(grp["h_elv"], True)}
            if extra:
                cols["s"] = _read(grp["s_elv"], True) if "s_elv" in grp else None
                cols["segment_id"] = _read(grp["segment_id"]) if "segment_id" in grp else None
            units = text(grp["h_elv"].attrs.get("units")) or "m"
            # split into one TrackView per granule (rows are contiguous per granule, in order)
            for row in np.unique(gi):
                if row not in want_rows:
                    continue
                sel = gi == row
                kw = {k: (v[sel] if v is not None else None) for k, v in cols.items()}
                out.append(TrackView(granule=names[row] if row < len(names) else f"granule {row}",
                                 beam=beam, direction=direction,
                                 strength=_merged_strength(h5, grp, beam, int(row)), kind="merged",
                                 source=path, h_units=units, parameters=params, **kw))
    return out


def _read_raw(h5, path, extra, granules, beams):
    from readatl06.reader.checks import check_granule, nonfinite_mask
    from readatl06.atl06.track import DESCENDING, directions
    granule = os.path.basename(path)
    if not _wanted(granule, "", granules, None):
        return []
    wanted = [b for b in BEAMS if not beams or b in beams]
    # the reducer's checks before reading (GranuleError: sizes, types, lengths of what is read here)
    read = ("latitude", "longitude", "h_li", "delta_time") + (("h_li_sigma", "segment_id") if extra else ())
    check = check_granule(h5, granule, wanted, read)
    out = []
    for beam in wanted:
        if beam not in h5 or "land_ice_segments" not in h5[beam]:
            continue
        g = h5[beam]["land_ice_segments"]
        if "h_li" not in g or "latitude" not in g or "longitude" not in g:
            continue
        h = g["h_li"][()]
        keep = np.isfinite(h)
        fv = fill_value(g["h_li"].attrs)
        if fv is not None:
            keep &= h != np.asarray(fv, h.dtype)
        lat = g["latitude"][()]
        t = g["delta_time"][()] if "delta_time" in g else np.arange(lat.size, dtype=np.float64)
        keep &= ~nonfinite_mask(lat, g["longitude"][()], t)
        if not keep.any():
            continue
        d = directions(lat[keep], t[keep])
        cols = {"lon": g["longitude"][()][keep], "lat": lat[keep], "h": h[keep]}
        if extra:
            cols["s"] = _read(g["h_li_sigma"], True)[keep] if "h_li_sigma" in g else None
            cols["segment_id"] = g["segment_id"][()][keep] if "segment_id" in g else None
        strength = check.beam_info(beam, dict(h5[beam].attrs))[1]
        units = {"meters": "m"}.get(text(g["h_li"].attrs.get("units")), "m")
        for code, direction in ((0, "ascending"), (DESCENDING, "descending")):
            sel = d == code
            if sel.any():
                kw = {k: (v[sel] if v is not None else None) for k, v in cols.items()}
                out.append(TrackView(granule=granule, beam=beam, direction=direction, strength=strength,
                                 kind="raw", source=path, h_units=units, **kw))
    return out


_READERS = {"beamfile": _read_beamfile, "merged": _read_merged, "raw": _read_raw}


def _finite(t):
    """The track without points whose h, lon or lat is NaN/inf (None when nothing is left)."""
    h = np.asarray(t.h)
    if h.dtype.kind not in "biuf":
        raise ValueError(f"h_elv is stored as {h.dtype.str}, not numbers")
    ok = np.isfinite(h) & np.isfinite(t.lon) & np.isfinite(t.lat)
    if not ok.all():
        for name in ("lon", "lat", "h", "s", "segment_id"):
            v = getattr(t, name)
            if v is not None:
                setattr(t, name, v[ok])
    return t if t.size else None


def load_tracks(paths, extra=False, granules=None, beams=None, warn=True):
    """Tracks from PATHs (see :func:`expand_paths`). ``extra`` also reads s_elv and segment_id.

    ``granules``: a set of granule stems to keep (None: all); ``beams``: beam names to keep.
    Returns ``(tracks, skipped)``; ``skipped`` lists ``"path: reason"`` for files left out (files that
    are not regular files, do not open, or hold content the sanity checks refuse); ``warn`` logs them.
    """
    import h5py
    from readatl06.errors import GranuleError
    tracks, skipped = [], []
    for path in expand_paths(paths):
        if not os.path.isfile(path):              # a FIFO would block open() forever
            skipped.append(f"{path}: not a regular file, not read")
            continue
        try:
            with h5py.File(path, "r") as h5:
                kind = classify(h5)
                if kind is None:
                    skipped.append(f"{path}: not a readatl06 output or an ATL06 granule with land_ice_segments")
                    continue
                if kind == "merged":
                    check_parts(h5, path)        # a missing part refuses the plot (BadFileError), one line
                found = [_finite(t) for t in _READERS[kind](h5, path, extra, granules, beams)]
        except GranuleError as exc:
            skipped.append(f"{path}: {exc.cause}")
            continue
        except (OSError, KeyError, TypeError, ValueError) as exc:
            skipped.append(f"{path}: cannot be read ({exc})")
            continue
        tracks.extend(t for t in found if t is not None)
    if warn:
        for s in skipped:
            log.warning("plot: skipped %s", s)
    return tracks, skipped


def require_tracks(tracks, skipped, paths):
    """Log the skipped files when something is left to draw; otherwise raise one line: ValueError
    (exit 1) naming why the files were skipped, or UsageError when there were simply no points."""
    if tracks:
        for s in skipped:
            log.warning("plot: skipped %s", s)
        return tracks
    if skipped:
        more = f" (and {len(skipped) - 1} more skipped)" if len(skipped) > 1 else ""
        raise ValueError(f"nothing to draw: {skipped[0]}{more}")
    raise UsageError(f"plot: no points in {' '.join(map(str, paths))}")


def granule_names(paths):
    """Sorted granule stems found in PATHs; reads names only (attributes, /granules/name)."""
    import h5py
    names = set()
    for path in expand_paths(paths):
        try:
            with h5py.File(path, "r") as h5:
                kind = classify(h5)
                if kind == "beamfile":
                    names.add(granule_stem(text(h5.attrs.get("granule")) or
                                           os.path.basename(path).rsplit("_gt", 1)[0]))
                elif kind == "merged":
                    from readatl06.hdf5.attrs import granule_names as stored_names
                    names.update(granule_stem(n) for n in stored_names(h5["granules/name"], path))
                elif kind == "raw":
                    names.add(granule_stem(path))
        except (OSError, KeyError):
            continue
    return sorted(names, key=granule_time_key)


def granule_time_key(stem):
    """Sort key of a granule stem: its acquisition time (the field after ``ATL06_``), then the stem."""
    parts = granule_stem(stem).split("_")
    return (parts[1] if len(parts) > 1 else "", stem)


def match_granule(names, wanted):
    """The one name in ``names`` that ``wanted`` designates (full name, stem or a unique substring)."""
    w = granule_stem(wanted)
    if w in names:
        return w
    hits = [n for n in names if w in n]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise UsageError(f"plot: --granule {wanted}: not among the {len(names)} granule(s) found "
                         f"({', '.join(names[:5])}{', ...' if len(names) > 5 else ''})")
    raise UsageError(f"plot: --granule {wanted}: matches {len(hits)} granules ({', '.join(hits[:5])}); "
                     "give more of the name")
