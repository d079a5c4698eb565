"""Checks on an open granule BEFORE any data are read (issue 16): one line per problem, naming the
variable that is actually wrong.

Fatal problems raise :class:`~readatl06.errors.GranuleError` (the granule fails, the run goes on);
harmless ones become notes. What is checked, for every variable the reduction reads:

* declared sizes the file could not hold (``shape (10**12,)`` in a 3 MB file): a contiguous dataset
  cannot be larger than the file; a chunked one cannot hold more values than its stored chunks cover,
  nor expand beyond :data:`MAX_EXPANSION` times the file size. One line instead of a MemoryError.
* types: numbers only (``h_li`` stored as ``|S12`` strings is an error naming ``h_li`` and both
  dtypes), floating point for latitude, longitude, delta_time and h_li.
* shapes and lengths: 1-D, and of one length per beam; a variable whose length differs from the
  majority of the beam's variables is named (truncating ``latitude`` names ``latitude``).
* granule scalars: a missing or unusable ``ancillary_data/atlas_sdp_gps_epoch`` (note: the standard
  epoch used), ``orbit_info/sc_orient`` outside 0 backward / 1 forward / 2 transition (note: beam
  strength unknown).

:func:`invalid_points` flags coordinates and times that are NaN, ±inf or out of range, which the
reducer removes, counts (``removed["invalid"]``) and notes per beam. Pure: nothing here writes, and nothing reads more than a few scalars.
"""
import collections
import dataclasses
import math
import os
from typing import Optional

import numpy as np

from readatl06.atl06.beams import beam_info as _beam_info
from readatl06.errors import GranuleError
from readatl06.atl06.schema import ATLAS_SDP_GPS_EPOCH, BEAMS, CORE_SOURCES, GPS_EPOCH_PATH, LIS, OUTPUT_VARS

SC_ORIENT_PATH = "/orbit_info/sc_orient"
SC_ORIENT_MEANING = {0: "backward", 1: "forward", 2: "transition"}
# deflate cannot expand data more than ~1032:1; a chunked dataset declaring more than this many times
# the file's size cannot be what the file holds, whatever its chunks say
MAX_EXPANSION = 2048
# The dtypes of real ATL06 (schema.json) for the variables of the default output table.
EXPECTED_DTYPE = {
    "latitude": "float64", "longitude": "float64", "delta_time": "float64", "h_li": "float32",
    "h_li_sigma": "float32", "atl06_quality_summary": "int8", "segment_id": "int32",
    "fit_statistics/h_robust_sprd": "float32", "fit_statistics/signal_selection_source": "int8",
    "fit_statistics/snr_significance": "float32", "geophysical/bsnow_conf": "int8",
    "geophysical/dac": "float32", "geophysical/tide_earth": "float32", "geophysical/tide_load": "float32",
    "geophysical/tide_ocean": "float32", "geophysical/tide_pole": "float32",
    "/orbit_info/rgt": "int16", "/orbit_info/cycle_number": "int8", "/orbit_info/sc_orient": "int8",
    GPS_EPOCH_PATH: "float64",
}
FLOAT_ONLY = ("latitude", "longitude", "delta_time", "h_li")   # positions, times, the height itself
NUMERIC_KINDS = "biuf"


def default_sources():
    """Every variable the default reduction reads: CORE_SOURCES plus the output table's sources."""
    out = list(CORE_SOURCES)
    out += [v.source for v in OUTPUT_VARS if v.source and v.source not in out]
    return tuple(out)


@dataclasses.dataclass
class GranuleCheck:
    """What :func:`check_granule` found: notes for the granule's record and the values to use."""

    notes: list                        # one line each, without the granule name (the record has it)
    epoch: float                       # atlas_sdp_gps_epoch to use (the granule's, else the standard)
    sc_orient: Optional[int] = None    # 0/1/2 from orbit_info; None when missing or out of range
    orient_valid: bool = True          # False: sc_orient out of range -> every beam's strength "unknown"
    lengths: dict = dataclasses.field(default_factory=dict)   # beam -> segments (checked beams)

    def beam_info(self, beam, group_attrs=None):
        """``(spot, strength)`` as :func:`readatl06.atl06.beams.beam_info`, but ``(0, "unknown")`` when
        sc_orient is out of range (a corrupt orientation must not lend a strength)."""
        if not self.orient_valid:
            return 0, "unknown"
        return _beam_info(beam, self.sc_orient, group_attrs)


# ---------------------------------------------------------------- small helpers
def _human(nbytes):
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if nbytes < 1000 or unit == "PB":
            return f"{nbytes:.0f} {unit}" if unit == "bytes" else f"{nbytes:.1f} {unit}"
        nbytes /= 1000.0


def _describe(dtype):
    """``|S12 (byte strings)``, ``float32`` ..."""
    dtype = np.dtype(dtype)
    kind = {"S": "byte strings", "U": "text strings", "O": "variable-length strings or objects",
            "V": "compound or opaque records", "c": "complex numbers", "M": "date-times",
            "m": "time deltas"}.get(dtype.kind)
    return f"{dtype.str} ({kind})" if kind else dtype.name


def file_size(h5):
    """Bytes of the open file (HDF5's own view, else the file system's)."""
    try:
        return int(h5.id.get_filesize())
    except (AttributeError, OSError, ValueError):
        return os.path.getsize(h5.filename)


def _label(source):
    """How messages name a variable: ``land_ice_segments/h_li`` or ``orbit_info/sc_orient``."""
    if source.startswith("/gtx/"):
        return source[len("/gtx/"):]              # the message says which beam
    if source.startswith("/"):
        return source.lstrip("/")
    return f"{LIS}/{source}"


def _dataset(h5, path, name, label):
    """The h5py Dataset at ``path``, None when absent; GranuleError for a group or link in its place.
    Opened with one low-level call (a beam's ~20 checks cost a few hundred microseconds, not ms)."""
    import h5py
    try:
        oid = h5py.h5o.open(h5.id, path.encode())
    except KeyError:
        return None
    except (OSError, RuntimeError, ValueError) as exc:
        raise GranuleError(name, f"{label} cannot be opened ({exc})") from exc
    if not isinstance(oid, h5py.h5d.DatasetID):
        kind = "group" if isinstance(oid, h5py.h5g.GroupID) else "datatype"
        raise GranuleError(name, f"{label} is a {kind}, expected a dataset")
    return h5py.Dataset(oid)


# ---------------------------------------------------------------- one dataset
def declared_size_problem(dset, size_of_file):
    """Why ``dset``'s declared size cannot be what the file holds, as words, or None when plausible."""
    shape = dset.shape
    if shape is None:
        return "has an empty (null) dataspace, no values"
    n = math.prod(shape)
    nbytes = n * dset.dtype.itemsize
    if nbytes <= size_of_file:
        return None
    what = f"declares {n:,} values of {dset.dtype.name} ({_human(nbytes)}), but the file is {_human(size_of_file)}"
    chunks = dset.chunks
    if chunks is None:
        return f"{what}: contiguous data cannot be larger than the file"
    try:
        stored = int(dset.id.get_num_chunks())
    except (AttributeError, OSError, ValueError, RuntimeError):
        stored = None
    per_chunk = math.prod(chunks)
    if stored is not None and stored * per_chunk < n:
        return (f"{what} and stores only {stored:,} of its chunks ({per_chunk:,} values each): "
                "the rest was never written")
    if nbytes > MAX_EXPANSION * size_of_file:
        return f"{what}: more than {MAX_EXPANSION} times the file, beyond what compression can hold"
    return None


def check_dataset(dset, name, label, size_of_file, expected=None, float_only=False):
    """One dataset's declared size and type; GranuleError naming ``label`` when wrong."""
    problem = declared_size_problem(dset, size_of_file)
    if problem:
        raise GranuleError(name, f"{label} {problem}")
    kind = dset.dtype.kind
    want = expected or ("a floating-point number" if float_only else "a number")
    if kind not in NUMERIC_KINDS or (float_only and kind != "f"):
        raise GranuleError(name, f"{label} is stored as {_describe(dset.dtype)}, expected {want}")


# ---------------------------------------------------------------- one beam
def check_beam(h5, name, beam, sources=None, size_of_file=None, opened=None):
    """Check a beam's variables (sources relative to land_ice_segments, or absolute ``/gtx/...``)
    before reading: sizes, types, 1-D shapes, one length. Returns the beam's number of segments
    (None when it reads no variable); raises GranuleError naming the variable that is wrong.
    Variables the beam lacks are left to the reader (which names them as missing). ``opened(source)``:
    the reader's own open Dataset of a source (or None), instead of opening each one again."""
    sources = default_sources() if sources is None else tuple(sources)
    size_of_file = file_size(h5) if size_of_file is None else size_of_file
    lengths = {}
    for source in dict.fromkeys(sources):
        if not source or (source.startswith("/") and not source.startswith("/gtx/")):
            continue                              # derived (orbit id) or granule-wide: check_granule's
        path = source.replace("/gtx/", f"/{beam}/") if source.startswith("/") else f"/{beam}/{LIS}/{source}"
        label = f"beam {beam}: {_label(source)}"
        d = _dataset(h5, path, name, label) if opened is None else opened(source)
        if d is None:
            continue
        check_dataset(d, name, label, size_of_file, EXPECTED_DTYPE.get(source), source in FLOAT_ONLY)
        if d.ndim != 1:
            raise GranuleError(name, f"{label} has shape {d.shape}, expected 1-D (one value per segment)")
        lengths[_label(source)] = d.shape[0]
    return _one_length(name, beam, lengths)


def _one_length(name, beam, lengths):
    """The beam's length by majority; GranuleError naming the variables that differ from it."""
    if not lengths:
        return None
    counts = collections.Counter(lengths.values())
    (common, votes), *rest = counts.most_common()
    if not rest:
        return common
    if rest[0][1] == votes:                        # no majority: list every group
        groups = collections.defaultdict(list)
        for label, n in lengths.items():
            groups[n].append(label)
        parts = "; ".join(f"{', '.join(v)}: {n:,}" for n, v in sorted(groups.items()))
        raise GranuleError(name, f"beam {beam}: the variables disagree in length with no majority ({parts})")
    odd = [(label, n) for label, n in lengths.items() if n != common]
    which = ", ".join(f"{label} has {n:,} values" for label, n in odd)
    raise GranuleError(name, f"beam {beam}: {which}; the {votes} other variables read have {common:,} "
                             "(one value per segment)")


# ---------------------------------------------------------------- granule scalars
def _scalar_values(h5, name, path, size_of_file):
    """(dataset, flattened values) of a small granule-wide dataset, or (None, None) when absent."""
    label = path.lstrip("/")
    d = _dataset(h5, path, name, label)
    if d is None:
        return None, None
    problem = declared_size_problem(d, size_of_file)
    if problem:
        raise GranuleError(name, f"{label} {problem}")
    try:
        return d, np.asarray(d[()]).ravel()
    except (OSError, TypeError, ValueError) as exc:
        raise GranuleError(name, f"{label} cannot be read ({exc})") from exc


def _epoch(h5, name, size_of_file, notes):
    d, values = _scalar_values(h5, name, GPS_EPOCH_PATH, size_of_file)
    std = f"the standard {ATLAS_SDP_GPS_EPOCH} s (GPS time of 2018-01-01T00:00:00Z) used"
    if d is None:
        notes.append(f"missing atlas_sdp_gps_epoch ({GPS_EPOCH_PATH.lstrip('/')}): {std}")
        return ATLAS_SDP_GPS_EPOCH
    label = GPS_EPOCH_PATH.lstrip("/")
    if d.dtype.kind not in NUMERIC_KINDS or values.size == 0:
        found = "empty" if values.size == 0 else f"stored as {_describe(d.dtype)}"
        notes.append(f"{label} is {found}, not a number: {std}")
        return ATLAS_SDP_GPS_EPOCH
    value = float(values[0])
    if not math.isfinite(value):
        notes.append(f"{label} is {value}, not a GPS time: {std}")
        return ATLAS_SDP_GPS_EPOCH
    if value != ATLAS_SDP_GPS_EPOCH:
        notes.append(f"{label} is {value!r} s, not the standard {ATLAS_SDP_GPS_EPOCH} s; the granule's value used")
    return value


def _sc_orient(h5, name, size_of_file, notes):
    """(sc_orient or None, valid?)"""
    d, values = _scalar_values(h5, name, SC_ORIENT_PATH, size_of_file)
    if d is None:
        return None, True                          # NSIDC subsets: strength from the beam groups
    label = SC_ORIENT_PATH.lstrip("/")
    valid = "outside 0 (backward), 1 (forward), 2 (transition): beam strength unknown"
    if d.dtype.kind not in NUMERIC_KINDS:
        notes.append(f"{label} is stored as {_describe(d.dtype)}, {valid}")
        return None, False
    if values.size == 0:
        notes.append(f"{label} is empty: beam strength from the beam groups' attributes")
        return None, True
    bad = [v for v in values.tolist() if not (float(v).is_integer() and int(v) in SC_ORIENT_MEANING)]
    if bad:
        shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in bad[:3])
        notes.append(f"{label} is {shown}, {valid}")
        return None, False
    distinct = list(dict.fromkeys(int(v) for v in values.tolist()))
    if len(distinct) > 1:
        notes.append(f"{label} changes within the granule ({', '.join(map(str, distinct))}): the first, "
                     f"{distinct[0]} ({SC_ORIENT_MEANING[distinct[0]]}), used for every beam")
    return distinct[0], True


# ---------------------------------------------------------------- the granule
def check_granule(h5, name, beams=BEAMS, sources=None):
    """Check an open granule before any data are read; returns a :class:`GranuleCheck` (notes, the
    epoch and sc_orient to use, each beam's length). Raises GranuleError for a problem that makes the
    granule unusable. ``beams``: beams the run reads (those absent or without land_ice_segments are
    skipped: the reducer notes them); ``sources``: the variables it reads (default
    :func:`default_sources`; relative to land_ice_segments, ``/gtx/...`` per beam, or absolute)."""
    import h5py
    sources = default_sources() if sources is None else tuple(dict.fromkeys(sources))
    size_of_file = file_size(h5)
    notes = []
    epoch = _epoch(h5, name, size_of_file, notes)
    orient, valid = _sc_orient(h5, name, size_of_file, notes)
    for source in sources:                         # granule-wide variables read (orbit_info/rgt ...)
        if source.startswith("/") and not source.startswith("/gtx/") and source not in (SC_ORIENT_PATH,
                                                                                        GPS_EPOCH_PATH):
            label = source.lstrip("/")
            d = _dataset(h5, source, name, label)
            if d is not None:
                check_dataset(d, name, label, size_of_file, EXPECTED_DTYPE.get(source))
    result = GranuleCheck(notes=notes, epoch=epoch, sc_orient=orient, orient_valid=valid)
    for beam in beams:
        group = h5.get(beam)
        if not isinstance(group, h5py.Group) or not isinstance(group.get(LIS), h5py.Group):
            continue
        n = check_beam(h5, name, beam, sources, size_of_file)
        if n is not None:
            result.lengths[beam] = n
    return result


# ---------------------------------------------------------------- per point
def nonfinite_mask(lat, lon, delta_time):
    """True where latitude, longitude or delta_time is NaN or ±inf: points the reducer drops and
    counts like fill (they can be neither placed, nor timed, nor given a direction)."""
    arrays = [np.asarray(a) for a in (lat, lon, delta_time)]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(f"nonfinite_mask: shapes differ {[a.shape for a in arrays]}")
    bad = np.zeros(arrays[0].shape, bool)
    for a in arrays:
        if a.dtype.kind in "fc":
            bad |= ~np.isfinite(a)
    return bad


def out_of_range_mask(lat, lon):
    """True where a finite latitude is outside [-90, 90] or a finite longitude outside [-180, 180]."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return (np.abs(lat) > 90.0) | (np.abs(lon) > 180.0)


# delta_time (s since 2018-01-01T00:00:00Z, the ATLAS SDP epoch) of a real ICESat-2 point: not before
# the epoch, and less than 100 years after it. Beyond that a time is not a time (the largest float64
# gave t_sec 1.8e308 and t_year inf).
DELTA_TIME_RANGE = (0.0, 100 * 365.25 * 86400.0)


def invalid_points(lat, lon, delta_time):
    """``(bad, reasons)``: ``bad`` True where a point has no usable position or time — latitude,
    longitude or delta_time NaN or ±inf, latitude outside [-90, 90], longitude outside [-180, 180],
    delta_time outside :data:`DELTA_TIME_RANGE`; ``reasons`` ``{words: count}`` for the notes (a
    point with several problems counts under each)."""
    lo, hi = DELTA_TIME_RANGE
    tests = (("latitude", lat, "NaN or ±inf", "outside -90..90", lambda a: np.abs(a) > 90.0),
             ("longitude", lon, "NaN or ±inf", "outside -180..180", lambda a: np.abs(a) > 180.0),
             ("delta_time", delta_time, "NaN or ±inf", f"outside {lo:g}..{hi:.4g} s (2018-01-01 + 100 years)",
              lambda a: (a < lo) | (a > hi)))
    arrays = [np.asarray(a) for _, a, *_ in tests]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError(f"invalid_points: shapes differ {[a.shape for a in arrays]}")
    bad = np.zeros(arrays[0].shape, bool)
    reasons = {}
    for (name, _, nonfinite, outside, out), a in zip(tests, arrays):
        a = a.astype(np.float64, copy=False)
        nf = ~np.isfinite(a)
        with np.errstate(invalid="ignore"):
            far = out(a) & ~nf
        for words, m in ((f"{name} {nonfinite}", nf), (f"{name} {outside}", far)):
            k = int(np.count_nonzero(m))
            if k:
                reasons[words] = k
                bad |= m
    return bad, reasons
