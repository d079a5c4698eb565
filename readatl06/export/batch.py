"""One batch of ``readatl06 export``: the rows of a stream range read from the merged file's groups
or the per-beam files straight into the batch's columns, and turned into a pyarrow RecordBatch.

Reading: the stored chunks of each dataset are inflated in the project (``readatl06.hdf5.chunks``, ISA-L;
bit-exact to HDF5) and unshuffled byte plane by byte plane directly into the column (one copy per
value); the last inflated chunk of a dataset is kept, since the next piece or batch starts in it.
Datasets without a chunk index (contiguous, other filters, another dtype than the column's) are
read with h5py. The merged file stays open; a per-beam file is opened for the batch that needs it.

``time``: the file's ``time`` (seconds since its units' epoch, UTC) where present and not fill,
else ``gps_to_datetime64(t_sec)``; both give the same microseconds, as ``t + epoch`` is the POSIX
time that ``gps_to_posix`` computes, exactly (float64 sums within one binade).
"""
import bisect
import os

import h5py
import numpy as np

from readatl06.hdf5 import chunks
from readatl06.outputs import geoparquet
from readatl06.export.table import GROUPS, TIME, time_epoch
from readatl06.atl06.schema import BEAMS, DIRECTIONS
from readatl06.atl06.gpstime import gps_to_datetime64


class Rows:
    """One 1-D dataset, read a row range at a time into a given array (``into``)."""

    def __init__(self, dset, fetch, user_block):
        self.dset = dset
        self.index = chunks.chunk_index(dset, user_block) if fetch is not None else None
        self.fetch = fetch
        self.last = (None, None, False)       # (chunk number, inflated bytes, shuffled) of the last chunk

    def into(self, out, a):
        """``out[:] = dataset[a:a + len(out)]``."""
        b = a + out.size
        if self.index is None or self.index.dtype != out.dtype or not out.flags.c_contiguous:
            out[:] = self.dset[a:b]
            return
        index, step = self.index, self.index.chunk
        size = index.dtype.itemsize
        planes_out = out.view(np.uint8).reshape(out.size, size)
        for k in range(a // step, (b - 1) // step + 1 if b > a else a // step):
            lo, hi = max(a - k * step, 0), min(b - k * step, step)
            o = k * step + lo - a
            data, shuffled = self._inflated(k)
            if data is None:
                out[o:o + hi - lo] = index.fill
            elif shuffled:
                planes = np.frombuffer(data, np.uint8).reshape(size, step)
                for j in range(size):
                    planes_out[o:o + hi - lo, j] = planes[j, lo:hi]
            else:
                out[o:o + hi - lo] = np.frombuffer(data, index.dtype, hi - lo, lo * size)

    def _inflated(self, k):
        """(bytes, shuffled) of chunk ``k`` as stored after inflating; (None, False) when unallocated."""
        if self.last[0] != k:
            index = self.index
            i = bisect.bisect_left(index.chunks, (k * index.chunk,))
            if i == len(index.chunks) or index.chunks[i].start != k * index.chunk:
                self.last = (k, None, False)
            else:
                # chunks' own inflate and checks; its unshuffle (decode_chunk) is left out: see into()
                self.last = (k, *chunks.inflate_chunk(index, index.chunks[i], self.fetch))
        return self.last[1], self.last[2]


class Source:
    """An open HDF5 file (merged or per-beam): each group's datasets as :class:`Rows`."""

    def __init__(self, path):
        self.path = path
        self.file = h5py.File(path, "r")
        try:
            self.fd = os.open(path, os.O_RDONLY)
        except OSError:
            self.file.close()
            raise
        self.user_block = chunks.userblock(self.file)
        self.groups = {}

    def fetch(self, offset, size):
        return os.pread(self.fd, size, offset)

    def group(self, name):
        """``({dataset: Rows}, time (epoch, fill) or None)`` of the group ``name`` ("/" the root)."""
        if name not in self.groups:
            g = self.file[name]
            rows = {k: Rows(v, self.fetch, self.user_block) for k, v in g.items() if isinstance(v, h5py.Dataset)}
            tinfo = None
            if TIME in rows:
                a = g[TIME].attrs
                units, fill = a.get("units"), a.get("_FillValue")
                units = units.decode() if isinstance(units, bytes) else units
                tinfo = (time_epoch(units, f"{self.path}:{g.name}/{TIME}"),
                         None if fill is None else float(np.asarray(fill).ravel()[0]))
            self.groups[name] = (rows, tinfo)
        return self.groups[name]

    def close(self):
        os.close(self.fd)
        self.file.close()


class Reader:
    """Where the pieces of a batch are: ``[(group, granule, n, {name: Rows}, first row, time info)]``."""

    def __init__(self, plan):
        self.plan = plan
        self.merged = Source(plan.source) if plan.kind == "merged" else None
        self.opened = []

    def close(self):
        self.release()
        if self.merged is not None:
            self.merged.close()

    def release(self):
        """Close the per-beam files of the last batch."""
        while self.opened:
            self.opened.pop().close()

    def pieces(self, stream, s, e):
        out = []
        for p, lo, hi in stream.pieces(s, e):
            g, k = int(stream.piece_g[p]), int(stream.piece_k[p])
            if self.merged is None:
                src = Source(self.plan.files[(g, k)])
                self.opened.append(src)
                rows, tinfo = src.group("/")
                out.append((k, g, hi - lo, rows, lo, tinfo))
            else:
                rows, tinfo = self.merged.group("/".join(GROUPS[k]))
                out.append((k, g, hi - lo, rows, int(stream.group_start[g, k]) + lo, tinfo))
        return out


def micros(t_sec, time_s=None, tinfo=None):
    """UTC microseconds since 1970 of points (see the module text)."""
    if time_s is None:
        return gps_to_datetime64(t_sec).astype(np.int64)
    epoch, fill = tinfo
    bad = ~np.isfinite(time_s) if fill is None else ~np.isfinite(time_s) | (time_s == fill)
    us = ((np.where(bad, 0.0, time_s) + epoch) * 1e6).round().astype(np.int64)
    if bad.any():
        us[bad] = gps_to_datetime64(t_sec[bad]).astype(np.int64)
    return us


def columns(plan, parts, total):
    """``({column: values}, UTC microseconds)`` of ``parts`` (Reader.pieces) laid end to end."""
    out = {c.name: np.empty(total, np.dtype(c.dtype)) for c in plan.columns}
    us = np.empty(total, np.int64)
    o = 0
    for k, g, n, rows, a, tinfo in parts:
        try:
            _piece(plan, k, g, n, rows, a, tinfo, out, us, o)
        except (OSError, ValueError) as exc:       # ChunkError is a ValueError
            from readatl06.errors import BadFileError
            d = next(iter(rows.values())).dset
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise BadFileError(f"{d.file.filename}:{d.parent.name}: cannot read it for the export ({first})") from None
        o += n
    return out, us


def _piece(plan, k, g, n, rows, a, tinfo, out, us, o):
    """One piece's ``n`` rows from its row ``a`` into ``out``/``us`` at ``o``; a piece whose own fill
    value differs from its column's (``plan.refill``) has it replaced."""
    own = plan.refill.get((g, k), {}) if getattr(plan, "refill", None) else {}
    for c in plan.columns:
        if c.name in rows:
            rows[c.name].into(out[c.name][o:o + n], a)
            if c.name in own:
                from readatl06.merge.redistribute import refill
                refill(out[c.name][o:o + n], own[c.name], c.fills[k])
        else:
            out[c.name][o:o + n] = c.fills[k]
    t_sec = out["t_sec"][o:o + n]
    if TIME in rows:
        time_s = np.empty(n, np.float64)
        rows[TIME].into(time_s, a)
        us[o:o + n] = micros(t_sec, time_s, tinfo)
    else:
        us[o:o + n] = micros(t_sec)


def convert(plan, stream, reader, s, e, wire):
    """Stream rows ``[s, e)`` as one pyarrow RecordBatch of the ``wire`` schema (granule as its row)."""
    import pyarrow as pa
    try:
        parts = reader.pieces(stream, s, e)
        arrays, us = columns(plan, parts, e - s)
    finally:
        reader.release()
    sizes = [n for _, _, n, *_ in parts]
    codes = {"beam": [k // 2 for k, *_ in parts], "direction": [k % 2 for k, *_ in parts],
             "granule": [g for _, g, *_ in parts]}
    out = []
    for field in wire:
        if field.name in arrays:
            out.append(pa.array(arrays[field.name]))
        elif field.name == TIME:
            out.append(pa.Array.from_buffers(field.type, us.size, [None, pa.py_buffer(us)]))
        elif field.name in codes:
            rows = pa.array(np.repeat(np.array(codes[field.name], np.int32 if field.name == "granule" else np.int8),
                                      sizes))
            if field.name == "granule":
                out.append(rows)
            else:
                values = pa.array(BEAMS if field.name == "beam" else DIRECTIONS, pa.string())
                out.append(pa.DictionaryArray.from_arrays(rows, values))
    out += geoparquet.point_columns(arrays["lon"], arrays["lat"])
    return pa.RecordBatch.from_arrays(out, schema=wire)
