"""Write one track to ``OUTDIR/<granule stem>_<beam>_<A|D>.h5`` under a temporary name, then rename.

With ``compression="deflate"`` (the default) datasets of more than SMALL elements are chunked with
HDF5's standard shuffle + deflate filters declared, and their chunks are shuffled (numpy) and
deflated (ISA-L) here and stored with direct chunk writes: every HDF5 reader decodes them, at a
fraction of the time HDF5's own zlib takes. ``"none"`` writes every dataset contiguous, unfiltered.
A contiguous dataset's values are never copied into the file image: they are placed at its address
and written from the array itself (``readatl06/hdf5/image.py``).

Files are netCDF-4/CF-1.10 as well (docs/output.md): every dataset is attached to one dimension scale
without a variable (``obs``, made as netCDF-C and h5netcdf make one), so that xarray opens the file
with no arguments.
"""
import hashlib
import os

import h5py

from readatl06.errors import GranuleError
from readatl06.hdf5.datasets import write_attr, write_dataset
from readatl06.hdf5.dimensions import attach_dimension, make_dimension
from readatl06.hdf5.image import FileImage, write_segments
from readatl06.atl06.schema import COMPRESSIONS, CONVENTIONS, DIMENSION, FEATURE_TYPE
from readatl06.outputs.folder import PlantedError, open_new, remove_new
from readatl06.outputs.outdir import beam_file_name

CF_FILE_ATTRS = {"Conventions": CONVENTIONS, "featureType": FEATURE_TYPE}


def output_path(outdir, track):
    return os.path.join(outdir, beam_file_name(track.granule.stem, track.beam, track.direction))


def _tmp(path):
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.tmp-{os.getpid()}")


def _write_error(track, path, exc):
    """A clean one-line error for a failed write: OSError with the errno (reduce/run.py stops on a full
    disk), else GranuleError; never HDF5's multi-line text."""
    if isinstance(exc, OSError) and exc.errno:
        return OSError(exc.errno, os.strerror(exc.errno), os.path.basename(path))
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return GranuleError(track.granule.name, f"cannot write {os.path.basename(path)}: {first}")


def write_track(track, outdir, overwrite=False, compression="deflate", digests=None):
    """Write ``track``; returns the final path. Never leaves a partial or temporary file behind.
    ``digests`` (a dict): receives the file's name -> the hex SHA-256 of its bytes (of the image
    built in memory: the run record's checksum, docs/output.md)."""
    if compression not in COMPRESSIONS:
        raise ValueError(f"compression {compression!r}: expected one of {', '.join(COMPRESSIONS)}")
    path = output_path(outdir, track)
    if os.path.exists(path) and not overwrite:
        raise GranuleError(track.granule.name, f"output {os.path.basename(path)} exists "
                                               "(use --overwrite to replace it or --resume to skip done granules)")
    # The file is built in memory (HDF5 writes its metadata and deflated chunks into a FileImage; the
    # values of contiguous datasets are placed there, never copied) and written with plain os calls:
    # a full disk or any other write error is one clean OSError here, never a failure inside HDF5
    # (whose error path on ENOSPC crashed the process when the file was closed).
    image = FileImage(_capacity(track, compression))
    try:
        with h5py.File(image, "w") as f:
            for key, value in {**track.attrs, **CF_FILE_ATTRS}.items():
                write_attr(f.id, key, value)
            dsets = [write_dataset(f.id, name, values, track.var_attrs[name], compression, image)
                     for name, values in track.data.items()]
            dim = make_dimension(f.id, DIMENSION, len(track))
            for dset in dsets:              # last: attaching to finished datasets is the cheapest
                attach_dimension(dset, dim)
        segments = image.segments()
        if digests is not None:
            sha = hashlib.sha256()
            for s in segments:
                sha.update(s)
            digests[os.path.basename(path)] = sha.hexdigest()
        _write_file(track, path, segments)
    finally:
        image.close()
    return path


def _capacity(track, compression):
    """Bytes to map for a file's image: its metadata and, when deflated, its chunks (grown if short)."""
    data = 0 if compression == "none" else sum(v.nbytes for v in track.data.values())
    return (1 << 20) + data


def _write_file(track, path, segments):
    """The file's bytes under a temporary name, renamed to ``path``; nothing left behind on failure."""
    tmp = _tmp(path)
    try:
        fd = open_new(tmp)                  # a new file: never through a link planted at the name
        try:
            write_segments(fd, segments)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except PlantedError as exc:
        raise GranuleError(track.granule.name, str(exc)) from None
    except BaseException as exc:
        remove_new(tmp)                     # also when Ctrl-C came before open_new returned
        if isinstance(exc, OSError):
            raise _write_error(track, path, exc) from None
        raise


def write_tracks(tracks, outdir, overwrite=False, compression="deflate", digests=None):
    """Write all tracks of a granule; on failure remove the ones already written (all or nothing)."""
    written = []
    try:
        for t in tracks:
            written.append(write_track(t, outdir, overwrite, compression, digests))
    except BaseException:
        for p in written:
            os.remove(p)
        raise
    return written
