"""The notebook API: select granules by name, reduce one in memory, open readatl06's files.

What the command line does for thousands of granules under MPI, these functions do for one at a
time in a Python session (README, "Python API")::

    sel = readatl06.select(paths, segments="10-12", start="2019-01-01")   # names only
    tracks = readatl06.reduce_granule(path, bbox_xy=(...), crs="EPSG:3031")   # [Track]
    ds = readatl06.open_tracks("tracks/<stem>_gt1l_A.h5")                    # xarray

Importing this module is light: h5py and pyproj load when a granule is reduced, xarray when a file
is opened. Reduced values are those of ``readatl06 reduce`` with the same options, bit for bit.
"""
import datetime as dt
import functools
import os

QUALITY = ("summary", "none")


def select(paths, *, start=None, end=None, segments=None, rgts=None, cycles=None, releases=None,
           all_releases=False):
    """Granules chosen by their file names alone, as ``readatl06 list`` chooses them.

    Nothing is opened or listed: ``paths`` are names or paths (use ``glob`` for a folder). Names
    follow ``[processed_]ATL06_yyyymmddhhmmss_ttttccss_vvv_rr.h5``; see docs/command-line.md.

    Args:
        paths: an iterable of paths, URLs or file names (or a single one).
        start: first acquisition time, inclusive: an ISO-8601 date or date-time string (UTC), or a
            ``datetime.date``/``datetime.datetime``.
        end: last acquisition time, inclusive; a date alone includes that whole day.
        segments: latitude regions 1-14: an int, a string such as ``"10-12"`` or ``"10,12"``, or a
            list of either.
        rgts: reference ground tracks 1-1387, in the same forms.
        cycles: cycles 1-99, in the same forms.
        releases: releases such as ``"006"`` or ``6``, in the same forms.
        all_releases: keep every release and revision of a granule; by default one (RGT, cycle,
            region) is one granule, its highest release then revision (``superseded`` names the rest).

    Returns:
        readatl06.atl06.names.Selected: ``granules`` is ``[(GranuleName, path)]`` in (acquisition
        time, file name) order with duplicates removed; ``unparsed``, ``refused`` (other products)
        and ``duplicates`` hold one message each; ``superseded`` is ``[(old path, newer path)]``;
        ``excluded`` counts names outside the selection.

    Raises:
        ValueError: a bad field value (e.g. ``segments=15``, ``start="yesterday"``).
    """
    from readatl06.atl06 import names
    from readatl06.errors import UsageError
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    fields = _Fields(start=_time_text(start), end=_time_text(end), segments=_texts(segments),
                     rgts=_texts(rgts), cycles=_texts(cycles), releases=_texts(releases),
                     all_releases=bool(all_releases))
    try:
        selection = names.Selection.from_args(fields)
    except UsageError as exc:
        raise ValueError(str(exc)) from None
    return names.select([os.fspath(p) for p in paths], selection)


class _Fields:
    """The attributes ``Selection.from_args`` reads from an argparse namespace."""

    def __init__(self, **fields):
        self.__dict__.update(fields)


def _texts(value):
    """``10``, ``"10-12"``, ``[10, "12"]`` -> the command line's list of strings (None: no constraint)."""
    if value is None:
        return None
    if isinstance(value, (str, int)):
        value = [value]
    return [str(v) for v in value]


def _time_text(value):
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=None).isoformat() if value.tzinfo is None else \
            value.astimezone(dt.timezone.utc).replace(tzinfo=None).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"expected an ISO-8601 string, a date or a datetime, not {type(value).__name__}")


def reduce_options(*, bbox=None, bbox_xy=None, crs=None, polygon=None, polygon_crs=None, vars=(),
                   beams=None, strong_only=False, quality="summary"):
    """The options of a reduction, as ``readatl06 reduce`` builds them from its command line.

    Build them once to reduce many granules alike (``reduce_granule(path, options=opts)``). The
    subset's parts combine: a point is kept when it lies inside every one given.

    Args:
        bbox: ``(west, east, south, north)`` in degrees, edges inclusive; ``west > east`` crosses
            the antimeridian.
        bbox_xy: ``(xmin, xmax, ymin, ymax)`` in the units of ``crs`` (a projected box).
        crs: the CRS of ``bbox_xy``, e.g. ``"EPSG:3031"``; required with ``bbox_xy`` and only then.
        polygon: path of a GeoJSON file (Polygon, MultiPolygon, Feature or FeatureCollection; holes
            respected, boundary inclusive).
        polygon_crs: the CRS of the polygon's coordinates (edges straight in that plane); default
            lon/lat.
        vars: extra ATL06 variables, relative to ``land_ice_segments/`` (e.g.
            ``"fit_statistics/n_fit_photons"``) or absolute with ``gtx`` for the beam; each is
            returned under its leaf name.
        beams: beams to reduce (``"gt1l"`` ... ``"gt3r"``); default all six.
        strong_only: only the strong beams (from ``orbit_info/sc_orient``).
        quality: ``"summary"`` keeps ``atl06_quality_summary == 0`` and ``|h_li| < 1e4``;
            ``"none"`` keeps every point whose ``h_li`` is not a fill value (fill values and NaN
            are always removed).

    Returns:
        readatl06.ReduceOptions: the options (their ``parameters()`` is the JSON string stored in
        every output file).

    Raises:
        ValueError: an option the command line would refuse (a bad box, CRS, beam, variable path
            or quality).
    """
    from readatl06.atl06.names import Selection
    from readatl06.atl06.schema import BEAMS, output_vars
    from readatl06.atl06.subset import Subset
    from readatl06.errors import UsageError
    from readatl06.reduce.granule import ReduceOptions
    if quality not in QUALITY:
        raise ValueError(f"quality {quality!r}: expected one of {', '.join(QUALITY)}")
    beams = tuple([beams] if isinstance(beams, str) else beams or BEAMS)
    unknown = [b for b in beams if b not in BEAMS]
    if unknown:
        raise ValueError(f"beams {' '.join(map(str, unknown))}: expected some of {' '.join(BEAMS)}")
    try:
        subset = Subset(bbox, bbox_xy, crs, None if polygon is None else os.fspath(polygon), polygon_crs)
    except UsageError as exc:
        raise ValueError(str(exc)) from None
    table = output_vars([vars] if isinstance(vars, str) else list(vars))
    # no selection, as the command line records it: the same ``parameters`` as ``reduce`` writes
    return ReduceOptions(vars=table, beams=beams, strong_only=bool(strong_only), quality=quality,
                         subset=subset, selection=Selection().as_dict())


def reduce_granule(granule, *, bbox=None, bbox_xy=None, crs=None, polygon=None, polygon_crs=None, vars=(),
                   beams=None, strong_only=False, quality="summary", options=None):
    """Reduce one ATL06 granule in memory: the tracks ``readatl06 reduce`` would write as files.

    Args:
        granule: the granule's path, or an open ``h5py.File`` of it (left open). Its file name must
            be an ATL06 name: RGT, cycle, region and release come from it (docs/command-line.md).
        bbox, bbox_xy, crs, polygon, polygon_crs, vars, beams, strong_only, quality: the
            reduction's options, as for :func:`reduce_options`.
        options: a ReduceOptions from :func:`reduce_options` instead of the keywords above (which
            must then be left at their defaults).

    Returns:
        list[readatl06.Track]: one Track per beam and direction that keeps at least one point, in
        beam order (gt1l ... gt3r), ascending before descending. ``track.data`` maps each output
        name (``lon``, ``lat``, ``h_elv``, ``time`` ... and the ``vars``; docs/output.md) to a 1-D
        numpy array in along-track order, ``track.var_attrs`` their attributes, ``track.attrs``
        the file attributes; ``track.stem`` is the per-beam file's name without ``.h5``. An empty
        list when nothing is inside the subset.

    Raises:
        readatl06.errors.GranuleError: the granule cannot be reduced (another product, truncated,
            a variable missing or unreadable); the message names the file and the cause.
        ValueError: a file name that is not an ATL06 name, or a bad option.
    """
    from readatl06.atl06.names import parse_name
    from readatl06.reduce import granule as reducer
    keywords = dict(bbox=bbox, bbox_xy=bbox_xy, crs=crs, polygon=polygon, polygon_crs=polygon_crs, vars=vars,
                    beams=beams, strong_only=strong_only, quality=quality)
    if options is None:
        options = reduce_options(**keywords)
    elif keywords != dict(bbox=None, bbox_xy=None, crs=None, polygon=None, polygon_crs=None, vars=(),
                          beams=None, strong_only=False, quality="summary"):
        raise TypeError("reduce_granule: give either options= or the option keywords, not both")
    if isinstance(granule, (str, os.PathLike)):
        path = os.fspath(granule)
        return reducer.reduce_granule(path, parse_name(path), options).tracks
    opened = _file_granule()(granule)
    try:
        return reducer.reduce_granule(opened, parse_name(opened.path), options).tracks
    finally:
        opened.close()


@functools.lru_cache(maxsize=None)
def _file_granule():
    """The Granule class over an ``h5py.File`` the caller opened (made on first use: h5py loads then)."""
    import h5py

    from readatl06.errors import GranuleError
    from readatl06.hdf5.chunks import userblock
    from readatl06.reader.granule import Granule

    class FileGranule(Granule):
        """A :class:`readatl06.reader.granule.Granule` over an open ``h5py.File``, which ``close``
        leaves open. A file of the default driver on disk is read by the chunk reader as a path
        is (its own read-only descriptor); any other (``core``, a file object) by h5py alone."""

        def __init__(self, file):
            if not isinstance(file, h5py.File):
                raise TypeError(f"reduce_granule: expected a path or an h5py.File, not {type(file).__name__}")
            if not file:
                raise ValueError("reduce_granule: the h5py.File is closed")
            self.file, self.fd, self.bytes_read, self.read_seconds = file, None, 0, 0.0
            self.path = file.filename if isinstance(file.filename, str) else ""
            self.name = os.path.basename(self.path)
            self._check_product()
            self.user_block = userblock(file)
            self.chunk_reader = (file.driver == "sec2" and self.user_block == 0 and os.path.isfile(self.path))
            if self.chunk_reader:
                try:
                    self.fd = os.open(self.path, os.O_RDONLY)
                except OSError as exc:
                    raise GranuleError(self.name, f"cannot be read ({exc.strerror})") from exc

        def close(self):
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None

    return FileGranule


def open_tracks(path, group=None):
    """Open a file of readatl06 with xarray (needs the ``xarray`` and ``h5netcdf`` packages).

    Args:
        path: a per-beam file (``OUTDIR/<granule stem>_<beam>_<A|D>.h5``) or a merged file
            (``reduce --merge`` / ``readatl06 merge``).
        group: a merged file's group, e.g. ``"gt1l/ascending"`` or ``"granules"``, to open that
            group alone as a Dataset.

    Returns:
        xarray.Dataset of a per-beam file (or of ``group``): one dimension ``obs``, ``lat``,
        ``lon`` and ``time`` (UTC datetimes) as coordinates, the other variables masked where they
        hold their ``_FillValue``; or xarray.DataTree of a whole merged file, one node per
        ``/<beam>/<direction>`` and ``/granules``. These are what ``xarray.open_dataset(path)``
        and ``xarray.open_datatree(path)`` give with no other argument (docs/output.md).

    Raises:
        readatl06.errors.BadFileError: a part of an appended product is missing (docs/merge.md,
            "Appending"), where HDF5 would give fill values.
    """
    import h5py
    import xarray
    from readatl06.outputs.merged import open_merged
    path = os.fspath(path)
    with open_merged(path) as f:          # an appended product: every part present (BadFileError)
        merged = isinstance(f.get("granules"), h5py.Group)
    if group is not None:
        return xarray.open_dataset(path, group=group)
    return xarray.open_datatree(path) if merged else xarray.open_dataset(path)
