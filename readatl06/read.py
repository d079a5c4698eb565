"""Open one ATL06 granule once, check that it is one, and read beam arrays from it."""
import os

import h5py
import numpy as np

from readatl06.beams import beam_info
from readatl06.errors import GranuleError, NotATL06Error
from readatl06.schema import ATLAS_SDP_GPS_EPOCH, BEAMS, GPS_EPOCH_PATH, LIS


def _text(value):
    if isinstance(value, np.ndarray):
        value = value.ravel()[0] if value.size else b""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    return str(value).strip("\x00 ").strip()


def _scalar(value):
    """A scalar from an attribute or (1,)-shaped dataset value (release 003 stores 1-element arrays)."""
    arr = np.asarray(value)
    return arr.ravel()[0] if arr.size else None


def open_error(path, exc):
    """The one-line cause for an HDF5 file that does not open."""
    name = os.path.basename(path)
    msg = str(exc)
    try:
        size = os.path.getsize(path)
    except OSError:
        return GranuleError(name, f"cannot be read ({getattr(exc, 'strerror', None) or msg})")
    if size == 0:
        return GranuleError(name, "empty file (0 bytes)")
    if "truncated file" in msg:
        stored = msg.split("stored_eof = ")[-1].rstrip(")").strip() if "stored_eof" in msg else "?"
        return GranuleError(name, f"truncated HDF5 file ({size} bytes on disk, header says {stored})")
    if "signature not found" in msg:
        return GranuleError(name, f"not an HDF5 file ({size} bytes)")
    return GranuleError(name, f"HDF5 file cannot be opened: {msg}")


class Granule:
    """An open ATL06 granule. Use as a context manager; every read goes through the one handle."""

    def __init__(self, path):
        self.path = str(path)
        self.name = os.path.basename(self.path)
        try:
            self.file = h5py.File(self.path, "r")
        except (OSError, ValueError) as exc:
            raise open_error(self.path, exc) from exc
        try:
            self._check_product()
        except BaseException:
            self.file.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.file.close()

    def _check_product(self):
        f = self.file
        for key in ("short_name", "identifier_product_type"):
            if key in f.attrs:
                product = _text(f.attrs[key])
                if product and product.upper() != "ATL06":
                    raise NotATL06Error(self.name, f"its {key} attribute says {product}")
        groups = [b for b in BEAMS if isinstance(f.get(b), h5py.Group)]
        if any(LIS in f[b] for b in groups):
            return
        if any("heights" in f[b] for b in groups):
            raise NotATL06Error(self.name, "beam groups hold 'heights' (ATL03 layout), no land_ice_segments")
        if any("sea_ice_segments" in f[b] for b in groups):
            raise NotATL06Error(self.name, "beam groups hold 'sea_ice_segments' (ATL07 layout)")
        if "short_name" not in f.attrs and "identifier_product_type" not in f.attrs:
            raise NotATL06Error(self.name, "no ATL06 product attributes and no gtx/land_ice_segments group")
        # An ATL06 granule (by its attributes) whose beams are all missing: a normal, empty case.

    # --- granule-wide facts -------------------------------------------------------------
    def beams(self):
        """Beam groups present, and for each whether it has land_ice_segments."""
        return [(b, LIS in self.file[b]) for b in BEAMS if isinstance(self.file.get(b), h5py.Group)]

    def scalar(self, path, default=None):
        d = self.file.get(path)
        if not isinstance(d, h5py.Dataset):
            return default
        value = _scalar(d[()])
        return default if value is None else value

    @property
    def gps_epoch(self):
        return float(self.scalar(GPS_EPOCH_PATH, ATLAS_SDP_GPS_EPOCH))

    @property
    def sc_orient(self):
        v = self.scalar("/orbit_info/sc_orient")
        return None if v is None else int(v)

    def beam_info(self, beam):
        return beam_info(beam, self.sc_orient, dict(self.file[beam].attrs))

    # --- per-beam variables -----------------------------------------------------------------
    def dataset(self, beam, source):
        """The h5py dataset for an OutVar source (relative to land_ice_segments, or absolute), or None."""
        path = source.replace("/gtx/", f"/{beam}/") if source.startswith("/") else f"/{beam}/{LIS}/{source}"
        d = self.file.get(path)
        return d if isinstance(d, h5py.Dataset) else None

    def read(self, beam, source, n=None):
        """Whole 1-D array of a per-segment variable; GranuleError if missing or of the wrong length."""
        d = self.dataset(beam, source)
        if d is None:
            raise GranuleError(self.name, f"beam {beam}: {LIS}/{source} is missing")
        if d.ndim != 1 or (n is not None and d.shape[0] != n):
            raise GranuleError(self.name, f"beam {beam}: {LIS}/{source} has shape {d.shape}, "
                                          f"expected ({n},) like latitude")
        try:
            return d[()]
        except OSError as exc:
            raise GranuleError(self.name, f"beam {beam}: {LIS}/{source} cannot be read ({exc})") from exc

    @staticmethod
    def fill_value(dset):
        """The ``_FillValue`` attribute as a scalar of the dataset's dtype (scalar or 1-element array), or None."""
        if dset is None or "_FillValue" not in dset.attrs:
            return None
        value = _scalar(dset.attrs["_FillValue"])
        return None if value is None else np.asarray(value).astype(dset.dtype)[()]

    @staticmethod
    def text_attr(dset, key):
        return _text(dset.attrs[key]) if dset is not None and key in dset.attrs else ""
