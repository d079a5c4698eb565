"""Who reduces which granule: a pure function of sizes and rank count (no MPI here)."""
import heapq


def assign(sizes, nranks):
    """Longest-processing-time-first: largest granule to the least loaded rank.

    Returns one list of indices (into ``sizes``) per rank, each in ascending index order.
    Deterministic: ties go to the lower index and the lower rank.
    """
    if nranks < 1:
        raise ValueError(f"nranks must be >= 1, got {nranks}")
    order = sorted(range(len(sizes)), key=lambda i: (-sizes[i], i))
    heap = [(0, r) for r in range(nranks)]
    out = [[] for _ in range(nranks)]
    for i in order:
        load, r = heapq.heappop(heap)
        out[r].append(i)
        heapq.heappush(heap, (load + max(int(sizes[i]), 1), r))
    return [sorted(x) for x in out]
