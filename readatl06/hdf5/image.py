"""A file built in memory by HDF5 (h5py's ``fileobj`` driver) whose raw data never passes through it.

HDF5 writes only metadata (and the deflated chunks of direct chunk writes) into a :class:`FileImage`,
an anonymous memory map that costs pages only where HDF5 writes. Contiguous datasets are allocated
when created and never filled (:func:`raw_dcpl`); their caller :meth:`places <FileImage.place>` the
NumPy array at the dataset's address instead of writing it. The file is then the image with the
arrays in their places: :meth:`FileImage.segments` lists its pieces in file order, zero copies, to
hash and to write with one ``os.writev`` (:func:`write_segments`). Compared with HDF5's core driver
and ``get_file_image`` this saves two copies of every byte of data (HDF5's into its image, then the
image's into a ``bytes``) and the zero-filling of the image.
"""
import bisect
import mmap
import os

import h5py


def raw_dcpl(dcpl):
    """``dcpl`` (contiguous) made to allocate at creation and never write a fill value: the dataset's
    bytes are exactly what the caller places there."""
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    return dcpl


class FileImage:
    """The file object of h5py's ``fileobj`` driver (seek, tell, read, write, truncate, flush) over an
    anonymous map of ``capacity`` bytes (grown when HDF5 goes beyond it), plus the placed arrays."""

    def __init__(self, capacity=1 << 20):
        self.map = mmap.mmap(-1, max(capacity, mmap.PAGESIZE), flags=mmap.MAP_PRIVATE)  # grows by mremap
        self.pos = 0
        self.eof = 0
        self.starts = []          # sorted start offsets of the placed arrays
        self.placed = {}          # start -> uint8 view of the array placed there
        self.views = []           # views of the map handed out by segments()

    # --- the file object HDF5 writes through ------------------------------------------------------
    def seek(self, pos, whence=0):
        self.pos = pos if whence == 0 else self.pos + pos if whence == 1 else self.eof + pos
        return self.pos

    def tell(self):
        return self.pos

    def read(self, n=-1):
        end = self.eof if n < 0 else min(self.pos + n, self.eof)
        data = bytes(self.map[self.pos:end]) if end > self.pos else b""
        self._check_raw(self.pos, end, "read")
        self.pos += len(data)
        return data

    def write(self, data):
        view = memoryview(data).cast("B")
        end = self.pos + len(view)
        self._check_raw(self.pos, end, "wrote")
        if end > len(self.map):
            self._grow(end)
        self.map[self.pos:end] = view
        self.pos = end
        self.eof = max(self.eof, end)
        return len(view)

    def truncate(self, size=None):
        size = self.pos if size is None else size
        if size > len(self.map):
            self._grow(size)
        if size < self.eof:
            self.map[size:self.eof] = bytes(self.eof - size)
        self.eof = size
        return size

    def flush(self):
        pass

    def close(self):
        """Free the map (every view from :meth:`segments` released first)."""
        for view in self.views:
            view.release()
        self.views = []
        self.placed.clear()
        try:
            self.map.close()
        except BufferError:     # a slice still held (by a traceback's frame): unmapped when it goes
            pass

    def _grow(self, need):
        self.map.resize(max(need, 2 * len(self.map)))

    def _check_raw(self, start, end, what):
        """HDF5 never touches a placed array's bytes (else the file would not be what we write)."""
        k = bisect.bisect_right(self.starts, start) - 1
        for s in self.starts[max(k, 0):k + 2]:
            if start < s + len(self.placed[s]) and s < end:
                raise RuntimeError(f"HDF5 {what} bytes {start}..{end} inside a placed dataset at {s}")

    # --- the caller's side --------------------------------------------------------------------------
    def place(self, offset, values):
        """The bytes of the C-contiguous array ``values`` are the file's from ``offset`` on (the address
        of a dataset made with :func:`raw_dcpl`)."""
        data = memoryview(values).cast("B")
        self._check_raw(offset, offset + len(data), "placed")
        bisect.insort(self.starts, offset)
        self.placed[offset] = data

    def segments(self):
        """The whole file (after HDF5 closed it) as memoryviews in file order."""
        out, at = [], 0
        for s in self.starts + [self.eof]:
            if s > at:
                self.views.append(memoryview(self.map))
                out.append(self.views[-1][at:s])
                self.views.append(out[-1])
            if s < self.eof:
                out.append(self.placed[s])
                at = s + len(self.placed[s])
        if at > self.eof:
            raise RuntimeError(f"placed data ends at {at}, beyond the file's end {self.eof}")
        return out


def write_segments(fd, segments):
    """Write the memoryviews one after another at the file's position (``os.writev``, short writes
    continued); OSError as the system gives it."""
    pending = [s for s in segments if len(s)]
    while pending:
        batch = pending[:512]                       # well under IOV_MAX
        done = os.writev(fd, batch)
        while batch and done >= len(batch[0]):
            done -= len(batch[0])
            batch.pop(0)
            pending.pop(0)
        if done:
            pending[0] = pending[0][done:]
