"""Write one track to ``OUTDIR/<granule stem>_<beam>_<A|D>.h5`` under a temporary name, then rename.

With ``compression="deflate"`` (the default) datasets of more than SMALL elements are chunked with
HDF5's standard shuffle + deflate filters declared, and their chunks are shuffled (numpy) and
deflated (ISA-L) here and stored with direct chunk writes: every HDF5 reader decodes them, at a
fraction of the time HDF5's own zlib takes. ``"none"`` writes every dataset contiguous, unfiltered.

Files are netCDF-4/CF-1.10 as well (docs/output.md): every dataset is attached to one dimension scale
without a variable (``obs``, made as netCDF-C and h5netcdf make one), so that xarray opens the file
with no arguments.
"""
import dataclasses
import os

import h5py
import numpy as np

from readatl06.errors import GranuleError
from readatl06.hdf5.attrs import decoded
from readatl06.hdf5.datasets import write_attr, write_dataset
from readatl06.hdf5.dimensions import DIMENSION_ATTRS, attach_dimension, is_dimension, make_dimension
from readatl06.atl06.schema import COMPRESSIONS, CONVENTIONS, DIMENSION, FEATURE_TYPE

CF_FILE_ATTRS = {"Conventions": CONVENTIONS, "featureType": FEATURE_TYPE}


def output_path(outdir, track):
    return os.path.join(outdir, track.stem + ".h5")


def _tmp(path):
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.tmp-{os.getpid()}")


def _write_error(track, path, exc):
    """A clean one-line error for a failed write: OSError with the errno (the runner stops on a full
    disk), else GranuleError; never HDF5's multi-line text."""
    if isinstance(exc, OSError) and exc.errno:
        return OSError(exc.errno, os.strerror(exc.errno), os.path.basename(path))
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return GranuleError(track.granule.name, f"cannot write {os.path.basename(path)}: {first}")


def write_track(track, outdir, overwrite=False, compression="deflate"):
    """Write ``track``; returns the final path. Never leaves a partial or temporary file behind."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression {compression!r}: expected one of {', '.join(COMPRESSIONS)}")
    path = output_path(outdir, track)
    if os.path.exists(path) and not overwrite:
        raise GranuleError(track.granule.name, f"output {os.path.basename(path)} exists "
                                               "(use --overwrite to replace it or --resume to skip done granules)")
    # The file is built in memory (HDF5 core driver, no backing store) and its image written with
    # plain os calls: a full disk or any other write error is one clean OSError here, never a
    # failure inside HDF5 (whose error path on ENOSPC crashed the process when the file was closed).
    with h5py.File(f"{track.stem}.h5", "w", driver="core", backing_store=False) as f:
        for key, value in {**track.attrs, **CF_FILE_ATTRS}.items():
            write_attr(f.id, key, value)
        dsets = [write_dataset(f.id, name, values, track.var_attrs[name], compression)
                 for name, values in track.data.items()]
        dim = make_dimension(f.id, DIMENSION, len(track))
        for dset in dsets:                  # last: attaching to finished datasets is the cheapest
            attach_dimension(dset, dim)
        f.flush()
        image = f.id.get_file_image()
    tmp = _tmp(path)
    try:
        with open(tmp, "wb") as fh:
            fh.write(image)
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(exc, OSError):
            raise _write_error(track, path, exc) from None
        raise
    return path


def write_tracks(tracks, outdir, overwrite=False, compression="deflate"):
    """Write all tracks of a granule; on failure remove the ones already written (all or nothing)."""
    written = []
    try:
        for t in tracks:
            written.append(write_track(t, outdir, overwrite, compression))
    except BaseException:
        for p in written:
            os.remove(p)
        raise
    return written


@dataclasses.dataclass
class TrackFile:
    """A track in a per-beam file: what the merge needs to plan without reading its points."""

    path: str
    granule: object        # names.GranuleName
    beam: str
    direction: str
    n: int
    var_dtypes: dict       # name -> dtype string
    var_attrs: dict
    attrs: dict

    def __len__(self):
        return self.n

    @classmethod
    def open(cls, path):
        from readatl06.atl06.names import parse_name
        with h5py.File(path, "r") as f:
            attrs = {k: decoded(v) for k, v in f.attrs.items()}
            names = [k for k in f if isinstance(f[k], h5py.Dataset) and not is_dimension(f[k])]
            dtypes = {k: f[k].dtype.str for k in names}
            var_attrs = {k: {a: decoded(v) for a, v in f[k].attrs.items() if a not in DIMENSION_ATTRS}
                         for k in names}
            shapes = {k: f[k].shape for k in names}
            if len(set(shapes.values())) > 1:
                ref = "lat" if "lat" in shapes else names[0]
                odd = ", ".join(f"{k} {shapes[k]}" for k in names if shapes[k] != shapes[ref])
                raise ValueError(f"datasets of different lengths: {odd} against {ref} {shapes[ref]}")
            n = int(f[names[0]].shape[0]) if names else 0
        return cls(path, parse_name(attrs["granule"]), attrs["beam"], attrs["direction"], n, dtypes,
                   var_attrs, attrs)

    @classmethod
    def of(cls, track, path):
        """The file ``track`` was just written to, with the track's own metadata (no reopening)."""
        return cls(path, track.granule, track.beam, track.direction, len(track),
                   {k: np.asarray(v).dtype.str for k, v in track.data.items()},
                   {k: dict(v) for k, v in track.var_attrs.items()}, dict(track.attrs))
