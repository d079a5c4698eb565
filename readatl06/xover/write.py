"""Crossover tables on disk (docs/crossovers.md): HDF5 (group ``xovers``, CF attributes, opens with xarray)
or GeoParquet 1.1 (as docs/export.md: WKB lon/lat points, ``bbox`` covering column, both from
:mod:`readatl06.outputs.geoparquet`), by the file's suffix. Both are written under a temporary name and
renamed; :func:`read` reads either back."""
import json
import os

import numpy as np

from readatl06 import __version__
from readatl06.outputs import geoparquet
from readatl06.errors import UsageError
from readatl06.atl06.schema import BEAMS

HDF5_SUFFIXES = (".h5", ".hdf5", ".he5", ".nc")
PARQUET_SUFFIXES = (".parquet", ".geoparquet", ".pq")
GROUP = "xovers"
NETCDF_DIM = "This is a netCDF dimension but not a netCDF variable."
# column -> (dtype, units, long_name, standard_name)
ATTRS = {
    "x": ("f8", "m", "crossing point, x in the projected CRS (group attribute crs)", "projection_x_coordinate"),
    "y": ("f8", "m", "crossing point, y in the projected CRS (group attribute crs)", "projection_y_coordinate"),
    "lon": ("f8", "degrees_east", "longitude of the crossing point", "longitude"),
    "lat": ("f8", "degrees_north", "latitude of the crossing point", "latitude"),
    "h_1": ("f8", "m", "land ice height (h_li) of track 1 (the earlier), linear along its line", None),
    "h_2": ("f8", "m", "land ice height (h_li) of track 2 (the later), linear along its line", None),
    "t_1": ("f8", "decimal year, UTC", "time of track 1 at the crossing, linear along its line", None),
    "t_2": ("f8", "decimal year, UTC", "time of track 2 at the crossing, linear along its line", None),
    "dh": ("f8", "m", "height change h_2 - h_1", None),
    "dt": ("f8", "days", "elapsed time t_2 - t_1 (from the GPS seconds t_sec)", None),
    "dhdt": ("f8", "m/yr", "rate of height change dh / dt, per Julian year of 365.25 days", None),
    "orbit_1": ("i8", "1", "track id (orbit, README) of track 1", None),
    "orbit_2": ("i8", "1", "track id (orbit, README) of track 2", None),
    "beam_1": ("S4", None, "beam of track 1 (gt1l ... gt3r)", None),
    "beam_2": ("S4", None, "beam of track 2 (gt1l ... gt3r)", None),
}
BEAM_NAMES = np.array([b"????"] + [b.encode() for b in BEAMS], "S4")   # beam code 1..6 -> name


def format_of(path):
    """``hdf5`` or ``parquet`` from the suffix of ``path``; UsageError for anything else."""
    suffix = os.path.splitext(str(path))[1].lower()
    if suffix in HDF5_SUFFIXES:
        return "hdf5"
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    raise UsageError(f"xover -o {path}: unknown output format; use {', '.join(HDF5_SUFFIXES)} (HDF5) "
                     f"or {', '.join(PARQUET_SUFFIXES)} (GeoParquet)")


def write(path, cols, meta):
    """Write the sorted columns (beams as codes 1..6) with ``meta`` (source, crs, crs_rule, max_gap,
    dt_max, parameters_key, since)."""
    from readatl06.outputs.folder import check_claim, claim, tmp_name
    tmp = tmp_name(path, os.getpid())
    cols = dict(cols, beam_1=BEAM_NAMES[cols["beam_1"]], beam_2=BEAM_NAMES[cols["beam_2"]])
    ident = claim(tmp)                  # a new file: never through a link planted at the name
    try:
        (_write_hdf5 if format_of(path) == "hdf5" else _write_parquet)(tmp, cols, meta)
        check_claim(tmp, ident)
        os.replace(tmp, path)
    finally:
        if os.path.lexists(tmp) and not os.path.islink(tmp):
            os.remove(tmp)


def _meta_attrs(meta):
    out = {"software": f"readatl06 {__version__}", "source": meta["source"], "crs": meta["crs"],
           "crs_rule": meta["crs_rule"], "max_gap": meta["max_gap"], "max_gap_units": "m"}
    if meta.get("dt_max") is not None:
        out["dt_max"], out["dt_max_units"] = meta["dt_max"], "days"
    for key in ("parameters_key", "since"):          # absent when unknown (no parameters) / a full table
        if meta.get(key) is not None:
            out[key] = meta[key]
    return out


def _write_hdf5(path, cols, meta):
    import h5py
    n = cols["x"].size
    with h5py.File(path, "w", track_order=True) as f:
        f.attrs["Conventions"] = "CF-1.10"
        g = f.create_group(GROUP, track_order=True)
        g.attrs["featureType"] = "point"
        g.attrs["Conventions"] = "CF-1.10"
        for k, v in _meta_attrs(meta).items():
            g.attrs[k] = v
        dim = g.create_dataset("xover", shape=(n,), dtype="f4")
        dim.make_scale(NETCDF_DIM)
        kw = {"chunks": (min(n, 1 << 16),), "compression": "gzip", "shuffle": True} if n > 4096 else {}
        for name, (dtype, units, long_name, standard) in ATTRS.items():
            ds = g.create_dataset(name, data=np.asarray(cols[name], dtype), **kw)
            ds.dims[0].attach_scale(dim)
            ds.attrs["long_name"] = long_name
            if units is not None:
                ds.attrs["units"] = units
            if standard:
                ds.attrs["standard_name"] = standard
            if dtype.startswith("S"):
                ds.attrs["_Encoding"] = "utf-8"
            if name not in ("lon", "lat"):
                ds.attrs["coordinates"] = "lon lat"


def _write_parquet(path, cols, meta):
    import pyarrow as pa
    import pyarrow.parquet as pq
    lon, lat = (np.asarray(cols[k], np.float64) for k in ("lon", "lat"))
    arrays, fields = [], []
    for name, (dtype, units, long_name, _standard) in ATTRS.items():
        v = np.asarray(cols[name], dtype)
        arr = pa.array(v.astype(str)).dictionary_encode() if dtype.startswith("S") else pa.array(v)
        md = {"long_name": long_name, **({"units": units} if units else {})}
        arrays.append(arr)
        fields.append(pa.field(name, arr.type, metadata=md))
    arrays += geoparquet.point_columns(lon, lat)
    fields += geoparquet.point_fields()
    schema = pa.schema(fields, metadata={"geo": geoparquet.geo_metadata(geoparquet.bounds(lon, lat)),
                                         "readatl06": json.dumps(_meta_attrs(meta))})
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), path, row_group_size=geoparquet.ROW_GROUP,
                   **geoparquet.writer_options(schema, dictionary=("beam_1", "beam_2")))


def read(path):
    """``(columns, attributes)`` of a crossover file of either format (beams as str)."""
    if format_of(path) == "parquet":
        import pyarrow.parquet as pq
        table = pq.read_table(path, columns=list(ATTRS))
        cols = {n: (np.asarray(table[n].to_pylist(), dtype=str) if ATTRS[n][0].startswith("S")
                    else table[n].to_numpy()) for n in ATTRS}
        return cols, json.loads(pq.read_schema(path).metadata[b"readatl06"])
    import h5py
    with h5py.File(path, "r") as f:
        g = f[GROUP]
        cols = {n: g[n][()] for n in ATTRS}
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in g.attrs.items()}
    for n in ("beam_1", "beam_2"):
        cols[n] = cols[n].astype(str)
    return cols, attrs
