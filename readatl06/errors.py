"""The exception hierarchy: every message names the file, what was found and what was expected."""


class ReadATL06Error(Exception):
    """Base class of every error readatl06 raises on purpose."""


class UsageError(ReadATL06Error):
    """A bad command line or option value (exit status 2, before any work)."""


class SourceError(ReadATL06Error):
    """A SOURCE that cannot be listed (missing folder, unreadable list file, unknown scheme)."""


class GranuleError(ReadATL06Error):
    """A granule that cannot be reduced. ``str()`` is the one-line message of DESIGN §5."""

    def __init__(self, name, cause):
        self.name = name
        self.cause = cause
        super().__init__(f"{name}: {cause}")


class NotATL06Error(GranuleError):
    """A file that is another product (ATL03, ATL07, ...) or no ICESat-2 product at all."""

    def __init__(self, name, found):
        super().__init__(name, f"not an ATL06 granule: {found}")


class BadFileError(ReadATL06Error):
    """An input of ``merge``, ``export``, ``xover`` or ``plot`` (a per-beam or merged file) that is not
    what readatl06 writes, or cannot be read. ``str()`` names the file first."""
