"""The granules ``--resume`` skips, as columns: every rank holds them (10^5 on a continent's
resubmission), so no path, dict or tuple is kept per file.

A skipped granule is a plan item (:class:`readatl06.reduce.items.Items`: its name, source and size)
and its outputs, each kept as the suffix after the granule's stem (one of a few shared strings) and
its size in bytes: ~60 bytes a granule and ~12 bytes an output on every rank, where a list of paths,
a dict of sizes and a list of (name, hex checksum) cost ~5 KB a granule. The recorded SHA-256 of
each output (32 raw bytes) stays on rank 0, which hands each rank only the share it checks
(:func:`readatl06.reduce.plan.check_resumed`).
"""
import array
import os

from readatl06.reduce.items import Items

_NONE = bytes(32)


class Resumed:
    """``len()`` the skipped granules, iteration their names (in plan order); ``outputs(k)``,
    ``paths(k)``, ``item(k)`` for the granule ``k``."""

    def __init__(self, outdir=""):
        self.outdir = outdir
        self._items = []                           # while adding: [(g, path, size, ())]; then Items
        self._texts, self._text_of = [], {}        # output suffixes after the stem
        self._out = array.array("i")               # per output: its suffix
        self._sizes = array.array("q")             # per output: bytes
        self._ends = array.array("q")              # per granule: end of its outputs
        self.digests = bytearray()                 # per output: 32 bytes (zeros: none recorded); rank 0

    def add(self, item, outputs, sizes, digests):
        """Granule ``item`` = (GranuleName, path, size, ...) with its ``outputs`` (file names that
        start with its stem), their ``sizes`` and hex ``digests`` (None where none is recorded; no
        list: none kept, as on the ranks other than 0)."""
        g, path, size = item[:3]
        stem = g.stem
        self._items.append((g, path, size, ()))
        for name, nbytes in zip(outputs, sizes):
            text = name[len(stem):]
            if text not in self._text_of:
                self._text_of[text] = len(self._texts)
                self._texts.append(text)
            self._out.append(self._text_of[text])
            self._sizes.append(nbytes)
        for digest in digests or ():
            self.digests += bytes.fromhex(digest) if digest else _NONE
        self._ends.append(len(self._out))

    def done(self):
        """No more granules: the items become columns."""
        if isinstance(self._items, list):
            self._items = Items(self._items)
        return self

    def __getstate__(self):                    # what travels to every rank: not the checksums
        state = dict(self.__dict__, digests=bytearray())
        state["_text_of"] = {}
        return state

    def __len__(self):
        return len(self._ends)

    def __iter__(self):
        items = self.done()._items
        return (items.name(k) for k in range(len(items)))

    def _range(self, k):
        return (self._ends[k - 1] if k else 0), self._ends[k]

    def outputs(self, k):
        """[(file name, bytes)] of granule ``k``'s outputs."""
        stem = self.done()._items.name(k).rsplit(".", 1)[0]
        a, b = self._range(k)
        return [(stem + self._texts[self._out[j]], self._sizes[j]) for j in range(a, b)]

    def paths(self, k):
        return [os.path.join(self.outdir, name) for name, _ in self.outputs(k)]

    def granule_bytes(self):
        """Bytes of each granule's outputs (what the merge's readers are balanced by)."""
        out, start = [], 0
        for end in self._ends:
            out.append(sum(self._sizes[start:end]))
            start = end
        return out

    def item(self, k):
        """Granule ``k`` as a plan item, its outputs as its files in OUTDIR (to be redone)."""
        g, path, size, _ = self.done()._items[k]
        return g, path, size, [name for name, _ in self.outputs(k)]

    def share(self, rank, nranks):
        """Rank 0: the checksums of the granules ``k = rank, rank + nranks, ...``, in that order."""
        parts = []
        for k in range(rank, len(self), nranks):
            a, b = self._range(k)
            parts.append(bytes(self.digests[32 * a:32 * b]))
        return b"".join(parts)

    def checks(self, k, share, at):
        """[(path, hex checksum or None)] of granule ``k``'s outputs from ``share`` (bytes of
        :meth:`share`) at output position ``at``; and the position after them."""
        out = []
        for path in self.paths(k):
            d = share[32 * at:32 * at + 32]
            out.append((path, None if d == _NONE else d.hex()))
            at += 1
        return out, at

    def without(self, ks):
        """A copy without the granules ``ks`` (their checksums too)."""
        drop, out = set(ks), Resumed(self.outdir)
        for k in range(len(self)):
            if k in drop:
                continue
            a, b = self._range(k)
            names, sizes = zip(*self.outputs(k)) if b > a else ((), ())
            digests = [None if (d := bytes(self.digests[32 * j:32 * j + 32])) == _NONE else d.hex()
                       for j in range(a, b)] if self.digests else None
            out.add(self.done()._items[k], names, sizes, digests)
        return out.done()
