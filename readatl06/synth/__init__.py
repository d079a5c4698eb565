"""Synthetic ATL06 granules, schema-faithful (``readatl06 synth``): for tests, the demo and benchmarks.

Modules: :mod:`.orbitgeom` (a calibrated ICESat-2 orbit), :mod:`.values` (heights, flags, geophysics
along it), :mod:`.tables` (the real layout: dtypes, fill values, chunking, attributes per release),
:mod:`.h5write` (the HDF5 writer driven by those tables), :mod:`.granule` (one granule, corrupt
variants), :mod:`.hostile` (hostile content for tests), :mod:`.plan` (planning and writing a run),
:mod:`.command` (the command line). Names load on first use so that ``readatl06 --help`` does not
import the generator."""
import importlib

_EXPORTS = {"generate": "plan", "plan_granules": "plan", "prepare": "plan",
            "parse_segments": "plan", "GranulePlan": "plan",
            "write_granule": "granule", "BEAMS": "granule", "CORRUPT": "granule",
            "HOSTILE": "hostile", "hostile_indices": "hostile"}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"readatl06.synth.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'readatl06.synth' has no attribute {name!r}")
