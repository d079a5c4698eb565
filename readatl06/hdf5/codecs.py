"""HDF5's shuffle and deflate filters in numpy and ISA-L, both ways, byte-compatible with HDF5's own.

Shuffle (filter 2) stores byte k of every element together, k = 0 .. itemsize-1; deflate (filter 1)
is a zlib stream (RFC 1950, with its Adler-32 check), so any inflater decodes it and HDF5, h5py,
netCDF-C, h5dump and xarray decode what ``encode`` writes. Nothing here knows about files.
"""
import numpy as np
from isal import isal_zlib

FILTER_DEFLATE = 1      # H5Z_FILTER_DEFLATE
FILTER_SHUFFLE = 2      # H5Z_FILTER_SHUFFLE
DEFLATE_LEVEL = 1       # ISA-L levels 0..3; 1 is about 10x zlib level 4 at ~90 % of its ratio


class ChunkError(ValueError):
    """A stored chunk that does not decode to exactly one chunk of data (corrupt or truncated)."""


def inflate(data, nbytes):
    """The zlib stream ``data`` inflated; ChunkError unless it gives exactly ``nbytes`` bytes."""
    try:
        out = isal_zlib.decompress(data, bufsize=max(nbytes, 1))
    except isal_zlib.error as exc:
        raise ChunkError(f"deflate stream is corrupt ({exc})") from None
    if len(out) != nbytes:
        raise ChunkError(f"inflates to {len(out)} bytes, a chunk holds {nbytes}")
    return out


def deflate(data, level=DEFLATE_LEVEL):
    return isal_zlib.compress(data, level)


def unshuffle_into(dst, data, m):
    """Undo the shuffle of one chunk's bytes ``data`` into ``dst``, an (m, itemsize) uint8 view of
    the m values wanted (the first m of the chunk): byte plane by byte plane, each one strided
    copy (3.5 times faster than copying the transposed (n, itemsize) view at once)."""
    size = dst.shape[1]
    planes = np.frombuffer(data, np.uint8).reshape(size, len(data) // size)
    for j in range(size):
        dst[:, j] = planes[j, :m]


def shuffled(values, nelem):
    """The bytes of 1-D ``values`` shuffled as one chunk of ``nelem`` elements (zero-padded at the end)."""
    values = np.ascontiguousarray(values)
    size = values.dtype.itemsize
    planes = np.zeros((size, nelem), np.uint8)
    planes[:, :values.size] = values.view(np.uint8).reshape(values.size, size).T
    return planes


def encode(values, nelem, shuffle=True, level=DEFLATE_LEVEL, compress=None):
    """One stored chunk: ``values`` (at most ``nelem`` of them) padded to a full chunk (zeros), shuffled,
    deflated (``compress(data, level)``: ISA-L's by default; the merged file passes zlib's, whose
    output is a function of the input alone)."""
    values = np.ascontiguousarray(values)
    if shuffle and values.dtype.itemsize > 1:
        buf = shuffled(values, nelem)
    else:
        buf = np.zeros(nelem, values.dtype)
        buf[:values.size] = values
    return (compress or deflate)(buf, level)
