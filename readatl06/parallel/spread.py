"""Work spread over the ranks, results on every rank: each item to one rank (round robin), every rank
gets every result in item order (one allgather; :func:`spread_records` for tables: compact
records), or every rank raises the same error."""


def spread(comm, items, fn, catch=()):
    """``[fn(item) for item in items]`` with the items spread over the ranks of ``comm``; every rank
    returns the whole list. An exception of a type in ``catch`` on any rank is raised on every rank
    (the first in item order, as its type with its text); a rank stops at its first one."""
    mine, error = [], None
    for i in range(comm.rank, len(items), comm.size):
        try:
            mine.append((i, fn(items[i])))
        except catch as exc:
            error = (i, type(exc), str(exc))
            break
    from readatl06.parallel.exchange import allgather_objects
    every = allgather_objects(comm, [(mine, error)])        # bytes over Allgatherv: no 2^31 limit
    errors = sorted((e for _, e in every if e), key=lambda e: e[0])
    if errors:
        raise errors[0][1](errors[0][2])
    out = [None] * len(items)
    for got, _ in every:
        for i, v in got:
            out[i] = v
    return out


def decided(comm, fn, catch=()):
    """``fn()`` on rank 0, its result broadcast to every rank; an exception of a type in ``catch``
    raised there is raised on every rank (as its type, with its text)."""
    result = None
    if comm.rank == 0:
        try:
            result = ("ok", fn())
        except catch as exc:
            result = ("error", type(exc), str(exc))
    result = comm.bcast(result, root=0) if comm.size > 1 else result
    if result[0] == "error":
        raise result[1](result[2])
    return result[1]


def spread_records(comm, items, fn, dtype, catch=()):
    """:func:`spread` for results that are rows of a table: ``fn(item)`` returns ``(row, obj)``, ``row``
    a tuple of the fields of ``dtype`` and ``obj`` anything picklable that many items share (their
    metadata). Every rank returns ``(rows, objs, which)`` in item order: ``rows`` one array of
    ``dtype``, ``objs`` the distinct objects, ``which[i]`` the index of item i's in ``objs``. What
    travels (``parallel.exchange``): each rank's rows as one ``Allgatherv`` of ``dtype``, its
    distinct objects pickled once each (not once per item), and the first error; no message grows
    with P² or with other ranks' items. Errors as in :func:`spread` (the first in item order)."""
    import pickle

    import numpy as np

    from readatl06.parallel.exchange import allgather_bytes, allgather_objects, allgatherv
    idx = range(comm.rank, len(items), comm.size)
    rows = np.zeros(len(idx), dtype)
    which = np.zeros(len(idx), np.dtype([("item", "<i8"), ("obj", "<i8")]))
    seen, error, done = {}, None, 0
    for i in idx:
        try:
            row, obj = fn(items[i])
        except catch as exc:
            error = (i, type(exc), str(exc))
            break
        rows[done], which[done] = row, (i, seen.setdefault(pickle.dumps(obj, protocol=5), len(seen)))
        done += 1
    errors = sorted((e for e in allgather_objects(comm, [error]) if e), key=lambda e: e[0])
    if errors:
        raise errors[0][1](errors[0][2])
    rows, counts = allgatherv(comm, rows[:done])
    which, _ = allgatherv(comm, which[:done])
    local = list(seen)
    objs = [pickle.loads(b) for b in allgather_bytes(comm, local)]
    ndistinct, _ = allgatherv(comm, np.array([len(local)], np.int64))
    base = (np.cumsum(ndistinct) - ndistinct)[np.repeat(np.arange(counts.size), counts)]
    order = np.argsort(which["item"], kind="stable")
    return rows[order], objs, (which["obj"] + base)[order]
