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
    p.add_argument("--append", action="store_true", help="add to MERGED.h5 the granules new since it was "
                   "written (a new part in MERGED.h5.parts/, MERGED.h5 becomes their index; docs/merge.md)")
    p.add_argument("--parameters", metavar="KEY", help="merge only the per-beam files of this parameter "
                   "set (the key that a refusal lists) when OUTDIR mixes several")
    p.add_argument("--compression", choices=COMPRESSIONS, default="deflate",
                   help="the merged file: deflate (default) or none (contiguous, unfiltered)")
    add_merge_memory(p)


def run(args, comm):
    if args.append and args.overwrite:
        from readatl06.errors import UsageError
        raise UsageError("--append and --overwrite: choose one (--overwrite merges everything again)")
    return merge_outdir(comm, args.outdir, args.output, args.overwrite, args.parameters,
                        memory=args.merge_memory, compression=args.compression, append=args.append)


def merge_outdir(comm, outdir, output, overwrite=False, params=None, memory=None, compression="deflate",
                 append=False):
    """``readatl06 merge OUTDIR -o MERGED.h5``: ranks open disjoint per-beam files for their metadata,
    then the merge streams the points from the files, every rank reading the slices of its chunks,
    round by round (``memory``: ``--merge-memory`` MB; ``compression``: deflate|none). Only the
    granules with a complete record are merged (:func:`readatl06.outputs.outdir.read_outdir`), each
    file checked against its recorded checksum first. Returns the exit status (2: bad target or
    mixed parameter sets, before any work; 1: no file to merge, or a damaged file's granule left out).
    ``append``: an existing ``output`` is extended (:mod:`readatl06.merge.append`), not replaced."""
    from readatl06.atl06.names import parse_name
    from readatl06.errors import UsageError
    from readatl06.merge.writer import merge_tracks, rounds_note
    from readatl06.outputs import folder, locks
    from readatl06.outputs.outdir import BEAM_FILES_SHOWN, plan_outdir, verify_all
    from readatl06.merge.redistribute import open_tracks
    from readatl06.merge.sources import Sources
    from readatl06.parallel import schedule
    from readatl06.parallel.exchange import bcast_object
    from readatl06.parallel.world import first_error
    view, held, extend = None, locks.Held(), False
    if comm.rank == 0:
        try:
            if not os.path.isdir(outdir):
                raise UsageError(f"{outdir}: no such folder")
            held.append(locks.Lock(outdir, "merge", shared=True))
            extend = append and os.path.lexists(output)
            view = plan_outdir(outdir, output, overwrite or extend, params, held, "merge")
            folder.check_space("-o", output, sum(view.sizes) // folder.SPACE_SHARE)
            for note in ([held[0].note] if held[0].note else []) + view.notes:
                print(f"readatl06 merge: note: {note}", file=sys.stderr)
        except UsageError as exc:
            print(f"readatl06 merge: error: {exc}", file=sys.stderr)
            view = 2
    view = bcast_object(comm, view)          # the file list of 10^6 files: bytes in pieces below 2^31
    try:
        if view == 2:
            return 2
        if comm.bcast(extend if comm.rank == 0 else None, root=0):
            from readatl06.merge.append import append_product
            return append_product(comm, view, output, memory=memory, compression=compression)
        try:
            damaged = verify_all(comm, view)
        except UsageError as exc:      # no manifest: a file not readatl06's, mixed parameter sets (every rank)
            if comm.rank == 0:
                print(f"readatl06 merge: error: {exc}", file=sys.stderr)
            return 2
        if comm.rank == 0:
            for line in damaged:
                print(f"readatl06 merge: error: {line}", file=sys.stderr)
        if not view.files:
            if comm.rank == 0:
                print(f"readatl06 merge: no per-beam files ({BEAM_FILES_SHOWN}) to merge in {outdir}", file=sys.stderr)
            return 1
        files, sizes = view.files, view.sizes
        granules = sorted(parse_name(n) for n in view.granules)
        row = {g.name: i for i, g in enumerate(granules)}
        held_tracks, found = Sources(), []

        def keep(t):
            if not found and t.attrs.get("parameters"):
                found.append(t.attrs["parameters"])
            held_tracks.add(row[t.granule.name], t)
        _, error = open_tracks([files[i] for i in schedule.assign(sizes, comm.size)[comm.rank]], keep=keep)
        error = first_error(comm, error)
        if error:
            if comm.rank == 0:
                print(f"readatl06 merge: error: {error}", file=sys.stderr)
            return 2
        parameters = next((p for p in comm.allgather(found[0] if found else None) if p), None)
        n = merge_tracks(comm, granules, held_tracks, output, parameters=parameters, memory=memory,
                         compression=compression)
        if comm.rank == 0:
            from readatl06.merge.append import drop_parts
            drop_parts(output)                 # the parts of an appended product it replaced
            print(f"readatl06 merge: {n} points from {len(files)} files of {len(granules)} granules -> {output}"
                  f"{rounds_note()}")
        return 1 if damaged else 0
    finally:
        held.release()
