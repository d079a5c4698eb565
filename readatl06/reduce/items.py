"""The plan's granules as columns (every rank holds the plan: 10^5 granules on a continent)."""
import array
import collections.abc

from readatl06.atl06.names import parse_name


class Items(collections.abc.Sequence):
    """The granules to reduce, in order: ``items[i]`` is ``(GranuleName, path, size, [its files already
    in OUTDIR])``. Every rank holds the plan (10^5 granules on a continent), so it is kept as columns:
    the file names in one string, each path as one of a few folders (or URL prefixes) and the name,
    the sizes in an array, and the files in OUTDIR only where there are some; ~70 bytes a granule
    instead of ~540 as tuples. An item's GranuleName is parsed again from its name when asked for."""

    def __init__(self, items=()):
        self._text, self._ends, self._sizes = [], array.array("q"), array.array("q")
        self._folder, self._folders, self._folder_of = array.array("i"), [], {}
        self._odd, self._on_disk = {}, {}        # i -> a path that does not end in "/" + name; -> files
        for item in items:
            self._append(item)
        self._text = ["".join(self._text)]

    def _append(self, item):
        g, path, size, on_disk = item
        i = len(self._sizes)
        self._text.append(g.name)
        self._ends.append((self._ends[-1] if self._ends else 0) + len(g.name))
        self._sizes.append(size)
        folder = path[:-len(g.name)] if path.endswith("/" + g.name) else None
        if folder is None:
            self._odd[i], folder = path, ""
        if folder not in self._folder_of:
            self._folder_of[folder] = len(self._folders)
            self._folders.append(folder)
        self._folder.append(self._folder_of[folder])
        if on_disk:
            self._on_disk[i] = list(on_disk)

    def __len__(self):
        return len(self._sizes)

    def name(self, i):
        return self._text[0][self._ends[i - 1] if i else 0:self._ends[i]]

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        name = self.name(i)
        path = self._odd.get(i) or self._folders[self._folder[i]] + name
        return parse_name(name), path, self._sizes[i], self._on_disk.get(i, [])

    def sizes(self):
        return list(self._sizes)

    def __eq__(self, other):
        return list(self) == list(other)
