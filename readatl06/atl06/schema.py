"""The one declarative table of what readatl06 reads from ATL06 and writes per point (docs/output.md).

Reading, writing and merging are all driven by ``OUTPUT_VARS``; nothing else lists variables.
"""
import dataclasses

from readatl06.atl06.gpstime import CF_TIME_UNITS

BEAMS = ("gt1l", "gt1r", "gt2l", "gt2r", "gt3l", "gt3r")
DIRECTIONS = ("ascending", "descending")
DIRECTION_CODE = {"ascending": "A", "descending": "D"}
LIS = "land_ice_segments"
GPS_EPOCH_PATH = "/ancillary_data/atlas_sdp_gps_epoch"
ATLAS_SDP_GPS_EPOCH = 1198800018.0   # s, GPS time of 2018-01-01T00:00:00Z; used when a subset lacks it
H_LI_FILL = 3.4028234663852886e+38     # FLT_MAX, h_li's fill value where it lacks _FillValue
H_LI_LIMIT = 1e4                     # --quality summary: |h_li| < 1e4 m
COMPRESSIONS = ("deflate", "none")   # --compression of the per-beam and merged files (docs/command-line.md)

# CF-1.10 (docs/output.md, docs/merge.md): every 1-D dataset of a per-beam file or merged group is attached to the
# group's one netCDF dimension (a dimension scale without a variable) and names the coordinates.
CONVENTIONS = "CF-1.10"
FEATURE_TYPE = "trajectory"
DIMENSION = "obs"                    # the points of a per-beam file or of a merged /<beam>/<direction>
GRANULE_DIMENSION = "granule"        # the rows of the merged /granules
COORDINATES = ("time", "lat", "lon")  # the ``coordinates`` attribute of every other dataset


@dataclasses.dataclass(frozen=True)
class OutVar:
    name: str          # name in the output files
    source: str        # ATL06 path relative to gtx/land_ice_segments, or an absolute path
    dtype: str         # numpy dtype in the output
    units: str
    long_name: str
    kind: str = "segment"   # segment | gpstime | utcyear | utctime | orbitinfo | orbit | user
    cf: tuple = ()          # further CF attributes, (name, value) pairs

    @property
    def source_path(self):
        """The path as written in the ``source`` attribute (beam shown as gtx)."""
        return self.source if self.source.startswith("/") else f"/gtx/{LIS}/{self.source}"


OUTPUT_VARS = (
    OutVar("lon", "longitude", "f8", "degrees_east", "longitude", cf=(("standard_name", "longitude"),)),
    OutVar("lat", "latitude", "f8", "degrees_north", "latitude", cf=(("standard_name", "latitude"),)),
    OutVar("h_elv", "h_li", "f4", "m", "land ice height"),
    OutVar("s_elv", "h_li_sigma", "f4", "m", "expected RMS segment misfit (height uncertainty)"),
    # units "s", not "s since ...": GPS seconds must never be decoded as UTC (18 s off since 2017)
    OutVar("t_sec", "delta_time", "f8", "s",
           "GPS seconds since 1980-01-06T00:00:00 (atlas_sdp_gps_epoch + delta_time)", kind="gpstime"),
    OutVar("t_year", "delta_time", "f8", "decimal year, UTC",
           "UTC time as decimal year (leap seconds applied)", kind="utcyear"),
    OutVar("time", "delta_time", "f8", CF_TIME_UNITS, "UTC time (leap seconds applied)", kind="utctime",
           cf=(("standard_name", "time"), ("calendar", "standard"))),
    OutVar("h_rb", "fit_statistics/h_robust_sprd", "f4", "m", "robust spread of photon heights"),
    OutVar("s_fg", "fit_statistics/signal_selection_source", "i1", "1", "signal selection source flag"),
    OutVar("snr", "fit_statistics/snr_significance", "f4", "1", "SNR significance"),
    OutVar("q_flg", "atl06_quality_summary", "i1", "1", "ATL06 quality summary (0 = best)"),
    OutVar("f_sn", "geophysical/bsnow_conf", "i1", "1", "blowing snow confidence"),
    OutVar("dac", "geophysical/dac", "f4", "m", "dynamic atmosphere correction"),
    OutVar("tide_earth", "geophysical/tide_earth", "f4", "m", "solid earth tide"),
    OutVar("tide_load", "geophysical/tide_load", "f4", "m", "load tide"),
    OutVar("tide_ocean", "geophysical/tide_ocean", "f4", "m", "ocean tide"),
    OutVar("tide_pole", "geophysical/tide_pole", "f4", "m", "pole tide"),
    OutVar("segment_id", "segment_id", "i4", "1", "segment id (20 m along-track reference point)"),
    OutVar("rgt", "/orbit_info/rgt", "i2", "1", "reference ground track", kind="orbitinfo"),
    OutVar("cycle", "/orbit_info/cycle_number", "i1", "1", "91-day repeat cycle", kind="orbitinfo"),
    OutVar("orbit", "", "i8", "1",
           "track id: cycle*1e13 + rgt*1e9 + region*1e7 + release*1e4 + revision*1e2 + beam*10 + direction",
           kind="orbit"),
)
# Read for every beam whatever the output set: they decide which points are kept and in which direction.
CORE_SOURCES = ("latitude", "longitude", "h_li", "delta_time", "atl06_quality_summary")


def user_var(path):
    """An OutVar for a ``--vars`` entry (relative to land_ice_segments, or absolute)."""
    path = path.strip()
    if not path or path.endswith("/"):
        raise ValueError(f"--vars: {path!r} is not a dataset path")
    name = path.rstrip("/").rsplit("/", 1)[-1]
    return OutVar(name, path, "", "", "", kind="user")


def output_vars(extra=()):
    """The default table plus user variables. A variable the table already reads (a default one, or
    the same ``--vars`` given twice) is taken once; a user variable whose output name (its leaf) is
    taken by another variable is a ValueError naming both."""
    table = list(OUTPUT_VARS)
    by_name = {v.name: v for v in table}
    sources = {v.source_path for v in table}
    for path in extra:
        v = user_var(path)
        if v.source_path in sources:
            continue
        if v.name == DIMENSION:
            raise ValueError(f"--vars {v.source}: its output name {v.name!r} is the files' dimension; "
                             "it cannot be an output variable")
        other = by_name.get(v.name)
        if other is not None:
            whose = (f"the output variable {other.name} ({other.source_path.lstrip('/') if other.source else 'derived'})"
                     if other.kind != "user" else f"--vars {other.source}")
            raise ValueError(f"--vars {v.source}: its output name {v.name!r} is taken by {whose}; "
                             "two variables cannot share a name in the output files")
        by_name[v.name] = v
        sources.add(v.source_path)
        table.append(v)
    return tuple(table)
