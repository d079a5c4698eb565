"""Listing and opening inputs: one module per protocol (``local``, ``ssh``, ``s3``, ``https``; what the
remote ones share in ``remote``, imported only when a URL is listed). :func:`discover` lists SOURCEs with
the paths it refused; :func:`list_sources` only the paths."""
from readatl06.sources.local import EXTENSIONS, REMOTE_SCHEMES, Listing, discover, list_source, list_sources

__all__ = ["EXTENSIONS", "REMOTE_SCHEMES", "Listing", "discover", "list_source", "list_sources"]
