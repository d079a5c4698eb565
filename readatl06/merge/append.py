"""``merge OUTDIR -o M.h5 --append`` (and ``reduce ... --merge M.h5 --append``): the granules of OUTDIR
that M.h5 lacks written as one new part, and M.h5 replaced by an index file mapping its parts
(docs/merge.md "Appending"; the index: :mod:`readatl06.merge.index`).

The plan (rank 0, :func:`plan`): the product's granules are OUTDIR's complete granules in (time, name)
order, as a full merge would take them. A part of M.h5 is kept when every granule of it that is still
in OUTDIR keeps its row; its granules no longer in OUTDIR (superseded by a newer release, or gone) are
simply not mapped. Every other granule — the new ones, and those of a part whose rows would shift —
is written in the new part, with the rows of the whole product in its ``granule_index``. A plain
M.h5 becomes the first part without copying (a hard link in ``M.h5.parts/``).

Safety: nothing M.h5 reads is changed or removed before the new index is renamed over it; the new
part and the index are written under temporary names; the parts no longer mapped are removed after
the rename. A kill at any moment leaves M.h5 whole (the previous index and its parts, or the plain
file), and leftovers of a killed run are removed by the next one."""
import dataclasses
import os
import re
import shutil
import sys

from readatl06.errors import ReadATL06Error, UsageError
from readatl06.outputs.merged import PART_NAME, parts_folder

PART_RE = re.compile(r"part-(\d+)\.h5")


@dataclasses.dataclass
class Plan:
    granules: list          # GranuleName of the product, in order
    parts: list             # kept parts: relative names (None: the plain M.h5, linked as ``first``)
    members: list           # per kept part: [(name, new row or -1, counts)]
    write: list             # names of the granules of the new part, in order
    first: str              # the plain M.h5's part name, or None
    new: str                # the new part's name (relative to M.h5's folder)
    parameters: str
    notes: list
    changed: bool           # anything to do


def _rel(output, name):
    return f"{os.path.basename(os.path.abspath(output))}.parts/{name}"


def _numbers(folder, parts):
    taken = [int(m[1]) for n in (os.listdir(folder) if os.path.isdir(folder) else [])
             if (m := PART_RE.fullmatch(n))]
    taken += [int(m[1]) for p in parts if p and (m := PART_RE.fullmatch(os.path.basename(p)))]
    return max(taken, default=-1) + 1


def plan(view, output):
    """Rank 0: the :class:`Plan` of appending OUTDIR's complete granules (``view``) to ``output``."""
    from readatl06.atl06.names import parse_name
    from readatl06.outputs.merged import read_product
    product = read_product(output)
    granules = sorted(parse_name(n) for n in view.granules)
    row = {g.name: i for i, g in enumerate(granules)}
    kept, members, rebuilt, notes = [], [], [], []
    for p, ms in enumerate(product.members):
        still = [(name, r) for name, r, _ in ms if r >= 0 and name in row]
        if not still:
            continue
        if all(row[name] == r for name, r in still):
            kept.append(product.parts[p])
            members.append([(name, row[name] if r >= 0 and name in row else -1, n) for name, r, n in ms])
        else:
            rebuilt.append((product.parts[p] or output, len(still)))
    held = {name for ms in members for name, r, _ in ms if r >= 0}
    write = [g.name for g in granules if g.name not in held]
    gone = [g for g in product.granules if g not in row]
    if gone:
        notes.append(f"{len(gone)} granules of {output} are no longer in {view.folder} (superseded by a newer "
                     f"release or revision, or removed) and leave it: {' '.join(gone[:3])}{' ...' * (len(gone) > 3)}")
    for part, n in rebuilt:
        notes.append(f"{part}: the rows of its {n} granules would change (a granule before them added or "
                     "removed); they are written again in the new part")
    folder = parts_folder(output)
    number = _numbers(folder, product.parts)
    first = None
    if None in kept:
        first = next((n for n in sorted(os.listdir(folder)) if PART_RE.fullmatch(n)
                      and os.path.samefile(os.path.join(folder, n), output)), None) if os.path.isdir(folder) else None
        if first is None:
            first, number = PART_NAME.format(number), number + 1
        kept = [_rel(output, first) if p is None else p for p in kept]
    changed = bool(write or gone or rebuilt)
    return Plan(granules, kept, members, write, first, _rel(output, PART_NAME.format(number)),
                product.parameters, notes, changed)


def _link_first(output, name):
    """The plain M.h5 as the part ``name``: a second name of the same file (a copy where the file
    system has no hard links); the plain file itself is not touched."""
    from readatl06.outputs.folder import open_new
    target = os.path.join(parts_folder(output), name)
    if os.path.lexists(target):
        return
    try:
        os.link(output, target, follow_symlinks=False)
    except OSError:
        fd = open_new(target)
        with open(output, "rb") as src, os.fdopen(fd, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 24)


def _prepare(output, the_plan):
    """Rank 0: the parts folder (made, checked), leftovers of killed runs removed, the plain M.h5 linked."""
    from readatl06.outputs.folder import planted
    from readatl06.outputs.locks import remove_leftovers
    folder = parts_folder(output)
    if os.path.islink(folder) or (os.path.lexists(folder) and not os.path.isdir(folder)):
        raise planted(folder)
    os.makedirs(folder, exist_ok=True)
    remove_leftovers(folder)
    if the_plan.first:
        _link_first(output, the_plan.first)


def _bcast_error(comm, error):
    """Rank 0's error (or None) on every rank: rank 0 raises it, the others an ElsewhereError."""
    from readatl06.parallel.world import ElsewhereError, cause
    failed = comm.bcast(None if error is None else cause(error), root=0) if comm.size > 1 else None
    if error is not None:
        raise error
    if failed:
        raise ElsewhereError(f"rank 0 failed appending: {failed}")


def _described(comm, folder, parts, members):
    """Rank 0's :func:`describe_parts` of the parts: (specs on rank 0, clashes on every rank); its
    error raised on every rank (:func:`_bcast_error`)."""
    from readatl06.merge.index import describe_parts
    specs = clashes = error = None
    if comm.rank == 0:
        try:
            specs, clashes = describe_parts(folder, parts, members)
        except (ReadATL06Error, OSError) as exc:
            error = exc
    _bcast_error(comm, error)
    return specs, (comm.bcast(clashes, root=0) if comm.size > 1 else clashes)


def _write_part(comm, view, names, rows, the_plan, output, memory, compression):
    """Collective: the per-beam files of ``names`` (verified, opened where the ranks share them) merged
    into the new part with the product's ``rows``. Returns (status, [(name, row, counts)])."""
    import numpy as np
    from readatl06.atl06.names import parse_name
    from readatl06.merge import writer
    from readatl06.merge.layout import GROUPS
    from readatl06.merge.redistribute import open_tracks
    from readatl06.outputs.outdir import BEAM_FILE_RE, verify_all
    from readatl06.parallel import schedule
    from readatl06.parallel.world import first_error
    granules = [parse_name(n) for n in names]
    stems = {g.stem for g in granules}
    keep = [i for i, p in enumerate(view.files) if BEAM_FILE_RE.fullmatch(os.path.basename(p))["stem"] in stems]
    sub = dataclasses.replace(view, files=[view.files[i] for i in keep], sizes=[view.sizes[i] for i in keep],
                              granules=list(names))
    try:
        damaged = verify_all(comm, sub)          # only the files of the new part are read
    except UsageError as exc:                    # no manifest: a file not readatl06's, mixed parameter sets
        if comm.rank == 0:
            print(f"readatl06 merge: error: {exc}", file=sys.stderr)
        return 2, None
    if damaged:
        if comm.rank == 0:
            for line in damaged:
                print(f"readatl06 merge: error: {line.split(';')[0]}; {output} is left as it was", file=sys.stderr)
        return 1, None
    local = {g.name: i for i, g in enumerate(granules)}
    opened, error = open_tracks([sub.files[i] for i in schedule.assign(sub.sizes, comm.size)[comm.rank]])
    error = first_error(comm, error)
    if error:
        if comm.rank == 0:
            print(f"readatl06 merge: error: {error}", file=sys.stderr)
        return 2, None
    parameters = next((p for p in comm.allgather(next((t.attrs.get("parameters") for t in opened), None)) if p),
                      None)
    if parameters is not None and str(parameters) != the_plan.parameters:
        if comm.rank == 0:
            print(f"readatl06 merge: error: {output} was merged with parameters {the_plan.parameters}, the "
                  f"per-beam files in {view.folder} have {parameters}; expected the same (merge them in full "
                  "with --overwrite)", file=sys.stderr)
        return 2, None
    held = [(local[t.granule.name], t) for t in opened]
    path = os.path.join(os.path.dirname(os.path.abspath(output)), the_plan.new)
    writer.merge_tracks(comm, granules, held, path, parameters=the_plan.parameters, memory=memory,
                        compression=compression, rows=rows)
    counts = np.zeros((len(granules), len(GROUPS)), np.int64)
    for k, (local_rows, n) in enumerate(writer.last_stats["counts"]):
        counts[local_rows, k] = n
    return 0, [(g.name, rows[i], counts[i]) for i, g in enumerate(granules)]


def append_product(comm, view, output, memory=None, compression="deflate"):
    """Collective (``view`` the same on every rank, ``output`` reserved by rank 0): append; returns
    the exit status (0 done or nothing new, 1 a damaged per-beam file, 2 a refusal)."""
    from readatl06.merge.index import write_index
    from readatl06.outputs.folder import check_claim, crash_point, tmp_name
    the_plan = error = None
    if comm.rank == 0:
        try:
            the_plan = plan(view, output)
            for note in the_plan.notes:
                print(f"readatl06 merge: note: {note}", file=sys.stderr)
            if the_plan.changed and the_plan.granules:
                _prepare(output, the_plan)
        except (ReadATL06Error, OSError) as exc:
            print(f"readatl06 merge: error: {exc}", file=sys.stderr)
            the_plan = 2
    the_plan = comm.bcast(the_plan, root=0) if comm.size > 1 else the_plan
    if the_plan == 2:
        return 2
    if not the_plan.granules:
        if comm.rank == 0:
            print(f"readatl06 merge: error: no complete granule in {view.folder}; {output} is left as it was",
                  file=sys.stderr)
        return 1
    if not the_plan.changed:
        if comm.rank == 0:
            print(f"readatl06 merge: nothing new in {view.folder}: {output} already holds its "
                  f"{len(the_plan.granules)} granules", file=sys.stderr)
        return 0
    row = {g.name: i for i, g in enumerate(the_plan.granules)}
    parts, members = list(the_plan.parts), list(the_plan.members)
    if the_plan.write:
        status, new = _write_part(comm, view, the_plan.write, [row[n] for n in the_plan.write], the_plan,
                                  output, memory, compression)
        if status:
            return status
        parts.append(the_plan.new)
        members.append(new)
    folder = os.path.dirname(os.path.abspath(output))
    specs, clashes = _described(comm, folder, parts, members)
    if clashes:                 # dtypes or fill values differ: the whole product as one part
        if comm.rank == 0:
            print(f"readatl06 merge: note: {clashes[0]}: a variable's dtype or fill value differs from the "
                  f"product's (another release); the whole product is merged again as one part", file=sys.stderr)
        names = [g.name for g in the_plan.granules]
        nxt = _numbers(os.path.join(folder, os.path.dirname(the_plan.new)), parts) if comm.rank == 0 else None
        nxt = comm.bcast(nxt, root=0) if comm.size > 1 else nxt
        the_plan = dataclasses.replace(the_plan, new=_rel(output, PART_NAME.format(nxt)))
        status, new = _write_part(comm, view, names, list(range(len(names))), the_plan, output, memory, compression)
        if status:
            return status
        parts, members = [the_plan.new], [new]
        specs, _ = _described(comm, folder, parts, members)
    if comm.rank == 0:
        tmp = tmp_name(output, f"{os.getpid()}")
        try:
            ident = write_index(tmp, the_plan.granules, the_plan.parameters, parts, members, specs)
            crash_point("append-before-rename")
            check_claim(tmp, ident)
            os.replace(tmp, output)
        except BaseException as exc:
            if os.path.lexists(tmp) and not os.path.islink(tmp):
                os.remove(tmp)
            error = exc if isinstance(exc, Exception) else None
            if error is None:
                raise
        if error is None:
            _remove_unmapped(output, parts)
            n_new = len(the_plan.write) if not clashes else len(the_plan.granules)
            what = f"{n_new} granules written in {the_plan.new}" if n_new else "no granule written"
            print(f"readatl06 merge: {what}; {output} holds {len(the_plan.granules)} granules in "
                  f"{len(parts)} parts", file=sys.stderr)
    _bcast_error(comm, error)
    return 0


def _remove_unmapped(output, parts):
    """After the rename: the part files of the folder the new index does not map (replaced parts,
    leftovers of a killed append)."""
    folder = parts_folder(output)
    mapped = {os.path.basename(p) for p in parts}
    for name in os.listdir(folder):
        if PART_RE.fullmatch(name) and name not in mapped:
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not os.path.islink(path):
                os.remove(path)



def drop_parts(output):
    """Rank 0, after a full merge renamed a plain file to ``output``: the parts of the appended product
    it replaced (``output.parts/``) are removed, and the folder when nothing else is in it."""
    folder = parts_folder(output)
    if not os.path.isdir(folder) or os.path.islink(folder):
        return
    _remove_unmapped(output, [])
    if not os.listdir(folder):
        os.rmdir(folder)
