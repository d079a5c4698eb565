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
