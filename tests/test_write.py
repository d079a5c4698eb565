"""Per-beam files: direct chunk writes (shuffle + ISA-L deflate in the project) and --compression none
read back equal to what HDF5's own filters write, every HDF5 reader decodes them, and a failed write
leaves nothing behind."""
import os
import re
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from conftest import REAL
from readatl06.atl06.names import parse_name
from readatl06.reduce.granule import ReduceOptions, reduce_granule
from readatl06.atl06.track import Track
from readatl06.atl06.schema import OUTPUT_VARS
from readatl06.outputs.trackfile import CF_FILE_ATTRS, write_tracks
from readatl06.hdf5.datasets import CHUNK, SMALL
from readatl06.hdf5.dimensions import NOT_A_VARIABLE

GRANULE = parse_name("ATL06_20190101002015_00540210_006_01.h5")


def big_track(n=CHUNK + 4465, direction="ascending", seed=0):
    """A track longer than one output chunk (the last one partial), every default variable and dtype."""
    rng = np.random.default_rng(seed)
    data, attrs = {}, {}
    for v in OUTPUT_VARS:
        dt = np.dtype(v.dtype)
        if dt.kind == "f":
            data[v.name] = (rng.normal(size=n) * 100).astype(dt)
        else:
            info = np.iinfo(dt)
            data[v.name] = rng.integers(max(info.min, -(2 ** 40)), min(info.max, 2 ** 40), n).astype(dt)
        attrs[v.name] = {"units": v.units, "long_name": v.long_name, "source": v.source_path}
    data["h_elv"][:10] = np.float32(3.4028235e38)
    attrs["h_elv"]["_FillValue"] = np.float32(3.4028235e38)
    file_attrs = {"granule": GRANULE.name, "beam": "gt1l", "direction": direction, "spot": np.int8(6),
                  "rgt": np.int16(54), "parameters": ReduceOptions().parameters()}
    return Track(GRANULE, "gt1l", direction, data, attrs, file_attrs)


def reference_write(track, path):
    """How per-beam files were written before issue 9: HDF5's own gzip 4 + shuffle; with h5py's
    high-level dimension scale calls for the netCDF dimension ``obs`` (CF-1.10)."""
    with h5py.File(path, "w") as f:
        for k, v in {**track.attrs, **CF_FILE_ATTRS}.items():
            f.attrs[k] = v
        for name, values in track.data.items():
            kw = {}
            if values.size > SMALL:
                kw = dict(chunks=(min(values.size, CHUNK),), compression="gzip", compression_opts=4, shuffle=True)
            d = f.create_dataset(name, data=values, **kw)
            for k, v in track.var_attrs[name].items():
                d.attrs[k] = v
        n = len(track)
        dim = f.create_dataset("obs", shape=(n,), dtype=">f4")
        dim.make_scale((NOT_A_VARIABLE + b"%10d" % n).decode())
        for name in track.data:
            f[name].dims[0].attach_scale(dim)


def _attr(f, k, v):
    """An attribute as comparable bytes; object references as the names they point to."""
    if k == "DIMENSION_LIST":
        return tuple(f[r].name for refs in v for r in refs)
    if k == "REFERENCE_LIST":
        return tuple(sorted((f[r].name, int(i)) for r, i in v))
    return (np.asarray(v).dtype.str, np.asarray(v).tobytes())


def contents(path):
    out = {}
    with h5py.File(path, "r") as f:
        out["/"] = {k: _attr(f, k, v) for k, v in f.attrs.items()}
        for name, d in f.items():
            out[name] = (d.dtype.str, d.shape, d[()].tobytes(), {k: _attr(f, k, v) for k, v in d.attrs.items()})
    return out


def test_both_modes_equal_reference_and_declare_standard_filters(tmp_path):
    tracks = [big_track(), big_track(3000, "descending", 1)]
    ref = tmp_path / "ref"
    ref.mkdir()
    for t in tracks:
        reference_write(t, ref / f"{t.stem}.h5")
    for mode in ("deflate", "none"):
        out = tmp_path / mode
        out.mkdir()
        paths = write_tracks(tracks, str(out), compression=mode)
        assert sorted(os.listdir(out)) == sorted(os.listdir(ref))        # no temporary files left
        for p in paths:
            assert contents(p) == contents(ref / os.path.basename(p))
            with h5py.File(p, "r") as f:
                for name, d in f.items():
                    if name == "obs":
                        assert d.id.get_storage_size() == 0     # the netCDF dimension: no storage at all
                    elif mode == "deflate" and d.size > SMALL:
                        assert d.compression == "gzip" and d.shuffle and d.chunks == (min(d.size, CHUNK),)
                    else:
                        assert d.compression is None and d.chunks is None and not d.shuffle


def test_real_tracks_both_modes_equal_reference(real_dir, tmp_path):
    name = REAL[0].name
    tracks = reduce_granule(real_dir / name, parse_name(name), ReduceOptions()).tracks
    assert tracks
    for t in tracks:
        reference_write(t, tmp_path / f"ref-{t.stem}.h5")
    for mode in ("deflate", "none"):
        (tmp_path / mode).mkdir()
        for p in write_tracks(tracks, str(tmp_path / mode), compression=mode):
            ref = tmp_path / f"ref-{os.path.basename(p)}"
            assert contents(p) == contents(ref)
            # the same HDF5 objects: types (vlen UTF-8 strings), dataspaces, layout, filters; a
            # contiguous dataset's bytes are placed by readatl06 (hdf5/image.py): its own address,
            # allocated when made and never pre-filled
            assert _storage_neutral(_header(p)) == _storage_neutral(_header(ref))
            assert _header(p).count("H5D_FILL_TIME_NEVER") == _header(p).count("CONTIGUOUS") - 1   # obs: LATE


def _header(path):
    r = subprocess.run(["h5dump", "-H", "-p", str(path)], capture_output=True, text=True, check=True)
    return r.stdout.split("\n", 1)[1]


def _storage_neutral(header):
    """h5dump's header without where contiguous data lie and when they are allocated and filled."""
    header = re.sub(r"OFFSET \d+", "OFFSET -", header)
    header = re.sub(r"FILL_TIME H5D_FILL_TIME_\w+", "FILL_TIME -", header)
    return re.sub(r"H5D_ALLOC_TIME_\w+", "H5D_ALLOC_TIME_-", header)


def _h5dump_values(path, name):
    r = subprocess.run(["h5dump", "-y", "-w", "0", "-m", "%.17g", "-d", f"/{name}", str(path)], capture_output=True,
                       text=True, check=True)
    body = r.stdout.split("DATA {", 1)[1].split("}", 1)[0]
    return [float(x) for x in body.replace("\n", " ").split(",") if x.strip()]


def test_h5dump_decodes_a_deflated_file(tmp_path):
    t = big_track()
    (path,) = write_tracks([t], str(tmp_path))
    with h5py.File(path, "r") as f:
        assert f["segment_id"].compression == "gzip"
    for name in ("segment_id", "s_fg", "rgt", "orbit"):       # i4, i1 (shuffle no-op), i2, i8
        assert _h5dump_values(path, name) == t.data[name].astype(float).tolist(), name
    for name in ("h_elv", "lat"):                          # f4 (fill values included), f8
        got = np.array(_h5dump_values(path, name)).astype(t.data[name].dtype)
        assert got.tobytes() == t.data[name].tobytes(), name


def test_xarray_reads_deflated_file(tmp_path):
    import xarray as xr
    t = big_track()
    (path,) = write_tracks([t], str(tmp_path))
    with xr.open_dataset(path, engine="h5netcdf", phony_dims="sort", decode_times=False,
                         mask_and_scale=False) as ds:
        for name in ("segment_id", "h_elv", "q_flg"):
            assert ds[name].values.tobytes() == t.data[name].tobytes()


def test_unknown_compression_is_refused(tmp_path):
    with pytest.raises(ValueError, match="compression 'gzip9'"):
        write_tracks([big_track(10)], str(tmp_path), compression="gzip9")
    with pytest.raises(ValueError, match="compression 'lz4'"):
        ReduceOptions(compression="lz4")
    assert "compression" not in ReduceOptions(compression="none").parameters()


@pytest.mark.parametrize("mode", ["deflate", "none"])
def test_write_error_is_one_line_and_leaves_nothing(mode, tmp_path):
    """A full disk (here: a file-size limit, EFBIG) mid-write: a clean OSError, no file at all, and
    the granule's tracks written before it are removed too."""
    script = textwrap.dedent(f"""
        import os, resource, signal, sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_write import big_track
        from readatl06.outputs.trackfile import write_tracks
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        small, large = big_track(100, "ascending"), big_track(300000, "descending")
        resource.setrlimit(resource.RLIMIT_FSIZE, (200000, 200000))
        try:
            write_tracks([small, large], sys.argv[1], compression={mode!r})
        except OSError as exc:
            print("ERRNO", exc.errno, str(exc))
    """)
    r = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""                                   # no HDF5 error stack
    lines = r.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERRNO 27 [Errno 27] File too large: "), lines
    assert os.listdir(tmp_path) == []


def test_file_image_places_arrays_and_grows(tmp_path):
    """hdf5/image.py: HDF5 writes only metadata into the image (grown past its first map), the arrays
    are placed at their datasets' addresses, and the segments are the file h5py reads back."""
    from readatl06.hdf5.datasets import write_dataset
    from readatl06.hdf5.image import FileImage, write_segments
    rng = np.random.default_rng(1)
    data = {"f8": rng.random(70000), "i1": rng.integers(-128, 127, 9000, dtype=np.int8),
            "u2": rng.integers(0, 60000, 5, dtype=np.uint16), "empty": np.zeros(0, np.float32),
            "big": np.arange(100000, dtype=">i4")}
    image = FileImage(4096)
    with h5py.File(image, "w") as f:
        for name, values in data.items():
            write_dataset(f.id, name, values, {"units": "m"}, "none", image)
    assert len(image.map) > 4096 and len(image.placed) == 4          # grown; the empty one holds nothing
    path = tmp_path / "x.h5"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    write_segments(fd, image.segments())
    os.close(fd)
    image.close()
    with h5py.File(path, "r") as f:
        for name, values in data.items():
            assert f[name].dtype == values.dtype and f[name][()].tobytes() == values.tobytes(), name
            assert f[name].attrs["units"] == "m"


def test_file_image_refuses_hdf5_bytes_inside_a_placed_array():
    from readatl06.hdf5.image import FileImage
    image = FileImage()
    image.place(100, np.zeros(10, np.uint8))
    image.seek(95)
    with pytest.raises(RuntimeError, match="inside a placed dataset"):
        image.write(b"0123456789")
    image.close()
