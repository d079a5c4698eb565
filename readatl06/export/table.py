"""The table that ``readatl06 export`` writes, as plan and batches both see it: the groups
(beam × direction) in stream order, the columns in table order, the epoch of the ``time`` column, and
the variables of a merged group or a per-beam file checked as columns."""
import re

import h5py
import numpy as np

from readatl06.errors import UsageError
from readatl06.atl06.schema import BEAMS, DIRECTIONS, OUTPUT_VARS
from readatl06.hdf5.attrs import text
from readatl06.hdf5.dimensions import is_dimension

GROUPS = [(b, d) for b in BEAMS for d in DIRECTIONS]
GI = "granule_index"
TIME = "time"                       # a UTC timestamp column; from the file's `time`, else from t_sec
REQUIRED = ("lon", "lat", "t_sec")
TIME_UNITS_RE = re.compile(r"^\s*seconds since (\d{4}-\d\d-\d\d)(?:[T ](\d\d:\d\d:\d\d))?\s*(?:Z|UTC|\+00:?00)?\s*$")


def table_order():
    """The per-beam files' variables (docs/output.md) in table order, ``time`` after ``t_year`` (whether or not schema lists it)."""
    names = [v.name for v in OUTPUT_VARS]
    if TIME not in names:
        names.insert(names.index("t_year") + 1, TIME)
    return names


def time_epoch(units, where):
    """POSIX seconds of the epoch of a ``seconds since <UTC date-time>`` ``units``; UsageError otherwise."""
    m = TIME_UNITS_RE.match(units or "")
    if m is None:
        raise UsageError(f"{where}: time has units {units!r}; expected 'seconds since YYYY-MM-DDThh:mm:ssZ' (UTC)")
    return float(np.datetime64(f"{m[1]}T{m[2] or '00:00:00'}", "s").astype(np.int64))


def group_variables(group, skip=()):
    """``[(name, dtype, shape, attrs)]`` of the datasets of an h5py group, ``skip`` left out, as are
    netCDF dimension scales that are not a table variable (e.g. ``obs``)."""
    table, out = set(table_order()), []
    for name, obj in group.items():
        if name in skip or not isinstance(obj, h5py.Dataset):
            continue
        if name not in table and is_dimension(obj):
            continue
        out.append((name, obj.dtype, obj.shape, obj.attrs))
    return out


def file_variables(track_file):
    """``[(name, dtype, shape, attrs)]`` of a per-beam file's variables (a ``TrackFile``)."""
    t = track_file
    return [(name, np.dtype(t.var_dtypes[name]), t.shapes[name], t.var_attrs[name]) for name in t.var_dtypes]


def variables(where, found):
    """``(n, {name: (dtype str, attrs)})`` of ``found`` (:func:`group_variables`,
    :func:`file_variables`). UsageError naming ``where`` when a required variable is missing, a
    variable is not 1-D numbers, or the lengths differ."""
    out, sizes = {}, {}
    for name, dtype, shape, attrs in found:
        if len(shape) != 1 or dtype.kind not in "biuf":
            raise UsageError(f"{where}: dataset {name} is {dtype} of shape {shape}; "
                             "expected 1-D numbers, one per point")
        sizes[name] = int(shape[0])
        keep = {k: attrs[k] for k in ("units", "long_name", "_FillValue") if k in attrs}
        out[name] = (dtype.newbyteorder("=").str,
                     {k: (text(v) if k != "_FillValue" else v) for k, v in keep.items()})
    missing = [k for k in REQUIRED if k not in out]
    if missing:
        raise UsageError(f"{where}: missing {', '.join(missing)}; expected the variables of a per-beam file (docs/output.md)")
    if len(set(sizes.values())) > 1:
        raise UsageError(f"{where}: datasets of different lengths {sizes}; expected one length")
    return sizes["lat"], out
