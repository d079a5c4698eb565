"""Write one track to ``OUTDIR/<granule stem>_<beam>_<A|D>.h5`` under a temporary name, then rename."""
import os

import h5py
import numpy as np

from readatl06.errors import GranuleError

CHUNK = 65536


def output_path(outdir, track):
    return os.path.join(outdir, track.stem + ".h5")


def _tmp(path):
    folder, name = os.path.split(path)
    return os.path.join(folder, f".{name}.tmp-{os.getpid()}")


def write_dataset(group, name, values, attrs):
    """One 1-D dataset with its attributes (gzip+shuffle once it is worth chunking)."""
    values = np.asarray(values)
    kw = {}
    if values.size > 4096:
        kw = dict(chunks=(min(values.size, CHUNK),), compression="gzip", compression_opts=4, shuffle=True)
    dset = group.create_dataset(name, data=values, **kw)
    for key, value in attrs.items():
        dset.attrs[key] = value
    return dset


def write_track(track, outdir, overwrite=False):
    """Write ``track``; returns the final path. Never leaves a partial file under the final name."""
    path = output_path(outdir, track)
    if os.path.exists(path) and not overwrite:
        raise GranuleError(track.granule.name, f"output {os.path.basename(path)} exists "
                                               "(use --overwrite to replace it or --resume to skip done granules)")
    tmp = _tmp(path)
    try:
        with h5py.File(tmp, "w") as f:
            for key, value in track.attrs.items():
                f.attrs[key] = value
            for name, values in track.data.items():
                write_dataset(f, name, values, track.var_attrs[name])
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def write_tracks(tracks, outdir, overwrite=False):
    """Write all tracks of a granule; on failure remove the ones already written (all or nothing)."""
    written = []
    try:
        for t in tracks:
            written.append(write_track(t, outdir, overwrite))
    except BaseException:
        for p in written:
            os.remove(p)
        raise
    return written
