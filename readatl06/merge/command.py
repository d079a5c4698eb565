"""``readatl06 merge OUTDIR -o MERGED.h5``: the per-beam files of a reduce run merged into one
collectively written parallel-HDF5 file (the writer is :mod:`.writer`)."""
import os
import sys

from readatl06.atl06.schema import COMPRESSIONS
from readatl06.options import add_merge_memory

HELP = "merge per-beam files into one parallel-HDF5 file"


def add_arguments(p):
    p.add_argument("outdir", metavar="OUTDIR")
    p.add_argument("-o", "--output", required=True, metavar="MERGED.h5")
    p.add_argument("--overwrite", action="store_true", help="replace an existing MERGED.h5")
    p.add_argument("--parameters", metavar="KEY", help="merge only the per-beam files of this parameter "
                   "set (the key that a refusal lists) when OUTDIR mixes several")
    p.add_argument("--compression", choices=COMPRESSIONS, default="deflate",
                   help="the merged file: deflate (default) or none (contiguous, unfiltered)")
    add_merge_memory(p)


def run(args, comm):
    return merge_outdir(comm, args.outdir, args.output, args.overwrite, args.parameters,
                        memory=args.merge_memory, compression=args.compression)


def merge_outdir(comm, outdir, output, overwrite=False, params=None, memory=None, compression="deflate"):
    """``readatl06 merge OUTDIR -o MERGED.h5``: ranks open disjoint per-beam files for their metadata,
    then the merge streams the points from the files, every rank reading the slices of its chunks,
    round by round (``memory``: ``--merge-memory`` MB; ``compression``: deflate|none). Returns the
    exit status (2: bad target or mixed parameter sets, before any work)."""
    from readatl06.errors import UsageError
    from readatl06.merge.writer import merge_tracks, rounds_note
    from readatl06.outputs import folder as outdir_mod
    from readatl06.outputs.outdir import plan_outdir
    from readatl06.merge.redistribute import open_tracks
    from readatl06.parallel import schedule
    from readatl06.parallel.world import first_error
    plan, lock = None, None
    if comm.rank == 0:
        try:
            if not os.path.isdir(outdir):
                raise UsageError(f"{outdir}: no such folder")
            lock = outdir_mod.Lock(outdir, "merge")
            plan = plan_outdir(outdir, output, overwrite, params)
            if not plan[0]:
                print(f"readatl06 merge: no per-beam files (*_gtNx_A|D.h5) in {outdir}", file=sys.stderr)
        except UsageError as exc:
            print(f"readatl06 merge: error: {exc}", file=sys.stderr)
            plan = 2
    plan = comm.bcast(plan, root=0)
    try:
        if plan == 2 or not plan[0]:
            return 2 if plan == 2 else 1
        files, granules, sizes = plan
        row = {g.name: i for i, g in enumerate(granules)}
        held = []
        parameters = None
        opened, error = open_tracks([files[i] for i in schedule.assign(sizes, comm.size)[comm.rank]])
        error = first_error(comm, error)
        if error:
            if comm.rank == 0:
                print(f"readatl06 merge: error: {error}", file=sys.stderr)
            return 2
        for t in opened:
            parameters = parameters or t.attrs.get("parameters")
            held.append((row[t.granule.name], t))
        parameters = next((p for p in comm.allgather(parameters) if p), None)
        n = merge_tracks(comm, granules, held, output, parameters=parameters, memory=memory,
                         compression=compression)
        if comm.rank == 0:
            print(f"readatl06 merge: {n} points from {len(files)} files of {len(granules)} granules -> {output}"
                  f"{rounds_note()}")
        return 0
    finally:
        if lock is not None:
            lock.release()
