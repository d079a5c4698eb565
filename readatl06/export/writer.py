"""``readatl06 export MERGED.h5|OUTDIR -o TABLE.parquet`` (docs/export.md): one GeoParquet 1.1 file of
every point, in merged-file order (:mod:`readatl06.export.plan`), row groups of ``ROW_GROUP`` rows.

Across ranks: rank r converts the contiguous granule range that ``Stream.rank_rows`` gives it (whole
granules, balanced by points), batch by batch, a batch being the rows of one row group that lie in
its range (``plan.batches``): the HDF5 slices are read, missing variables filled as merge
fills them, the UTC timestamps, WKB points and bbox built. Rank 0 holds the one ``ParquetWriter``:
it converts and writes its own batches, a writer thread encoding row groups while the main thread
converts the next; then it takes every other rank's batches in rank order. A rank > 0 hands each
batch over as an Arrow IPC file beside the target (memory-mapped and removed by rank 0) and its
number as a small message, at most ``AHEAD`` files ahead of rank 0 (large MPI messages between
shared cores crawled: each fragment waits for both processes to be scheduled). Every wait polls
lazily instead of spinning. Rank 0 joins the one or two batches of each row group and writes it.
A row group is cut at the same stream rows and its granule dictionary compacted the same way
whatever the rank count, so 1, 2 or 4 ranks write the same bytes. Memory per rank: a few batches,
never the table; disk: at most ``AHEAD`` batch files per rank. (The ``geo`` metadata needs the bbox
of the whole file before the writer opens: the plan's scan computes it.)

Everything is written under temporary names beside the target (``.TABLE.parquet.tmp-*``, which the
next run removes if a run was killed); the table is renamed to the target when complete.
"""
import json
import os
import queue
import sys
import threading
import time

import numpy as np

from readatl06 import __version__
from readatl06.outputs import geoparquet
from readatl06.errors import UsageError
from readatl06.export.plan import Stream, batches, make_plan
from readatl06.export.table import TIME
from readatl06.export.batch import Reader, convert
from readatl06.outputs.geoparquet import ROW_GROUP
from readatl06.outputs.folder import PlantedError, check_claim, claim, tmp_name

AHEAD = 4           # batch files a rank > 0 may have written that rank 0 has not taken yet
POLL = 0.0005       # s between polls of a rank that waits (MPI's own waits spin on a core)
QUEUE = 2           # row groups converted and waiting for rank 0's writer thread
READY, TAKEN = 0x6578, 0x6579   # message tags: batch file i written / taken
CATEGORIES = ("beam", "direction", "granule")
last_stats = {}     # this process's figures of its last export (row groups, seconds ...)


# ------------------------------------------------------------------ schema
def schema(plan, box=None):
    """The table's pyarrow schema: the variables (their dtypes), time (UTC), beam, direction,
    granule (dictionary strings), geometry and bbox; ``geo`` metadata for extent ``box``."""
    import pyarrow as pa
    fields = []
    for c in plan.columns:
        fields.append(pa.field(c.name, pa.from_numpy_dtype(np.dtype(c.dtype)), nullable=False,
                               metadata=_field_meta(c)))
        if c.name == "t_year":
            fields.append(_time_field())
    if TIME not in [f.name for f in fields]:
        fields.insert(next(i for i, f in enumerate(fields) if f.name == "t_sec") + 1, _time_field())
    for name, index, text in (("beam", pa.int8(), "beam (gt1l ... gt3r)"),
                              ("direction", pa.int8(), "direction of the track (ascending, descending)"),
                              ("granule", pa.int32(), "ATL06 granule file name")):
        fields.append(pa.field(name, pa.dictionary(index, pa.string()), nullable=False, metadata={"long_name": text}))
    fields += geoparquet.point_fields()
    meta = {"geo": geoparquet.geo_metadata(box),
            "readatl06": json.dumps({"software": f"readatl06 {__version__}", "parameters": plan.parameters})}
    return pa.schema(fields, metadata=meta)


def _field_meta(c):
    fill = np.asarray(c.fills[0]).item()
    return {**c.attrs, "_FillValue": json.dumps(fill)}


def _time_field():
    import pyarrow as pa
    return pa.field(TIME, pa.timestamp("us", tz="UTC"), nullable=False,
                    metadata={"long_name": "UTC time (leap seconds applied; from t_sec, GPS seconds)"})


def _wire(final):
    """The schema of a batch between ranks: granule as its row in /granules (int32)."""
    import pyarrow as pa
    i = final.get_field_index("granule")
    return final.set(i, pa.field("granule", pa.int32(), nullable=False))


# ------------------------------------------------------------------ assembling the file
def _save(path, batch):
    """``batch`` as an Arrow IPC stream file (written under another name, renamed when complete;
    that name made new, never through a link planted there: folder.claim)."""
    import pyarrow as pa
    ident = claim(path + ".part")
    with pa.OSFile(path + ".part", "wb") as sink, pa.ipc.new_stream(sink, batch.schema) as w:
        w.write_batch(batch)
    check_claim(path + ".part", ident)
    os.replace(path + ".part", path)


def _load(path):
    """The batch of a file from :func:`_save`, memory-mapped; the file is removed (the mapping stays)."""
    import pyarrow as pa
    with pa.memory_map(path) as src:
        batch = pa.ipc.open_stream(src).read_next_batch()
    os.remove(path)
    return batch


def _write_group(writer, pending, final, names):
    """One row group from the batches of its rows: the granule rows become a dictionary of the
    granules in this row group (in granule order; the rows are sorted by granule)."""
    import pyarrow as pa
    table = pa.Table.from_batches(pending)
    if len(pending) > 1:
        table = table.combine_chunks()      # one chunk per column: the same pages for any rank count
    i = table.schema.get_field_index("granule")
    rows = table.column(i).to_numpy()
    new = np.concatenate([[True], rows[1:] != rows[:-1]]) if rows.size else np.zeros(0, bool)
    codes = (np.cumsum(new) - 1).astype(np.int32)
    values = pa.array([names[g] for g in rows[new]], pa.string())
    table = table.set_column(i, final.field("granule"), pa.DictionaryArray.from_arrays(pa.array(codes), values))
    writer.write_table(table, row_group_size=ROW_GROUP)


def _poll(comm, source, tag):
    """Receive a small message without spinning: Open MPI's blocking calls poll at full speed, which
    on shared or oversubscribed cores takes the CPU from the rank that is working."""
    while not comm.iprobe(source=source, tag=tag):
        time.sleep(POLL)
    return comm.recv(source=source, tag=tag)


def _lazy_barrier(comm):
    if comm.size > 1:
        req = comm.Ibarrier()
        while not req.Test():
            time.sleep(POLL * 10)


def _hand_over(comm, plan, stream, reader, mine, wire, base):
    """A rank > 0: each batch to a file ``base.r<rank>.b<i>`` and its number to rank 0; at most
    ``AHEAD`` files that rank 0 has not taken yet (it says so for each)."""
    taken = 0
    for i, (s, e) in enumerate(mine):
        while i - taken >= AHEAD:
            _poll(comm, 0, TAKEN)
            taken += 1
        _save(f"{base}.r{comm.rank}.b{i}", convert(plan, stream, reader, s, e, wire))
        comm.send(i, dest=0, tag=READY)
    for _ in range(taken, len(mine)):
        _poll(comm, 0, TAKEN)


class _Writer:
    """The one ParquetWriter, fed through a short queue to a thread of its own: Parquet encoding and
    compression (pyarrow, without the GIL) run while the next batches are read and converted."""

    def __init__(self, path, final, names):
        import pyarrow.parquet as pq
        self.final, self.names, self.error, self.groups = final, names, None, 0
        self.writer = pq.ParquetWriter(path, final, **geoparquet.writer_options(final, dictionary=CATEGORIES))
        self.queue = queue.Queue(maxsize=QUEUE)
        self.thread = threading.Thread(target=self._run, name="readatl06-export-writer", daemon=True)
        self.thread.start()

    def _run(self):
        try:
            while (pending := self.queue.get()) is not None:
                if self.error is None:
                    _write_group(self.writer, pending, self.final, self.names)
                    self.groups += 1
        except BaseException as exc:            # kept for the producer; the queue is still drained
            self.error = exc
            while self.queue.get() is not None:
                pass

    def put(self, pending):
        if self.error is not None:
            raise self.error
        self.queue.put(pending)

    def close(self):
        """Finish the file (also after an error elsewhere); re-raises the writer's own error."""
        self.queue.put(None)
        self.thread.join()
        self.writer.close()
        if self.error is not None:
            raise self.error


def _write_all(comm, plan, stream, reader, path, final, base):
    """Rank 0: every rank's batches in rank order into row groups of ``path``. Returns row groups."""
    wire = _wire(final)
    pending = []
    writer = _Writer(path, final, plan.granules)
    try:
        for r in range(comm.size):
            for i, (s, e) in enumerate(batches(*stream.rank_rows(comm.size, r))):
                if r == 0:
                    pending.append(convert(plan, stream, reader, s, e, wire))
                else:
                    if _poll(comm, r, READY) != i:
                        raise RuntimeError(f"export: rank {r} handed over its batches out of order")
                    pending.append(_load(f"{base}.r{r}.b{i}"))
                    comm.send(i, dest=r, tag=TAKEN)
                if e % ROW_GROUP == 0 or e == stream.total:
                    writer.put(pending)
                    pending = []
    finally:
        writer.close()
    return writer.groups


def _claimed(output):
    """Rank 0: (the temporary name beside ``output``, its identity), made new (folder.claim), or the
    PlantedError to raise on every rank."""
    tmp = tmp_name(output, os.getpid())
    try:
        return tmp, claim(tmp)
    except PlantedError as exc:
        return exc


def export_table(comm, plan, output):
    """Write ``output`` from ``plan`` (collective). Returns the number of points."""
    global last_stats
    t0 = time.perf_counter()
    stream = Stream(plan.counts)
    lo, hi = stream.rank_rows(comm.size, comm.rank)
    reader = Reader(plan)
    try:
        final = schema(plan, plan.box)
        tmp = comm.bcast(_claimed(output) if comm.rank == 0 else None, root=0)
        if isinstance(tmp, PlantedError):        # a link planted at the name: refused on every rank
            raise PlantedError(str(tmp))
        tmp, ident = tmp
        if comm.rank != 0:
            _hand_over(comm, plan, stream, reader, batches(lo, hi), _wire(final), tmp)
            groups = None
        else:
            try:
                groups = _write_all(comm, plan, stream, reader, tmp, final, tmp)
                check_claim(tmp, ident)
                os.replace(tmp, output)
            finally:
                if os.path.lexists(tmp) and not os.path.islink(tmp):
                    os.remove(tmp)
    finally:
        reader.close()
    _lazy_barrier(comm)
    last_stats = {"points": stream.total, "row_groups": groups, "seconds": time.perf_counter() - t0,
                  "rank_rows": (lo, hi)}
    return stream.total


def run_export(comm, source, output, overwrite=False, params=None):
    """The whole ``readatl06 export`` command (docs/export.md), called on every rank alike.

    Every rank plans the same stream of points, converts its range of whole granules batch by
    batch, and rank 0 writes every row group into the one GeoParquet file (the same bytes for any
    number of ranks), under a temporary name renamed when complete.

    Args:
        comm: the communicator (mpi4py, or the one-rank stand-in of
            ``readatl06.parallel.world.world()``).
        source: a merged file (``MERGED.h5``) or an OUTDIR of per-beam files.
        output: the GeoParquet file to write (``-o TABLE.parquet``).
        overwrite: replace an existing ``output`` (``--overwrite``); never an input.
        params: the parameter-set key (``--parameters KEY``) of the per-beam files to export when
            an OUTDIR mixes several; None otherwise.

    Returns:
        int: the exit status, the same on every rank: 0 when the table was written, 1 when it was
        written without the granules of damaged per-beam files, 2 for a bad input or target found
        before any work (rank 0 printed the one-line reason).
    """
    t0 = time.perf_counter()
    try:
        plan, lock = make_plan(comm, source, output, overwrite, params)
    except UsageError as exc:
        if comm.rank == 0:
            print(f"readatl06 export: error: {exc}", file=sys.stderr)
        return 2
    if comm.rank == 0:
        for note in plan.notes:
            print(f"readatl06 export: note: {note}", file=sys.stderr)
    try:
        n = export_table(comm, plan, output)
    except PlantedError as exc:                 # raised on every rank alike
        if comm.rank == 0:
            print(f"readatl06 export: error: {exc}", file=sys.stderr)
        return 2
    finally:
        lock.release()
    if comm.rank == 0:
        what = f"{len(plan.files)} per-beam files" if plan.kind == "outdir" else "a merged file"
        print(f"readatl06 export: {n} points of {len(plan.granules)} granules ({what}) -> {output}: "
              f"{last_stats['row_groups']} row groups, {os.path.getsize(output) / 1e6:.1f} MB "
              f"in {time.perf_counter() - t0:.1f} s on {comm.size} rank(s)")
    return 1 if plan.damaged else 0
