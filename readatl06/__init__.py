"""readatl06: reduce ICESat-2 ATL06 granules to per-beam, per-direction track files."""
__version__ = "0.1.0"
