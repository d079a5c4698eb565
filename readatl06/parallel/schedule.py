"""Who reduces which granule (no MPI here). ``static``: a pure function of sizes and rank count
(largest-first onto the least loaded rank). ``dynamic``: the largest-first order, handed out one
granule at a time through a shared counter (:func:`readatl06.parallel.handout.shared_counter`) as ranks finish."""
import heapq


def assign(sizes, nranks):
    """Longest-processing-time-first: largest granule to the least loaded rank.

    Returns one list of indices (into ``sizes``) per rank, each in ascending index order.
    Deterministic: ties go to the lower index and the lower rank.
    """
    if nranks < 1:
        raise ValueError(f"nranks must be >= 1, got {nranks}")
    order = largest_first(sizes)
    heap = [(0, r) for r in range(nranks)]
    out = [[] for _ in range(nranks)]
    for i in order:
        load, r = heapq.heappop(heap)
        out[r].append(i)
        heapq.heappush(heap, (load + max(int(sizes[i]), 1), r))
    return [sorted(x) for x in out]


def largest_first(sizes):
    """The order in which a dynamic schedule hands out granules: largest first, ties by index."""
    return sorted(range(len(sizes)), key=lambda i: (-sizes[i], i))
