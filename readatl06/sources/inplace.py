"""Reading a remote granule in place (see :func:`readatl06.sources.remote.opened`): HDF5's metadata
through a block cache over ranged reads (:class:`BlockFile`), the data chunks fetched one range each
by the chunk reader (:class:`RemoteGranule` is a :class:`readatl06.reader.granule.Granule` whose ``fetch`` is a
ranged read). Bytes and requests are counted in :func:`readatl06.sources.base.stats`."""
import io

import h5py

from readatl06.hdf5.chunks import userblock
from readatl06.errors import GranuleError
from readatl06.reader.granule import Granule
from readatl06.sources.base import CACHE_BYTES, MAX_BLOCK, MIN_BLOCK, RemoteError, count, url_name, with_retries


class RemoteFile:
    """A remote granule opened for random access: ``pread`` for the chunk reader (one ranged read
    each, retried), ``fileobj()`` for h5py (a block-cached file object); bytes counted."""

    def __init__(self, url, reader, block_size=None):
        self.url, self.reader, self.size = url, reader, reader.size
        self.name = url_name(url)
        self.bytes_fetched = self.requests = 0
        self.error = None               # the last RemoteError seen inside h5py's callbacks
        self.block_size = block_size or default_block(self.size)

    def pread(self, offset, size):
        end = min(self.size, offset + size)
        if end <= offset:
            return b""
        data = with_retries(lambda: self.reader.read(offset, end))
        self.bytes_fetched += len(data)
        self.requests += 1
        count(len(data))
        return data

    def fileobj(self):
        return BlockFile(self)

    def close(self):
        self.reader.close()


def default_block(size):
    """The metadata block: 1/32 of the granule rounded down to a power of two, within 64 KiB-8 MiB
    (HDF5 metadata is spread through an ATL06 file: large blocks fetch most of a small granule)."""
    block = MIN_BLOCK
    while block * 2 <= min(MAX_BLOCK, size // 32):
        block *= 2
    return block


class BlockFile(io.RawIOBase):
    """A read-only file object over a RemoteFile with fsspec's block cache (what h5py opens)."""

    def __init__(self, remote):
        from fsspec.caching import BlockCache
        super().__init__()
        self.remote, self.pos = remote, 0
        blocks = max(2, CACHE_BYTES // remote.block_size)
        self.cache = BlockCache(remote.block_size, self._fetch, remote.size, maxblocks=blocks)

    def _fetch(self, start, end):
        try:
            return self.remote.pread(start, end - start)
        except RemoteError as exc:           # h5py re-raises what its file-object callbacks raise
            self.remote.error = exc
            raise GranuleError(self.remote.name, exc.cause) from exc

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.remote.size}[whence]
        self.pos = base + offset
        return self.pos

    def tell(self):
        return self.pos

    def readinto(self, buffer):
        view = memoryview(buffer).cast("B")
        data = self.cache._fetch(self.pos, min(self.remote.size, self.pos + len(view)))
        view[:len(data)] = data
        self.pos += len(data)
        return len(data)


class RemoteGranule(Granule):
    """A reader.granule.Granule over a RemoteFile: h5py on the block-cached file object, the chunk reader's
    ``fetch`` through ranged reads. :func:`opened` closes it (closing twice is harmless).
    ``bytes_read`` (what ``--timings`` sums) is every byte fetched for it, metadata included."""

    def __init__(self, remote, chunk_reader=True):
        self.remote, self.path, self.name, self.fd = remote, remote.url, remote.name, None
        self.file = None
        self.read_seconds = 0.0
        try:
            self.file = h5py.File(remote.fileobj(), "r")
        except GranuleError:
            remote.close()
            raise
        except (OSError, ValueError) as exc:
            remote.close()
            raise GranuleError(self.name, _open_cause(exc, remote.size)) from exc
        try:
            self._check_product()
            self.user_block = userblock(self.file)
            self.chunk_reader = chunk_reader and self.user_block == 0
        except BaseException:
            self.close()
            raise

    @property
    def bytes_read(self):
        return self.remote.bytes_fetched

    @bytes_read.setter
    def bytes_read(self, value):
        """Ignored: what h5py reads of the data is already in ``bytes_fetched``."""

    def fetch(self, offset, size):
        try:
            return self.remote.pread(offset, size)
        except RemoteError as exc:
            raise GranuleError(self.name, exc.cause) from exc

    def close(self):
        if self.file is not None:
            self.file.close()
        self.remote.close()


def _open_cause(exc, size):
    msg = str(exc)
    if size == 0:
        return "empty file (0 bytes)"
    if "signature not found" in msg:
        return f"not an HDF5 file ({size} bytes)"
    if "truncated file" in msg:
        return f"truncated HDF5 file ({size} bytes)"
    return f"HDF5 file cannot be opened: {msg}"
