"""The exception hierarchy: every message names the file, what was found and what was expected."""
import re


class ReadATL06Error(Exception):
    """Base class of every error readatl06 raises on purpose."""


class UsageError(ReadATL06Error):
    """A bad command line or option value (exit status 2, before any work)."""


class SourceError(ReadATL06Error):
    """A SOURCE that cannot be listed (missing folder, unreadable list file, unknown scheme)."""


class GranuleError(ReadATL06Error):
    """A granule that cannot be reduced. ``str()`` is the one-line message of docs/output.md, "Errors"."""

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


def one_line(exc):
    """An unexpected error in one line: the OS's or HDF5's message on one line, the type of
    anything else (``READATL06_TRACEBACK=1`` in the environment shows the whole traceback)."""
    text = " ".join(str(exc).split()) or "(no message)"
    hdf5 = re.search(r"filename = '([^']*)'.*?error message = '([^']*)'", text)
    if hdf5:                       # HDF5's "...(file write failed: time = ..., filename = ..., errno = ...)"
        text = f"{hdf5[1]}: {hdf5[2]} (HDF5: {text.split(' (')[0]})"
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
        text = f"{exc.filename}: {text}"
    if isinstance(exc, (OSError, ReadATL06Error)) or (isinstance(exc, RuntimeError) and hdf5):
        return text
    return f"{type(exc).__name__}: {text}"
