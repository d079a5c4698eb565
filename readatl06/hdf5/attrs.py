"""Reading HDF5 attribute values written by any writer (h5py, netCDF-C, NSIDC's tools, xarray)."""
import numpy as np


def text(value):
    """An attribute (str, bytes, numpy.bytes_, a 1-element array of either) as a stripped str, or
    None when absent or empty."""
    if value is None:
        return None
    if isinstance(value, np.ndarray):
        if value.size == 0:
            return None
        value = value.ravel()[0]
    if isinstance(value, (bytes, np.bytes_)):
        value = bytes(value).decode("utf-8", "replace")
    return str(value).strip("\x00 ").strip()


def decoded(value):
    """An attribute as h5py read it, with bytes decoded to str (numbers and arrays kept as they are)."""
    return bytes(value).decode("utf-8", "replace") if isinstance(value, (bytes, np.bytes_)) else value


def granule_names(dset, where):
    """The granule file names in ``/granules/name`` (the h5py Dataset ``dset``), whatever their
    string storage: fixed-length or variable-length strings (one per row), or a character array
    (``|S1``, one row per name, as netCDF and xarray store ``char`` names: joined along the last
    axis). Anything else is a UsageError naming ``where``."""
    from readatl06.errors import UsageError
    values = dset[()]
    kind = values.dtype.kind
    if kind in "SU" and values.ndim == 2 and values.dtype.itemsize == (1 if kind == "S" else 4):
        values = np.array([b"".join(bytes(c) for c in row) if kind == "S" else "".join(row) for row in values],
                          dtype=object)
    elif values.ndim == 0 and kind in "SUO":
        values = np.array([values[()]], dtype=object)
    if values.ndim != 1 or values.dtype.kind not in "SUO" or \
            any(not isinstance(v, (bytes, str, np.bytes_, np.str_)) for v in values):
        raise UsageError(f"{where}: /granules/name is {values.dtype} of shape {dset.shape}; expected one "
                         "string per granule (fixed-length, variable-length or a character array)")
    return [text(v) or "" for v in values]
