"""Open one ATL06 granule once, check that it is one, and read beam arrays from it.

Per-segment variables are read through a Beam plan: each dataset opened once, and decoded by the
chunk reader (readatl06.hdf5.chunks) where its layout allows, else by h5py.
"""
import functools
import os
import time

import h5py
import numpy as np

from readatl06.atl06 import envelopes as bounds
from readatl06.atl06.beams import SPOTS, beam_info
from readatl06.hdf5.chunks import chunk_index, decode_chunk, read_index, userblock
from readatl06.errors import GranuleError, NotATL06Error
from readatl06.hdf5.codecs import ChunkError
from readatl06.atl06.schema import ATLAS_SDP_GPS_EPOCH, BEAMS, GPS_EPOCH_PATH, LIS
from readatl06.hdf5.attrs import text


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

    def __init__(self, path, chunk_reader=True):
        self.path = str(path)
        self.name = os.path.basename(self.path)
        self.fd = None
        self.bytes_read = 0          # stored bytes read for the data (--timings)
        self.read_seconds = 0.0      # time in reading and decoding them
        try:
            self.file = h5py.File(self.path, "r")
        except (OSError, ValueError) as exc:
            raise open_error(self.path, exc) from exc
        try:
            self._check_product()
            self.user_block = userblock(self.file)
            self.chunk_reader = chunk_reader and self.user_block == 0
            if self.chunk_reader:
                self.fd = os.open(self.path, os.O_RDONLY)
        except BaseException:
            self.close()
            raise

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _check_product(self):
        f = self.file
        for key in ("short_name", "identifier_product_type"):
            if key in f.attrs:
                product = text(f.attrs[key]) or ""
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

    @functools.cached_property
    def sc_orient(self):
        v = self.scalar("/orbit_info/sc_orient")
        return None if v is None else int(v)

    def beam_info(self, beam):
        sc = self.sc_orient           # the beam group's attributes only where sc_orient cannot say
        return beam_info(beam, sc, None if sc in SPOTS else dict(self.file[beam].attrs))

    def footprints(self):
        """[(label, bounds.Envelope or None)]: where the granule's points are, by its own metadata
        (root geospatial_* attributes; orbit_info/bounding_polygon_lat1/lon1 where present)."""
        a = self.file.attrs

        def num(key):
            try:
                return float(_scalar(a[key])) if key in a else None
            except (TypeError, ValueError):
                return None
        out = [("geospatial_lat/lon_min/max attributes", bounds.attrs_footprint(
            num("geospatial_lat_min"), num("geospatial_lat_max"), num("geospatial_lon_min"),
            num("geospatial_lon_max")))]
        lat, lon = (self.file.get(f"/orbit_info/bounding_polygon_{c}1") for c in ("lat", "lon"))
        if isinstance(lat, h5py.Dataset) and isinstance(lon, h5py.Dataset) and lat.dtype.kind == "f" \
                and lon.dtype.kind == "f" and lat.ndim == 1 and 0 < lat.size <= 4096:
            out.append(("orbit_info/bounding_polygon_lat1/lon1", bounds.polygon_footprint(lat[()], lon[()])))
        return out

    def beam(self, beam):
        """The read plan of one beam (see Beam)."""
        return Beam(self, beam)

    def fetch(self, offset, size):
        """``size`` bytes of the file at ``offset`` (fewer at its end): what a ChunkIndex is read with."""
        data = os.pread(self.fd, size, offset)
        self.bytes_read += len(data)
        return data


class Var:
    """One planned dataset: opened once, its ``_FillValue`` and chunk index read once."""

    __slots__ = ("source", "label", "dsid", "fill", "index")

    def __init__(self, source, label, dsid, fill, index):
        self.source, self.label, self.dsid, self.fill, self.index = source, label, dsid, fill, index

    @property
    def dset(self):
        """The h5py Dataset (for h5py reads and attributes other than ``_FillValue``)."""
        return h5py.Dataset(self.dsid)

    def text_attr(self, key):
        return (text(self.dset.attrs[key]) or "") if key in self.dset.attrs else ""


class Beam:
    """A beam's variables, planned once: each dataset is looked up and opened once, its ``_FillValue``
    and chunk index read once, and its values decoded once (by the chunk reader, else h5py)."""

    def __init__(self, granule, beam):
        self.granule, self.beam = granule, beam
        self.lis = granule.file[beam][LIS].id
        self._vars = {}
        self._values = {}
        self._chunks = {}                 # (source, k) -> decoded chunk k (partial reads)

    def var(self, source):
        """The Var of an OutVar source (relative to land_ice_segments, or absolute with gtx), or None."""
        if source not in self._vars:
            self._vars[source] = self._open(source)
        return self._vars[source]

    def _open(self, source):
        g = self.granule
        if source.startswith("/"):
            where, path = g.file.id, source.replace("/gtx/", f"/{self.beam}/")
            label = path.lstrip("/")
        else:
            where, path, label = self.lis, source, f"{LIS}/{source}"
        try:
            oid = h5py.h5o.open(where, path.encode())
        except (KeyError, ValueError):
            return None
        if not isinstance(oid, h5py.h5d.DatasetID):
            kind = "group" if isinstance(oid, h5py.h5g.GroupID) else "datatype"
            raise self._error(label, f"is a {kind}, expected a dataset")
        try:
            index = chunk_index(oid, g.user_block) if g.chunk_reader else None
            fill = fill_value(oid)
        except (OSError, RuntimeError) as exc:
            raise self._error(label, f"cannot be read ({exc})") from exc
        return Var(source, label, oid, fill, index)

    def _error(self, label, cause):
        return GranuleError(self.granule.name, f"beam {self.beam}: {label} {cause}")

    def require(self, source):
        v = self.var(source)
        if v is None:
            raise self._error(f"{LIS}/{source}" if not source.startswith("/") else source.lstrip("/"),
                              "is missing")
        return v

    def dataset(self, source):
        """The h5py Dataset of a source (opened once, see ``var``), or None when the beam lacks it."""
        v = self.var(source)
        return None if v is None else v.dset

    def length(self, source, n=None):
        """Elements of a 1-D per-segment variable (from its chunk index: nothing decoded)."""
        v = self.require(source)
        shape = (v.index.n,) if v.index is not None else v.dsid.shape
        if len(shape) != 1 or (n is not None and shape[0] != n):
            raise self._error(v.label, f"has shape {shape}, expected ({n},) like latitude")
        return shape[0]

    def chunked(self, source):
        """The ChunkIndex of ``source`` when the chunk reader decodes it (else None: h5py reads it)."""
        return self.require(source).index

    def chunk(self, source, k):
        """Chunk ``k`` of a chunk-read variable, decoded once (see ``chunked``)."""
        key = (source, k)
        if key not in self._chunks:
            v = self.require(source)
            self._chunks[key] = self._timed(v, decode_chunk, v.index, k, self.granule.fetch)
        return self._chunks[key]

    def read(self, source, n=None, rows=None):
        """A per-segment variable: the whole 1-D array (decoded once), or its values at sorted ``rows``
        (only the chunks holding them are decoded, each once per beam). GranuleError if missing, of
        the wrong length or unreadable."""
        v = self.require(source)
        full = self._values.get(source)
        if full is None:
            self.length(source, n)
            if rows is not None and v.index is not None:
                return self._rows(source, v.index, np.asarray(rows))
            full = self._values[source] = self._timed(v, self._decode, v)
        return full if rows is None else full[rows]

    def _rows(self, source, index, rows):
        out = np.empty(rows.size, index.dtype)
        if not rows.size:
            return out
        c = index.chunk
        k0, k1 = int(rows[0]) // c, int(rows[-1]) // c + 1       # rows are sorted: chunks k0 .. k1-1
        edges = np.searchsorted(rows, np.arange(k0, k1 + 1) * c).tolist()
        for k, lo, hi in zip(range(k0, k1), edges[:-1], edges[1:]):
            if hi > lo:
                values = self.chunk(source, k)
                out[lo:hi] = values[rows[lo:hi] - k * c] if hi - lo < values.size else values
        return out

    def _timed(self, v, fn, *args):
        t0 = time.perf_counter()
        try:
            return fn(*args)
        except ChunkError as exc:
            raise self._error(v.label, f"cannot be read: {exc}") from None
        except OSError as exc:
            raise self._error(v.label, f"cannot be read ({exc})") from exc
        finally:
            self.granule.read_seconds += time.perf_counter() - t0

    def _decode(self, v):
        if v.index is not None:
            return read_index(v.index, self.granule.fetch)
        self.granule.bytes_read += v.dsid.get_storage_size()
        return v.dset[()]


def fill_value(dsid):
    """The ``_FillValue`` attribute of a DatasetID as a scalar of the dataset's dtype (scalar or
    1-element array), or None."""
    try:
        attr = h5py.h5a.open(dsid, b"_FillValue")
    except KeyError:
        return None
    dtype = attr.dtype
    if dtype.kind in "biuf":                 # numeric (the ATL06 case): one low-level read
        value = np.empty(attr.shape, dtype)
        attr.read(value)
    else:
        value = h5py.Dataset(dsid).attrs["_FillValue"]
    value = _scalar(value)
    return None if value is None else np.asarray(value).astype(dsid.dtype)[()]
