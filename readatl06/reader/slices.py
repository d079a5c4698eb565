"""Slice reads: the along-track range of a beam that a subset can keep, found from as few decoded
latitude chunks as possible (latitude is monotonic along track outside the turn regions 4 and 11).

``span`` answers None whenever it is unsure — a turn region, latitude read by h5py, a decoded chunk
that is not finite and strictly monotonic, chunks out of order — and the caller then decodes the
beam's latitude, longitude and time whole. A fast path must never change a value: the reducer also
checks the returned range before it trusts it (``trusted``).
"""
import numpy as np

from readatl06.hdf5.chunks import chunk_count
from readatl06.reader.checks import invalid_points

TURN_REGIONS = (4, 11)


class _Probe:
    """Latitude chunks of one beam as a non-decreasing sequence ``key`` (lat, or -lat when the beam
    flies south), decoded on demand and checked."""

    def __init__(self, plan, index, sign):
        self.plan, self.index, self.sign = plan, index, sign
        self.seen = {}          # k -> (first key, last key)
        self.ok = True

    def key(self, k):
        values = self.plan.chunk("latitude", k)
        key = values if self.sign > 0 else -values
        if k not in self.seen:
            if not (np.all(np.isfinite(key)) and (key.size < 2 or np.all(np.diff(key) > 0))):
                self.ok = False
            self.seen[k] = (key[0], key[-1])
        return key

    def first_at_least(self, lo, strict):
        """The first element index whose key is >= lo (> lo when ``strict``), n when none."""
        index = self.index
        above = (lambda v: v > lo) if strict else (lambda v: v >= lo)
        left, right = 0, chunk_count(index)       # first chunk whose last key passes: binary search
        while left < right and self.ok:
            mid = (left + right) // 2
            if above(self.key(mid)[-1]):
                right = mid
            else:
                left = mid + 1
        if left == chunk_count(index) or not self.ok:
            return index.n
        key = self.key(left)
        return left * index.chunk + int(np.searchsorted(key, lo, side="right" if strict else "left"))

    def consistent(self):
        """Decoded chunks in order: each one's last key below the next decoded one's first."""
        ks = sorted(self.seen)
        return self.ok and all(self.seen[a][1] < self.seen[b][0] for a, b in zip(ks, ks[1:]))


def span(plan, n, band, region):
    """(i0, i1): the segments ``i0 <= i < i1`` hold every latitude of ``band`` = (south, north);
    i0 == i1 when none does. None when unsure (see the module text)."""
    if region in TURN_REGIONS or band is None:
        return None
    index = plan.chunked("latitude")
    if index is None or n < 2:
        return None
    last = chunk_count(index) - 1
    head, tail = plan.chunk("latitude", 0), plan.chunk("latitude", last)
    if not (np.isfinite(head[0]) and np.isfinite(tail[-1])) or head[0] == tail[-1]:
        return None
    sign = 1 if tail[-1] > head[0] else -1
    probe = _Probe(plan, index, sign)
    probe.key(0)
    probe.key(last)
    south, north = band
    lo, hi = (south, north) if sign > 0 else (-north, -south)
    i0 = probe.first_at_least(lo, strict=False)
    i1 = probe.first_at_least(hi, strict=True) if i0 < n else n
    if not probe.consistent():
        return None
    return i0, max(i0, i1)


def trusted(lat, lon, t):
    """Whether a slice read (with one point of context at each inner end) can stand for the whole
    beam: coordinates and times valid (finite and in range: no point the reducer would remove as
    invalid), latitude strictly monotonic. Then the along-track directions of its inner points
    equal those computed on the whole beam."""
    if invalid_points(lat, lon, t)[0].any():
        return False
    if lat.size < 2:
        return True
    d = np.diff(lat)
    return bool(np.all(d > 0) or np.all(d < 0))
