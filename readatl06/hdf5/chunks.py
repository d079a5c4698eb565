"""Chunk indexes of 1-D HDF5 datasets and a reader that decodes their stored chunks in the project.

The index is the interface: a dataset's stored chunks as (file byte offset, stored size, filter mask,
first element), with dtype, chunk length, filters and the fill value of unallocated chunks. Anything
that can fetch byte ranges (``os.pread`` here; later S3 or HTTPS range requests) decodes the same
index with ``read_index``. Only what is certain to be bit-exact to HDF5 gets an index: 1-D chunked
numeric datasets whose filters are shuffle and/or deflate, in that order. Everything else
(contiguous, compact, fletcher32, scale-offset, n-bit, szip, other filters, > 1-D, strings, a file
with a user block) gets ``None`` from ``chunk_index`` and is read by h5py.
"""
import bisect
import dataclasses
import typing

import h5py
import numpy as np

from readatl06.hdf5.codecs import ChunkError, FILTER_DEFLATE, FILTER_SHUFFLE, inflate, unshuffle_into

_PIPELINES = {(): (), (FILTER_DEFLATE,): ("deflate",), (FILTER_SHUFFLE,): ("shuffle",),
              (FILTER_SHUFFLE, FILTER_DEFLATE): ("shuffle", "deflate")}


class StoredChunk(typing.NamedTuple):
    start: int          # index of the chunk's first element
    offset: int         # byte offset in the file
    size: int           # stored (filtered) bytes
    filter_mask: int    # bit i set: filter i of the pipeline was skipped for this chunk


@dataclasses.dataclass(frozen=True)
class ChunkIndex:
    n: int              # elements in the dataset
    dtype: np.dtype     # as stored (byte order included): the raw bytes are these values
    chunk: int          # elements per chunk (a partial last chunk is stored full-size)
    filters: tuple      # ("shuffle", "deflate") in pipeline order, a subsequence of it
    fill: object        # value of elements in unallocated chunks (a numpy scalar of dtype)
    chunks: tuple       # StoredChunk, allocated chunks only, by start

    @property
    def nbytes(self):
        """Bytes of one decoded chunk."""
        return self.chunk * self.dtype.itemsize


def userblock(file):
    """Bytes before the HDF5 superblock (h5py File or FileID); chunk addresses count from there, and
    whether H5Dget_chunk_info adds them differs between HDF5 versions."""
    return (file.id if isinstance(file, h5py.File) else file).get_create_plist().get_userblock()


def chunk_index(dset, user_block=None):
    """The ChunkIndex of an h5py Dataset (or its DatasetID), or None when h5py must read it (see the
    module text). ``user_block``: ``userblock(file)`` when the caller knows it (once per file).
    """
    dsid = dset.id if isinstance(dset, h5py.Dataset) else dset
    shape, dtype = dsid.shape, dsid.dtype
    if len(shape) != 1 or dtype.kind not in "iuf":
        return None
    if (userblock(h5py.Dataset(dsid).file) if user_block is None else user_block) != 0:
        return None
    dcpl = dsid.get_create_plist()
    if dcpl.get_layout() != h5py.h5d.CHUNKED:
        return None
    filters = tuple(dcpl.get_filter(i) for i in range(dcpl.get_nfilters()))
    pipeline = _PIPELINES.get(tuple(f[0] for f in filters))
    if pipeline is None:
        return None
    if "shuffle" in pipeline:
        values = filters[0][2]
        if values and values[0] != dtype.itemsize:
            return None
    n, chunk = shape[0], dcpl.get_chunk()[0]
    stored = []
    for i in range(dsid.get_num_chunks() if n else 0):
        info = dsid.get_chunk_info(i)
        if info.byte_offset is None or info.chunk_offset[0] >= n:
            continue
        stored.append(StoredChunk(info.chunk_offset[0], info.byte_offset, info.size, info.filter_mask))
    stored.sort()
    fill = np.zeros(1, dtype)
    if len(stored) < -(-n // chunk):
        # Unallocated chunks read as the fill value, unless HDF5 leaves them undefined.
        if (dcpl.fill_value_defined() == h5py.h5d.FILL_VALUE_UNDEFINED
                or dcpl.get_fill_time() == h5py.h5d.FILL_TIME_NEVER):
            return None
        dcpl.get_fill_value(fill)
    return ChunkIndex(n, dtype, chunk, pipeline, fill[0], tuple(stored))


def _chunk_error(c, why):
    return ChunkError(f"stored chunk at element {c.start} (file bytes {c.offset}..{c.offset + c.size}) {why}")


def inflate_chunk(index, c, fetch):
    """The decoded bytes of stored chunk ``c`` and whether they are still shuffled."""
    if c.size > index.nbytes + (index.nbytes >> 3) + 4096:    # deflate never grows a chunk this much
        raise _chunk_error(c, f"claims {c.size} stored bytes for a chunk of {index.nbytes}")
    data = fetch(c.offset, c.size)
    if len(data) != c.size:
        raise _chunk_error(c, f"is truncated: {len(data)} of {c.size} bytes in the file")
    shuffled = False
    for k in range(len(index.filters) - 1, -1, -1):   # undo the pipeline backwards, skipping masked filters
        if c.filter_mask >> k & 1:
            continue
        if index.filters[k] == "deflate":
            try:
                data = inflate(data, index.nbytes)
            except ChunkError as exc:
                raise _chunk_error(c, str(exc)) from None
        else:
            shuffled = index.dtype.itemsize > 1
    if len(data) != index.nbytes:
        raise _chunk_error(c, f"holds {len(data)} bytes, a chunk holds {index.nbytes}")
    return data, shuffled


def read_index(index, fetch, rows=None):
    """Decode a ChunkIndex into a 1-D array, bit-exact to HDF5; ChunkError for a bad chunk.

    ``fetch(offset, size)`` returns those bytes of the file (fewer at its end). With ``rows`` (sorted
    element indices) only the chunks holding them are fetched and ``values[rows]`` is returned.
    """
    n, size, chunk = index.n, index.dtype.itemsize, index.chunk
    out = np.empty(n, index.dtype)
    if len(index.chunks) < -(-n // chunk):
        out.fill(index.fill)
    if rows is not None:      # which chunks hold any of the rows: binary search at the chunk edges
        pos = np.searchsorted(rows, np.arange(-(-n // chunk) + 1) * chunk)
        wanted = (pos[1:] > pos[:-1]).tolist()
    for c in index.chunks:
        if rows is not None and not wanted[c.start // chunk]:
            continue
        data, shuffled = inflate_chunk(index, c, fetch)
        m = min(chunk, n - c.start)
        if shuffled:
            unshuffle_into(out.view(np.uint8).reshape(n, size)[c.start:c.start + m], data, m)
        else:
            out[c.start:c.start + m] = np.frombuffer(data, index.dtype, m)
    return out if rows is None else out[rows]


def chunk_count(index):
    """Chunks the dataset spans (stored or not)."""
    return -(-index.n // index.chunk)


def decode_chunk(index, k, fetch):
    """The values of chunk ``k`` (``min(chunk, n - k * chunk)`` of them), bit-exact to HDF5: decoded
    when stored, the fill value when unallocated."""
    m = min(index.chunk, index.n - k * index.chunk)
    i = bisect.bisect_left(index.chunks, (k * index.chunk,))     # chunks are sorted by start
    if i == len(index.chunks) or index.chunks[i].start != k * index.chunk:
        return np.full(m, index.fill, index.dtype)
    data, shuffled = inflate_chunk(index, index.chunks[i], fetch)
    if shuffled:
        out = np.empty(m, index.dtype)
        unshuffle_into(out.view(np.uint8).reshape(m, index.dtype.itemsize), data, m)
        return out
    return np.frombuffer(data, index.dtype, m)          # read-only: callers index it
