"""readatl06: reduce ICESat-2 ATL06 granules to per-beam, per-direction track files.

The command line (``readatl06 reduce ...``, under ``mpirun`` for parallel work) is in
:mod:`readatl06.cli`. The Python API for notebooks (README, "Python API"; :mod:`readatl06.api`):
:func:`select` granules by their file names, :func:`reduce_granule` one granule into a list of
:class:`Track`, :func:`open_tracks` readatl06's files with xarray. Names load on first use, so that
``import readatl06`` and ``readatl06 --help`` import neither h5py, mpi4py, matplotlib nor pyarrow.
"""
import importlib

__version__ = "0.1.0"

# public name -> the module (under readatl06) that defines it
_EXPORTS = {
    "select": "api", "reduce_options": "api", "reduce_granule": "api", "open_tracks": "api",
    "Selection": "atl06.names", "parse_name": "atl06.names",
    "Track": "atl06.track", "ReduceOptions": "reduce.granule",
}
__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"readatl06.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'readatl06' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
