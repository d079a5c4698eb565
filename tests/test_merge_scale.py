"""The merged file is the same, bit for bit, whatever the ranks, rounds, holders (issues 11 and 22).

"The same" is ``signature`` — every object, every attribute (dimension references by the names they
point to), every dataset's dtype, shape, values, fill value and storage layout, and every stored
chunk's bytes as they lie in the file (so also the compression itself, the partial last chunk
included) — and the sha256 of the whole file: rank 0 alone makes the HDF5 calls, in an order that
does not depend on the ranks or the rounds, and every chunk is deflated the same way.
"""
import os
import re
import zlib

import h5py
import numpy as np
import pytest

from conftest import run_cli, every_rank
from test_merge import GROUPS, synth
from readatl06.merge import writer as merge
from readatl06.merge import layout as ml
from readatl06.cli import main
from readatl06.parallel.world import SerialComm
from readatl06.atl06.schema import DIMENSION

BEAM_IN_PATH = re.compile(r"/(gt[123][lr])/")


def _attrs(obj):
    out = {}
    for key in obj.attrs:
        value = obj.attrs[key]
        if key == "DIMENSION_LIST":
            out[key] = [obj.file[r].name for refs in value for r in refs]
        elif key == "REFERENCE_LIST":
            out[key] = sorted((obj.file[r].name, int(i)) for r, i in value)
        else:
            arr = np.asarray(value)
            out[key] = (arr.dtype.str, arr.shape, arr.tolist() if arr.dtype.kind in "OUS" else arr.tobytes())
    return out


def _chunks(d):
    """Each stored chunk: offset, filter mask and its bytes as they lie in the file."""
    if d.chunks is None:
        return None
    return [(info.chunk_offset, info.filter_mask, d.id.read_direct_chunk(info.chunk_offset)[1])
            for info in (d.id.get_chunk_info(i) for i in range(d.id.get_num_chunks()))]


def sha256(path):
    import hashlib
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def signature(path):
    """{object path: description} of a merged file (see the module's docstring)."""
    out = {}
    with h5py.File(path, "r") as f:
        out["/"] = _attrs(f)

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = (obj.dtype.str, obj.shape, obj[()].tobytes(), obj.chunks, obj.compression,
                             obj.compression_opts, obj.shuffle, np.asarray(obj.fillvalue).tobytes(),
                             _chunks(obj), _attrs(obj))
            else:
                out[name] = _attrs(obj)
        f.visititems(visit)
    return out


def assert_identical(a, b):
    sa, sb = signature(a), signature(b)
    assert sorted(sa) == sorted(sb), f"{a} and {b} hold different objects"
    for key in sa:
        assert sa[key] == sb[key], f"{a} and {b} differ at {key}"
    assert sha256(a) == sha256(b), f"{a} and {b} hold the same objects in other bytes"


def assert_sources_name_their_beam(path):
    """Every ATL06 path in a ``source`` attribute of /<beam>/<direction> names that beam."""
    with h5py.File(path, "r") as f:
        for beam, d in GROUPS:
            for name, ds in f[f"{beam}/{d}"].items():
                beams = BEAM_IN_PATH.findall(str(ds.attrs.get("source", "")))
                assert set(beams) <= {beam}, (beam, d, name, ds.attrs["source"])


# ----------------------------------------------------------------------------- attributes
def test_group_attributes_are_the_beams_own_whatever_the_ranks():
    """The layout every rank computes does not depend on how the tracks are spread over the ranks
    (the order of the allgathered metadata): also an empty group (gt3r descending) gets the
    attributes of its own beam, time sources included."""
    granules, held = synth(6)
    ref = ml.group_vars(ml.combine([ml.describe(held)]))
    by_beam = lambda b: [(r, t) for r, t in held if t.beam in b]     # noqa: E731
    for n in (2, 3):
        for first in range(n):
            parts = [held[(r + first) % n::n] for r in range(n)]
            assert ml.group_vars(ml.combine([ml.describe(sorted(p, key=lambda rt: rt[0])) for p in parts])) == ref
    parts = [by_beam(("gt2l", "gt2r", "gt3l", "gt3r")), by_beam(("gt1l", "gt1r"))]
    assert ml.group_vars(ml.combine([ml.describe(p) for p in parts])) == ref
    for (beam, d), vars_ in zip(GROUPS, ref):
        want = f"/ancillary_data/atlas_sdp_gps_epoch + /{beam}/land_ice_segments/delta_time"
        assert vars_["t_sec"][2]["source"] == want
        assert all(set(BEAM_IN_PATH.findall(a["source"])) == {beam} for _, _, a in vars_.values()), (beam, d)


def test_merged_attributes_and_layout_of_empty_groups(tmp_path):
    granules, held = synth(4)
    merge.merge_tracks(SerialComm(), granules, held, str(tmp_path / "m.h5"), parameters="{}")
    assert_sources_name_their_beam(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r") as f:
        empty = f["gt3r/descending"]
        assert empty["h_elv"].shape == (0,) and empty["h_elv"].attrs["source"] == "/gt3r/x/h_li"
        assert empty["time"].attrs["source"].endswith("/gt3r/land_ice_segments/delta_time")


# ----------------------------------------------------------------------------- compression
def test_compression_none_is_unfiltered_contiguous_with_the_same_values(tmp_path):
    granules, held = synth(5)
    merge.merge_tracks(SerialComm(), granules, held, str(tmp_path / "d.h5"), parameters="{}")
    merge.merge_tracks(SerialComm(), granules, held, str(tmp_path / "n.h5"), parameters="{}", compression="none")
    sd, sn = signature(tmp_path / "d.h5"), signature(tmp_path / "n.h5")
    assert sorted(sd) == sorted(sn)
    checked = 0
    with h5py.File(tmp_path / "n.h5", "r") as f:
        for key, desc in sn.items():
            if not isinstance(desc, tuple):
                continue
            assert desc[:3] == sd[key][:3] and desc[-1] == sd[key][-1], key      # dtype, shape, values, attributes
            d = f[key]
            assert d.compression is None and not d.shuffle and d.chunks is None, key
            merged_data = key.startswith("gt") and d.size and not key.endswith(f"/{DIMENSION}")
            checked += bool(merged_data)
            if merged_data:
                assert sd[key][3] is not None and sd[key][4] == "gzip" and sd[key][5] == ml.GZIP_LEVEL
    assert checked > 100
    with pytest.raises(ValueError, match="compression 'lzf'"):
        merge.merge_tracks(SerialComm(), granules, held, str(tmp_path / "x.h5"), compression="lzf")
    assert not (tmp_path / "x.h5").exists()


def test_reduce_compression_none_reaches_the_merged_file(real_dir, tmp_path):
    assert main(["reduce", "--all-releases", str(real_dir), "-o", str(tmp_path / "t"), "--merge", str(tmp_path / "m.h5"),
                 "--compression", "none", "--no-per-beam", "--no-progress"]) == 0
    with h5py.File(tmp_path / "m.h5", "r") as f:
        sizes = [f[f"{b}/{d}/h_elv"].size for b, d in GROUPS]
        assert sum(sizes) > 10000
        assert all(f[f"{b}/{d}/{v}"].compression is None and f[f"{b}/{d}/{v}"].chunks is None
                   for b, d in GROUPS for v in f[f"{b}/{d}"])


def test_merge_command_compression_none(real_dir, tmp_path):
    """``readatl06 merge OUTDIR --compression none``: the same values as the default, unfiltered."""
    out = str(tmp_path / "t")
    assert main(["reduce", "--all-releases", str(real_dir), "-o", out, "--no-progress"]) == 0
    assert main(["merge", out, "-o", str(tmp_path / "d.h5")]) == 0
    assert main(["merge", out, "-o", str(tmp_path / "n.h5"), "--compression", "none"]) == 0
    with h5py.File(tmp_path / "d.h5", "r") as d, h5py.File(tmp_path / "n.h5", "r") as n:
        for b, g in GROUPS:
            for v in n[f"{b}/{g}"]:
                x, y = d[f"{b}/{g}/{v}"], n[f"{b}/{g}/{v}"]
                assert y.compression is None and y.chunks is None
                if x.size and v != DIMENSION:
                    assert x[()].tobytes() == y[()].tobytes(), (b, g, v)


def test_chunks_are_standard_deflate_of_the_shuffled_values_padded_with_zeros(tmp_path):
    """Every stored chunk is a zlib stream (HDF5's deflate filter, id 1, declared with shuffle) that
    Python's zlib inflates to the shuffled values of a whole chunk; the part of the last chunk beyond
    the dataset's end holds zeros (no byte of the file is left to chance), and HDF5 reads the values."""
    granules, held = synth(3)
    merge.merge_tracks(SerialComm(), granules, held, str(tmp_path / "m.h5"), parameters="{}")
    checked = 0
    with h5py.File(tmp_path / "m.h5", "r") as f:
        for name in ("gt1l/ascending/lat", "gt1l/ascending/q_flg", "gt2l/descending/granule_index"):
            d = f[name]
            values, size, c = d[()], d.dtype.itemsize, d.chunks[0]
            assert d.compression == "gzip" and d.compression_opts == ml.GZIP_LEVEL and d.shuffle
            assert d.id.get_num_chunks() == -(-d.size // c) > 1 and d.size % c
            for i in range(d.id.get_num_chunks()):
                info = d.id.get_chunk_info(i)
                raw = np.frombuffer(zlib.decompress(d.id.read_direct_chunk(info.chunk_offset)[1]), np.uint8)
                start = info.chunk_offset[0]
                whole = raw.reshape(size, c).T.copy().view(d.dtype).ravel()
                m = min(c, d.size - start)
                assert whole[:m].tobytes() == values[start:start + m].tobytes()
                assert not whole[m:].view(np.uint8).any()
                checked += 1
    assert checked > 3


# ----------------------------------------------------------------------------- rank counts, as a user runs them
@pytest.fixture(scope="module")
def mixed_dir(real_dir, tmp_path_factory):
    """The real granules (NSIDC subsets among them lack variables; some beams are empty) and two
    synthetic ones large enough for groups of several chunks (so several rounds on 3 ranks)."""
    import shutil
    d = tmp_path_factory.mktemp("mixed")
    for p in real_dir.iterdir():
        shutil.copy(p, d / p.name)
    assert main(["synth", str(d), "--granules", "2", "--segments-per-beam", "12000", "--seed", "3"]) == 0
    return d


def test_identical_for_1_2_and_3_ranks(mixed_dir, real_dir, tmp_path):
    """``mpirun -n 2|3 readatl06 reduce --merge`` and ``merge`` against one process, the same sha256
    (also the tests marked mpi, under ``mpirun -n 2|4 pytest --with-mpi``): one round and many
    (--merge-memory 0.3 and 2), tracks in memory or read back from their files, granules that lack
    variables, empty beams, and a selection with fewer granules than ranks."""
    ref = tmp_path / "ref.h5"
    assert main(["reduce", "--all-releases", str(mixed_dir), "-o", str(tmp_path / "t1"), "--merge", str(ref), "--no-progress"]) == 0
    assert_sources_name_their_beam(ref)
    with h5py.File(ref, "r") as f:
        assert (f["gt1l/descending/h_rb"][()] == np.finfo(np.float32).max).any()     # lacking granules
        assert max(f[f"{b}/{d}/lat"].size for b, d in GROUPS) > 5 * 4096
    runs = {"reduce-3": (3, "reduce", "--all-releases", str(mixed_dir), "-o", tmp_path / "t3", "--merge", tmp_path / "r3.h5"),
            "rounds-2": (2, "reduce", "--all-releases", str(mixed_dir), "-o", tmp_path / "t2", "--merge", tmp_path / "r2.h5",
                         "--merge-memory", "2"),
            "memory-3": (3, "reduce", "--all-releases", str(mixed_dir), "-o", tmp_path / "t4", "--merge", tmp_path / "r4.h5",
                         "--no-per-beam", "--merge-memory", "0.3"),
            "files-3": (3, "merge", tmp_path / "t1", "-o", tmp_path / "r5.h5", "--merge-memory", "2")}
    for name, (ranks, *args) in runs.items():
        r = run_cli(*args, *(["--no-progress"] if args[0] == "reduce" else []), ranks=ranks, timeout=120)
        assert r.returncode == 0, (name, r.stderr)
        if "--merge-memory" in args:
            assert re.search(r"\(in \d+ rounds\)", r.stdout), (name, r.stdout)
        assert_identical(ref, args[args.index("--merge") + 1] if "--merge" in args else args[3])
    few = tmp_path / "few.h5"        # 2 granules on 3 ranks: one rank has nothing
    assert main(["reduce", "--all-releases", str(real_dir), "--rgts", "235", "-o", str(tmp_path / "f1"), "--merge", str(few),
                 "--no-progress"]) == 0
    r = run_cli("reduce", "--all-releases", real_dir, "--rgts", "235", "-o", tmp_path / "f3", "--merge", tmp_path / "few3.h5",
                "--merge-memory", "0.3", "--no-progress", ranks=3, timeout=120)
    assert r.returncode == 0, r.stderr
    with h5py.File(few, "r") as f:
        assert f["granules/name"].size == 2
    assert_identical(few, tmp_path / "few3.h5")
    assert not [p for p in os.listdir(tmp_path) if ".tmp-" in p]


# ----------------------------------------------------------------------------- under mpirun -n 2 / -n 4
@pytest.mark.mpi(min_size=2)
def test_attributes_and_compression_identical_across_ranks(mpi_tmp_path):
    """The synthetic tracks spread so that the last rank holds gt1l and gt1r and the others the rest:
    every attribute (empty gt3r descending included), every chunk and the file's sha256 equal one
    rank's file, for deflate and none."""
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    granules, held = synth(5)
    mine = [rt for rt in held if (rt[1].beam in ("gt1l", "gt1r")) == (comm.rank == comm.size - 1)]
    if comm.rank != comm.size - 1:
        mine = mine[comm.rank::comm.size - 1]
    for compression in ("deflate", "none"):
        ref, out = mpi_tmp_path / f"ref-{compression}.h5", mpi_tmp_path / f"par-{compression}.h5"
        with every_rank(comm):
            if comm.rank == 0:
                merge.merge_tracks(SerialComm(), granules, held, str(ref), parameters="{}", compression=compression)
        merge.merge_tracks(comm, granules, mine, str(out), parameters="{}", compression=compression, memory=0.5)
        assert max(merge.last_stats["rounds_per_group"]) > 1
        with every_rank(comm):
            if comm.rank == 0:
                assert_sources_name_their_beam(out)
                assert_identical(ref, out)
        comm.Barrier()
