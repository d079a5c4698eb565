"""Figures to check a run with: ``map`` (points by h_elv in polar stereographic), ``profile`` (h_elv
along track per beam), ``summary`` (the run's manifest). Loading is in :mod:`.data`, the command line
in :mod:`.command`. Names load on first use, and matplotlib only when a figure is drawn, so that
``readatl06 --help`` stays light."""
import importlib

_EXPORTS = {"choose_crs": "map", "draw_map": "map", "outline_rings": "map", "plot_map": "map",
            "plot_profile": "profile", "plot_summary": "summary", "plot_after_run": "command"}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"readatl06.plot.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'readatl06.plot' has no attribute {name!r}")
