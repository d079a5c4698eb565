"""The few libhdf5 calls h5py 3.16 does not expose, made through ctypes on the libhdf5 h5py links.

* ``set_coll_metadata(fapl)``: ``H5Pset_all_coll_metadata_ops`` and ``H5Pset_coll_metadata_write`` on
  a file access list (h5py's PropFAID has no setter for either): metadata reads of a parallel file
  are done by rank 0 and broadcast, and the metadata cache is flushed with one collective write,
  instead of every rank reading and rank 0 writing small blocks one by one.
* ``isal_deflate(level)``: while it is active, HDF5's deflate filter (filter 1, the standard one a
  file declares) compresses with ISA-L instead of zlib, inside HDF5's own pipeline, so that the
  collective filtered write of parallel HDF5 keeps allocating and writing the chunks itself. The
  chunks are ordinary zlib streams (RFC 1950, as ``readatl06.hdf5.codecs`` makes for the per-beam
  files): zlib, HDF5, netCDF-C and h5py decode them. HDF5's public ``H5Zregister`` refuses to
  replace a predefined filter, so the class is registered with ``H5Z_register`` (internal, exported
  by libhdf5 1.8 to 1.14) and HDF5's own ``H5Z_DEFLATE`` is registered back at the end. Where either
  symbol is missing, or ``READATL06_HDF5_ZLIB=1``, nothing is replaced and HDF5's zlib compresses.

The library is the libhdf5 mapped into this process once h5py is imported (``/proc/self/maps``;
Debian's ``libhdf5_openmpi.so.103`` here); without it (not Linux) both calls do nothing.
"""
import contextlib
import ctypes
import functools
import os

import h5py
from isal import isal_zlib

H5Z_FLAG_REVERSE = 0x0100
ISAL_MAX_LEVEL = 3

_FILTER = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_uint, ctypes.c_size_t, ctypes.POINTER(ctypes.c_uint),
                           ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t), ctypes.POINTER(ctypes.c_void_p))


class _FilterClass(ctypes.Structure):
    """``H5Z_class2_t`` (H5Zpublic.h, version H5Z_CLASS_T_VERS = 1)."""

    _fields_ = [("version", ctypes.c_int), ("id", ctypes.c_int), ("encoder_present", ctypes.c_uint),
                ("decoder_present", ctypes.c_uint), ("name", ctypes.c_char_p), ("can_apply", ctypes.c_void_p),
                ("set_local", ctypes.c_void_p), ("filter", ctypes.c_void_p)]


@functools.cache
def library():
    """The libhdf5 (not _hl) that h5py's extension modules use, as a ctypes CDLL, or None."""
    import h5py.h5p  # noqa: F401 (loads libhdf5)
    try:
        with open("/proc/self/maps") as fh:
            paths = {line.split()[-1] for line in fh if "/libhdf5" in line}
    except OSError:
        return None
    paths = sorted(p for p in paths if "_hl" not in os.path.basename(p) and os.path.isfile(p))
    # h5py's own (a wheel's h5py.libs), else the system's; never another package's bundled copy
    own = [p for p in paths if f"{os.sep}h5py" in p]
    paths = own or [p for p in paths if f".libs{os.sep}" not in p]
    if len(paths) != 1:
        return None
    lib = ctypes.CDLL(paths[0])
    lib.H5Iis_valid.argtypes, lib.H5Iis_valid.restype = [ctypes.c_int64], ctypes.c_int
    probe = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    if lib.H5Iis_valid(probe.id) <= 0:
        return None                     # not the library h5py calls
    lib.H5allocate_memory.restype = ctypes.c_void_p
    lib.H5allocate_memory.argtypes = [ctypes.c_size_t, ctypes.c_bool]
    lib.H5free_memory.argtypes = [ctypes.c_void_p]
    return lib


def library_path():
    lib = library()
    return getattr(lib, "_name", None)


def set_coll_metadata(fapl):
    """Collective metadata reads and writes on the h5py file access list ``fapl`` (a parallel file:
    every rank must then make every metadata-reading call, as the merge does). True when set."""
    lib = library()
    if lib is None or not h5py.get_config().mpi:
        return False
    for name in ("H5Pset_all_coll_metadata_ops", "H5Pset_coll_metadata_write"):
        fn = getattr(lib, name, None)
        if fn is None:
            return False
        fn.argtypes, fn.restype = [ctypes.c_int64, ctypes.c_bool], ctypes.c_int
        if fn(fapl.id, True) < 0:
            return False
    return True


def _isal_filter(flags, cd_nelmts, cd_values, nbytes, buf_size, buf):
    """HDF5's filter callback: ``buf[0]`` (``nbytes`` used) deflated or inflated into a new HDF5
    buffer; returns the new size, 0 on any failure (HDF5 then fails the write or read)."""
    try:
        src = (ctypes.c_char * nbytes).from_address(buf[0])
        if flags & H5Z_FLAG_REVERSE:
            out = isal_zlib.decompress(src)
        else:
            level = cd_values[0] if cd_nelmts else 1
            out = isal_zlib.compress(src, min(int(level), ISAL_MAX_LEVEL))
        lib = library()
        dst = lib.H5allocate_memory(max(len(out), 1), False)
        if not dst:
            return 0
        ctypes.memmove(dst, out, len(out))
        lib.H5free_memory(buf[0])
        buf[0] = dst
        buf_size[0] = len(out)
        return len(out)
    except BaseException:      # noqa: B036 (nothing may cross into C; HDF5 reports the failure)
        return 0


_CALLBACK = _FILTER(_isal_filter)          # kept alive for the life of the process
_CLASS = _FilterClass(1, h5py.h5z.FILTER_DEFLATE, 1, 1, b"deflate (ISA-L)", None, None,
                      ctypes.cast(_CALLBACK, ctypes.c_void_p))


def _registrar():
    """(H5Z_register, HDF5's own deflate class) or None."""
    lib = library()
    if lib is None or os.environ.get("READATL06_HDF5_ZLIB", "") == "1":
        return None
    try:
        register = lib.H5Z_register
        original = _FilterClass.in_dll(lib, "H5Z_DEFLATE")
    except (AttributeError, ValueError):
        return None
    if original.id != h5py.h5z.FILTER_DEFLATE:
        return None
    register.argtypes, register.restype = [ctypes.c_void_p], ctypes.c_int
    return register, original


_active = [0]


@contextlib.contextmanager
def isal_deflate():
    """HDF5's deflate filter runs ISA-L inside the block (nested blocks are fine). Yields True when
    ISA-L is in place, False when HDF5's zlib stays."""
    reg = _registrar() if not _active[0] else (None, None)
    if reg is None:
        yield False
        return
    register, original = reg
    if register is not None and register(ctypes.byref(_CLASS)) < 0:
        yield False
        return
    _active[0] += 1
    try:
        yield True
    finally:
        _active[0] -= 1
        if register is not None:
            register(ctypes.byref(original))
