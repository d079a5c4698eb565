"""Datasets and attributes created with HDF5's low-level calls: the objects h5py's ``create_dataset``
and ``attrs[...] =`` make, with property lists and types made once per process. Deflated datasets
are chunked with HDF5's standard shuffle + deflate filters declared, their chunks shuffled and
deflated here (ISA-L) and stored with direct chunk writes."""
import functools

import h5py
import numpy as np

from readatl06.hdf5.codecs import DEFLATE_LEVEL, encode
from readatl06.hdf5.image import raw_dcpl

CHUNK = 65536          # elements per chunk of a deflated dataset


SMALL = 4096           # datasets up to this size stay contiguous (chunk index and filters cost more)


class _Plists:
    """Creation property lists and HDF5 types, made once per process and reused for every file. The
    low-level calls make the same objects h5py's ``create_dataset`` and ``attrs[...] =`` make (no
    object times, vlen UTF-8 string attributes), at well under half the cost per file."""

    def __init__(self):
        self.types = {}                        # numpy dtype -> (file type, memory type)
        self.plain = self._dcpl()
        self.raw = raw_dcpl(self._dcpl())     # contiguous, its bytes placed by the caller (hdf5/image.py)
        self.deflate = {}                      # chunk length -> dcpl with shuffle + deflate
        self.string = self.type_of(h5py.string_dtype())     # vlen UTF-8 str, and its memory type
        self.scalar = h5py.h5s.create(h5py.h5s.SCALAR)

    @staticmethod
    def _dcpl():
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_obj_track_times(False)
        return dcpl

    def deflated(self, chunk):
        if chunk not in self.deflate:
            if len(self.deflate) > 64:
                self.deflate.clear()
            dcpl = self._dcpl()
            dcpl.set_chunk((chunk,))
            dcpl.set_shuffle()
            dcpl.set_deflate(DEFLATE_LEVEL)
            self.deflate[chunk] = dcpl
        return self.deflate[chunk]

    def type_of(self, dtype):
        if dtype not in self.types:
            self.types[dtype] = (h5py.h5t.py_create(dtype, logical=True), h5py.h5t.py_create(dtype))
        return self.types[dtype]


@functools.cache
def plists():
    return _Plists()


def write_attr(oid, name, value):
    """One attribute on an open object id, as h5py's ``attrs[name] = value`` writes it."""
    pl = plists()
    if isinstance(value, str):
        ftype, mtype = pl.string
        attr = h5py.h5a.create(oid, name.encode(), ftype, pl.scalar)
        attr.write(np.array(value, dtype=h5py.string_dtype()), mtype=mtype)
        return
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        obj = h5py.Dataset(oid) if isinstance(oid, h5py.h5d.DatasetID) else h5py.Group(oid)
        obj.attrs[name] = value
        return
    ftype, mtype = pl.type_of(arr.dtype)
    space = pl.scalar if arr.ndim == 0 else h5py.h5s.create_simple(arr.shape)
    h5py.h5a.create(oid, name.encode(), ftype, space).write(np.ascontiguousarray(arr), mtype=mtype)


def write_dataset(parent, name, values, attrs, compression="deflate", image=None):
    """One 1-D dataset with its attributes under the open id ``parent``; deflated chunk by chunk
    (shuffle + ISA-L here, direct chunk writes) when compressed and large enough. ``image``: the
    file's FileImage (hdf5/image.py), where a contiguous dataset's values are placed, not written,
    when numeric (the file type is made from the array's dtype: the bytes are the same)."""
    pl = plists()
    values = np.ascontiguousarray(values)
    n = values.size
    ftype, mtype = pl.type_of(values.dtype)
    space = h5py.h5s.create_simple((n,))
    if compression == "none" or n <= SMALL:
        place = image is not None and n and values.dtype.kind in "iuf"   # stored as in memory (the type is made from its dtype)
        dset = h5py.h5d.create(parent, name.encode(), ftype, space, dcpl=pl.raw if place else pl.plain)
        if place:
            image.place(dset.get_offset(), values)
        elif n:
            dset.write(h5py.h5s.ALL, h5py.h5s.ALL, values, mtype=mtype)
    else:
        chunk = min(n, CHUNK)
        dset = h5py.h5d.create(parent, name.encode(), ftype, space, dcpl=pl.deflated(chunk))
        for start in range(0, n, chunk):
            dset.write_direct_chunk((start,), encode(values[start:start + chunk], chunk))
    for key, value in attrs.items():
        write_attr(dset, key, value)
    return dset
