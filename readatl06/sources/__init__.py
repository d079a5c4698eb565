"""Listing and opening inputs: one module per protocol (``local`` today; ``ssh``, ``s3``, ``https``
join it). :func:`discover` lists SOURCEs with the paths it refused; :func:`list_sources` only the paths."""
from readatl06.sources.local import EXTENSIONS, REMOTE_SCHEMES, Listing, discover, list_source, list_sources

__all__ = ["EXTENSIONS", "REMOTE_SCHEMES", "Listing", "discover", "list_source", "list_sources"]
