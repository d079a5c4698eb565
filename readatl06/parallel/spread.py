"""Work spread over the ranks, results on every rank: each item to one rank (round robin), every rank
gets every result in item order (one allgather), or every rank raises the same error."""


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
    every = comm.allgather((mine, error)) if comm.size > 1 else [(mine, error)]
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
