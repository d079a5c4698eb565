"""Hostile variants of a synthetic granule (issue 16): valid HDF5, valid ATL06 names and layout, but
content a reader must not trust. Each rewrites one thing in an otherwise good granule, in its first
beam (or granule-wide), so a test can compare against the same granule written clean (same seed):

* ``string-h-li``:    the first beam's ``h_li`` stored as ``|S12`` byte strings of its values
* ``nan-coords``:     the first beam's latitude NaN at segments i % 7 == 3, delta_time NaN at
                      i % 11 == 5, longitude +inf at i % 13 == 6 (see :func:`hostile_indices`)
* ``range-coords``:   finite values that are not coordinates or times, at the same segments as
                      ``nan-coords``: latitude 95, delta_time the largest float64, longitude 200
* ``huge-shape``:     the first beam's latitude declared with shape (10**12,), chunked, nothing stored
* ``short-latitude``: the first beam's latitude one value shorter than its other variables
* ``no-epoch``:       ``ancillary_data/atlas_sdp_gps_epoch`` deleted
* ``sc-orient-7``:    ``orbit_info/sc_orient`` = 7 (valid: 0 backward, 1 forward, 2 transition)
"""
import h5py
import numpy as np

HOSTILE = ("string-h-li", "nan-coords", "range-coords", "huge-shape", "short-latitude", "no-epoch", "sc-orient-7")
HUGE = 10 ** 12
LIS = "land_ice_segments"


def hostile_indices(n):
    """``{variable: segment indices}`` that ``nan-coords`` (and ``range-coords``) spoil in a beam of
    ``n`` segments."""
    i = np.arange(n)
    return {"latitude": np.flatnonzero(i % 7 == 3), "delta_time": np.flatnonzero(i % 11 == 5),
            "longitude": np.flatnonzero(i % 13 == 6)}


def _replace(group, name, data=None, **create):
    """Replace dataset ``group[name]`` by a new one (attributes kept); ``create``: h5py keywords."""
    old = group[name]
    attrs = {k: old.attrs[k] for k in old.attrs}
    del group[name]
    new = group.create_dataset(name, data=data, **create)
    for k, v in attrs.items():
        try:
            new.attrs[k] = v
        except (TypeError, ValueError):
            pass
    return new


def make_hostile(path, kind, beam):
    """Rewrite the granule at ``path`` (closed) into hostile variant ``kind``; ``beam``: the beam to spoil."""
    if kind not in HOSTILE:
        raise ValueError(f"hostile variant must be one of {', '.join(HOSTILE)}")
    with h5py.File(path, "r+") as f:
        li = f[f"{beam}/{LIS}"] if beam else None
        if kind == "string-h-li":
            h = li["h_li"][()]
            text = np.array([f"{v:.6g}".encode() for v in h], dtype="S12")
            _replace(li, "h_li", text, chunks=li["h_li"].chunks, maxshape=(None,), compression="gzip")
        elif kind == "nan-coords":
            idx = hostile_indices(li["latitude"].shape[0])
            for name, value in (("latitude", np.nan), ("delta_time", np.nan), ("longitude", np.inf)):
                a = li[name][()]
                a[idx[name]] = value
                li[name][...] = a
        elif kind == "range-coords":
            idx = hostile_indices(li["latitude"].shape[0])
            for name, value in (("latitude", 95.0), ("delta_time", np.finfo(np.float64).max),
                                ("longitude", 200.0)):
                a = li[name][()]
                a[idx[name]] = value
                li[name][...] = a
        elif kind == "huge-shape":
            _replace(li, "latitude", shape=(HUGE,), dtype="f8", chunks=(10000,), maxshape=(None,),
                     compression="gzip")
        elif kind == "short-latitude":
            d = li["latitude"]
            d.resize((d.shape[0] - 1,))
        elif kind == "no-epoch":
            del f["ancillary_data/atlas_sdp_gps_epoch"]
        elif kind == "sc-orient-7":
            f["orbit_info/sc_orient"][...] = 7
