"""The chunk reader against h5py, bit for bit: every dataset of every real granule, their paged
repacks (cloud layout of release 007), synthetic layouts (unallocated chunks, filter masks, partial
chunks, byte orders), the fall-backs to h5py, and bad chunks as one-line granule errors."""
import os
import shutil
import subprocess

import h5py
import numpy as np
import pytest

from conftest import REAL
from readatl06.hdf5.chunks import ChunkIndex, StoredChunk, chunk_index, read_index
from readatl06.errors import GranuleError
from readatl06.hdf5.codecs import ChunkError, deflate, encode
from readatl06.atl06.names import parse_name
from readatl06.reader.granule import Granule
from readatl06.reduce.granule import ReduceOptions, reduce_granule

PAGE = 8388608


def _fetcher(path):
    fd = os.open(path, os.O_RDONLY)
    return fd, lambda offset, size: os.pread(fd, size, offset)


def compare_all(path):
    """Every dataset of ``path`` through the chunk reader (where it takes it) equals h5py's read."""
    counts = {"chunks": 0, "h5py": 0}
    fd, fetch = _fetcher(path)
    try:
        with h5py.File(path, "r") as f:
            def visit(name, d):
                if not isinstance(d, h5py.Dataset):
                    return
                index = chunk_index(d)
                if index is None:
                    counts["h5py"] += 1
                    return
                got, want = read_index(index, fetch), d[()]
                assert got.dtype == want.dtype and got.shape == want.shape, name
                assert got.tobytes() == want.tobytes(), f"{path}:{name}"
                if want.size > 2:     # reading some rows decodes only their chunks, same values
                    rows = np.array([0, want.size // 2, want.size - 1])
                    assert read_index(index, fetch, rows).tobytes() == want[rows].tobytes(), name
                counts["chunks"] += 1
            f.visititems(visit)
    finally:
        os.close(fd)
    return counts


@pytest.fixture(scope="session")
def paged_dir(real_dir, tmp_path_factory):
    """The real granules repacked with file-space strategy PAGE and 8 MiB pages (h5repack)."""
    d = tmp_path_factory.mktemp("paged")
    for p in REAL:
        subprocess.run(["h5repack", "-S", "PAGE", "-G", str(PAGE), str(real_dir / p.name), str(d / p.name)],
                       check=True, capture_output=True)
    return d


@pytest.mark.parametrize("name", [p.name for p in REAL])
def test_every_dataset_of_real_granules_and_paged_repacks(name, real_dir, paged_dir):
    for folder in (real_dir, paged_dir):
        counts = compare_all(folder / name)
        assert counts["chunks"] >= 19 and counts["h5py"] > 0, counts      # both paths taken
    with h5py.File(paged_dir / name, "r") as f:
        assert f.id.get_create_plist().get_file_space_strategy()[0] == h5py.h5f.FSPACE_STRATEGY_PAGE
        assert f.id.get_create_plist().get_file_space_page_size() == PAGE


@pytest.mark.parametrize("name", ["ATL06_20230816161508_08782002_006_02.h5",
                                  "processed_ATL06_20181214211434_11800102_001_01.h5"])
def test_reduce_of_paged_repack_equals_original(name, real_dir, paged_dir):
    opts = ReduceOptions()
    a = reduce_granule(real_dir / name, parse_name(name), opts)
    b = reduce_granule(paged_dir / name, parse_name(name), opts)
    assert [t.stem for t in a.tracks] == [t.stem for t in b.tracks] and a.tracks
    for ta, tb in zip(a.tracks, b.tracks):
        assert ta.data.keys() == tb.data.keys()
        for k in ta.data:
            assert ta.data[k].tobytes() == tb.data[k].tobytes() and ta.data[k].dtype == tb.data[k].dtype


def _same(path, name):
    fd, fetch = _fetcher(path)
    try:
        with h5py.File(path, "r") as f:
            index = chunk_index(f[name])
            assert index is not None, name
            got, want = read_index(index, fetch), f[name][()]
            assert got.dtype == want.dtype and got.tobytes() == want.tobytes(), name
            return index
    finally:
        os.close(fd)


def test_synthetic_layouts(tmp_path):
    p = tmp_path / "synth.h5"
    rng = np.random.default_rng(1)
    with h5py.File(p, "w") as f:
        # unallocated chunks hold the fill value; the last chunk is partial
        d = f.create_dataset("holes", shape=(1050,), dtype="f4", chunks=(100,), compression="gzip",
                             shuffle=True, fillvalue=-7.5)
        d[250:420] = rng.random(170)
        d[1000:] = 3.0
        f.create_dataset("holes_default_fill", shape=(500,), dtype="i4", chunks=(64,),
                         compression="gzip")[100:130] = 9
        f.create_dataset("never_written", shape=(300,), dtype="i2", chunks=(50,), compression="gzip",
                         fillvalue=42)
        f.create_dataset("big_endian", data=rng.normal(size=999).astype(">f8"), chunks=(128,),
                         compression="gzip", shuffle=True)
        f.create_dataset("uint_unfiltered", data=np.arange(777, dtype="u8"), chunks=(100,))
        f.create_dataset("shuffle_only", data=np.arange(-500, 500, dtype="i4"), chunks=(300,), shuffle=True)
        f.create_dataset("int8", data=rng.integers(-128, 127, 5000).astype("i1"), chunks=(1000,),
                         compression="gzip", shuffle=True)
        f.create_dataset("empty", shape=(0,), dtype="f4", chunks=(10,), maxshape=(None,), compression="gzip")
        grow = f.create_dataset("shrunk", data=np.arange(1000.0), chunks=(100,), maxshape=(None,),
                                compression="gzip")
        grow.resize((450,))
    idx = _same(p, "holes")
    assert [c.start for c in idx.chunks] == [200, 300, 400, 1000] and idx.fill == np.float32(-7.5)
    for name in ("holes_default_fill", "never_written", "big_endian", "uint_unfiltered", "shuffle_only",
                 "int8", "empty", "shrunk"):
        _same(p, name)


def test_filter_mask_skipping_deflate_or_shuffle(tmp_path):
    """Chunks stored with a filter skipped (the per-chunk filter mask) decode as HDF5 decodes them."""
    p = tmp_path / "mask.h5"
    values = np.arange(3000, dtype="i4") * 7 - 9000
    with h5py.File(p, "w") as f:
        d = f.create_dataset("x", shape=(2950,), dtype="i4", chunks=(1000,), shuffle=True, compression="gzip")
        raw = np.zeros(1000, "i4")
        raw[:] = values[:1000]
        shuffled = np.ascontiguousarray(raw.view(np.uint8).reshape(1000, 4).T).tobytes()
        d.id.write_direct_chunk((0,), shuffled, filter_mask=0b10)                   # deflate skipped
        d.id.write_direct_chunk((1000,), deflate(values[1000:2000].tobytes()), filter_mask=0b01)  # shuffle
        d.id.write_direct_chunk((2000,), encode(values[2000:2950], 1000))            # both, partial
    idx = _same(p, "x")
    assert [c.filter_mask for c in idx.chunks] == [2, 1, 0]
    with h5py.File(p, "r") as f:
        assert f["x"][()].tobytes() == values[:2950].tobytes()


def test_fallback_to_h5py(tmp_path):
    p = tmp_path / "other.h5"
    data = np.linspace(0, 1, 2000)
    with h5py.File(p, "w") as f:
        f.create_dataset("contiguous", data=data)
        f.create_dataset("fletcher32", data=data, chunks=(100,), fletcher32=True)
        f.create_dataset("scaleoffset", data=(data * 1000).astype("i4"), chunks=(100,), scaleoffset=0)
        f.create_dataset("lzf", data=data, chunks=(100,), compression="lzf")
        f.create_dataset("deflate_then_fletcher", data=data, chunks=(100,), compression="gzip", fletcher32=True)
        f.create_dataset("two_d", data=data.reshape(20, 100), chunks=(10, 10), compression="gzip")
        f.create_dataset("strings", data=np.array([b"ab", b"cd"] * 50), chunks=(10,), compression="gzip")
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        h5py.h5d.create(f.id, b"compact_layout", h5py.h5t.NATIVE_DOUBLE,
                        h5py.h5s.create_simple((10,)), dcpl).write(h5py.h5s.ALL, h5py.h5s.ALL, data[:10])
    with h5py.File(p, "r") as f:
        assert len(f) == 8
        for name in f:
            assert chunk_index(f[name]) is None, name
    # fill time NEVER with unallocated chunks: HDF5 leaves them undefined, so h5py decides
    q = tmp_path / "never.h5"
    with h5py.File(q, "w") as f:
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((100,))
        dcpl.set_deflate(4)
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
        h5py.h5d.create(f.id, b"x", h5py.h5t.NATIVE_FLOAT, h5py.h5s.create_simple((300,)), dcpl)
        f["x"][:100] = 2.0
    with h5py.File(q, "r") as f:
        assert chunk_index(f["x"]) is None
    # a user block shifts the addresses: the whole file goes to h5py, values unchanged
    u = tmp_path / "ub.h5"
    with h5py.File(u, "w", userblock_size=512) as f:
        f.create_dataset("x", data=data, chunks=(100,), compression="gzip")
    with h5py.File(u, "r") as f:
        assert chunk_index(f["x"]) is None


def test_read_index_rejects_bad_chunks():
    values = np.arange(100, dtype="f8")
    good = deflate(values.tobytes())
    index = ChunkIndex(150, np.dtype("f8"), 100, ("deflate",), np.float64(0),
                       (StoredChunk(0, 0, len(good), 0),))
    assert read_index(index, lambda o, n: good[o:o + n])[:100].tobytes() == values.tobytes()
    cases = {
        "is truncated": lambda o, n: good[o:o + n - 5],                   # the file ends inside the chunk
        "corrupt": lambda o, n: good[:20] + bytes([good[20] ^ 0xFF]) + good[21:],
        "inflates to 80 bytes": lambda o, n: (deflate(bytes(80)) + good)[:n],   # a stream one chunk short
    }
    for why, fetch in cases.items():
        with pytest.raises(ChunkError, match=why):
            read_index(index, fetch)
    huge = ChunkIndex(100, np.dtype("f8"), 100, ("deflate",), np.float64(0), (StoredChunk(0, 0, 1 << 40, 0),))
    with pytest.raises(ChunkError, match="claims 1099511627776 stored bytes"):   # nothing allocated
        read_index(huge, lambda o, n: pytest.fail("fetched"))
    raw = ChunkIndex(100, np.dtype("f8"), 100, (), np.float64(0), (StoredChunk(0, 0, 799, 0),))
    with pytest.raises(ChunkError, match="holds 799 bytes"):
        read_index(raw, lambda o, n: bytes(n))


def _chunk_of(path, dataset, k=0):
    with h5py.File(path, "r") as f:
        return f[dataset].id.get_chunk_info(k)


@pytest.mark.parametrize("damage", ["flip", "zero", "short-stream"])
def test_bad_chunk_in_a_granule_is_a_one_line_granule_error(damage, tmp_path):
    name = "ATL06_20230816161508_08782002_006_02.h5"
    p = tmp_path / name
    shutil.copy(next(r for r in REAL if r.name == name), p)
    os.chmod(p, 0o644)
    info = _chunk_of(p, "gt2l/land_ice_segments/h_li_sigma")
    with open(p, "r+b") as fh:
        fh.seek(info.byte_offset + (info.size // 2 if damage == "flip" else 0))
        if damage == "flip":
            b = fh.read(1)
            fh.seek(-1, 1)
            fh.write(bytes([b[0] ^ 0x5A]))
        elif damage == "zero":
            fh.write(bytes(info.size))
        else:      # a valid zlib stream that inflates to less than one chunk, padded to the stored size
            short = deflate(bytes(100))
            fh.write(short + bytes(info.size - len(short)))
    with pytest.raises(GranuleError) as err:
        reduce_granule(p, parse_name(name), ReduceOptions())
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(name + ": beam gt2l: land_ice_segments/h_li_sigma cannot be read")
    assert f"file bytes {info.byte_offset}" in msg
    # h5py through the same Granule object (chunk reader off) reads the other beams untouched
    with Granule(p, chunk_reader=False) as g:
        assert g.beam("gt1l").read("h_li_sigma").size > 0


def test_granule_plan_opens_each_dataset_once(real_dir):
    with Granule(real_dir / "ATL06_20230816161508_08782002_006_02.h5") as g:
        plan = g.beam("gt1l")
        v = plan.var("h_li")
        assert plan.var("h_li") is v and v.index is not None and v.fill == np.float32(3.4028235e38)
        full = plan.read("h_li")
        assert plan.read("h_li") is full                      # decoded once
        assert plan.var("no/such/variable") is None and plan.var("/orbit_info/rgt") is not None
        with pytest.raises(GranuleError, match="land_ice_segments/nothing is missing"):
            plan.read("nothing")
        with pytest.raises(GranuleError, match=r"has shape \(1099,\), expected \(5,\)"):
            plan.read("h_li_sigma", 5)


def test_open_granule_with_its_own_fetch(real_dir):
    """A remote reader subclasses Granule and fetches the chunk index's byte ranges its own way;
    reduce_granule takes the open granule as it is."""
    class Counting(Granule):
        def fetch(self, offset, size):
            self.ranges.append((offset, size))
            return super().fetch(offset, size)

    name = "ATL06_20181014001049_02350102_003_01.h5"
    with Counting(real_dir / name) as g:
        g.ranges = []
        got = reduce_granule(g, parse_name(name), ReduceOptions())
        assert g.file.id.valid                                  # the opener closes it, not reduce
    want = reduce_granule(real_dir / name, parse_name(name), ReduceOptions())
    assert len(g.ranges) >= 90 and all(size > 0 for _, size in g.ranges)   # one chunk per dataset here
    assert [t.stem for t in got.tracks] == [t.stem for t in want.tracks]
    for a, b in zip(got.tracks, want.tracks):
        assert all(a.data[k].tobytes() == b.data[k].tobytes() for k in b.data)
