"""Listing and opening inputs: one module per protocol (``local`` today; ``ssh``, ``s3``, ``https``
join it). :func:`list_sources` dispatches each SOURCE by its scheme."""
from readatl06.sources.local import EXTENSIONS, REMOTE_SCHEMES, list_source, list_sources

__all__ = ["EXTENSIONS", "REMOTE_SCHEMES", "list_source", "list_sources"]
