"""Discovery of local SOURCEs (issue 16, items 6 and 13): only regular files, loops not followed,
output folders excluded, a SOURCE that matches nothing is an error. Nothing here opens a granule."""
import os
import shutil
import socket

import pytest

from readatl06.errors import SourceError
from readatl06.sources import Listing, discover, list_source, list_sources

G1 = "ATL06_20181014001049_02350102_001_01.h5"
G2 = "ATL06_20181014001049_02350102_003_01.h5"
G3 = "ATL06_20230816161508_08782002_006_02.h5"
FIFO = "ATL06_20190101000000_00010110_006_01.h5"
DIRNAME = "ATL06_20190102000000_00010110_006_01.h5"
BROKEN = "ATL06_20190103000000_00010110_006_01.h5"


def touch(path, data=b"x"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


@pytest.fixture
def tree(tmp_path):
    """src/G1, src/b/G2, src/b/c/G3, src/a/notes.txt, plus non-regular files named like granules."""
    src = tmp_path / "src"
    files = [touch(src / G1), touch(src / "b" / G2), touch(src / "b" / "c" / G3)]
    touch(src / "a" / "notes.txt")
    return src, files


def test_regular_files_in_folder_order(tree):
    src, files = tree
    listing = discover([str(src)])
    assert isinstance(listing, Listing)
    assert listing.paths == files                         # root files, then sub-folders depth first
    assert listing.refused == [] and listing.notes == []
    assert list_sources([str(src)]) == files               # the old API: a plain list of paths
    assert list_source(str(src)) == files
    assert list_sources([str(src), files[1]]) == files     # each path once


def test_fifo_socket_device_folder_and_broken_link_refused_by_name(tree):
    src, files = tree
    os.mkfifo(src / FIFO)
    (src / DIRNAME).mkdir()
    touch(src / DIRNAME / G2.replace("003", "005"))        # inside the folder named like a granule: not read
    os.symlink(src / "nowhere.h5", src / BROKEN)
    os.symlink("/dev/null", src / "b" / "ATL06_20190104000000_00010110_006_01.h5")
    sock_path = src / "ATL06_20190105000000_00010110_006_01.h5"
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(sock_path))
        listing = discover([str(src)])
    finally:
        sock.close()
    assert listing.paths == files
    by_name = {os.path.basename(m.split(":")[0]): m for m in listing.refused}
    assert len(listing.refused) == 5
    assert "a FIFO (named pipe), not a regular file" in by_name[FIFO]
    assert "a folder named like a granule file" in by_name[DIRNAME]
    assert "a broken symbolic link" in by_name[BROKEN]
    assert "a character device" in by_name["ATL06_20190104000000_00010110_006_01.h5"]
    assert "a socket" in by_name["ATL06_20190105000000_00010110_006_01.h5"]
    assert all(m.startswith(str(src)) for m in listing.refused)          # named by their path
    assert listing.messages()[0].startswith("refused: ")


def test_fifo_named_directly_or_by_glob_is_refused_not_an_error(tmp_path):
    os.mkfifo(tmp_path / FIFO)
    good = touch(tmp_path / G1)
    for sources in ([str(tmp_path / FIFO), good], [str(tmp_path / "*.h5")]):
        listing = discover(sources)
        assert listing.paths == [good]
        assert listing.refused == [f"{tmp_path / FIFO}: a FIFO (named pipe), not a regular file; not read"]


def test_symlink_loop_noted_once_and_not_followed(tree):
    src, files = tree
    os.symlink("..", src / "b" / "c" / "up")                # c/up -> b: a loop
    os.symlink(str(src), src / "a" / "top")                 # a/top -> src: a loop
    os.symlink("self.h5", src / "self.h5")                  # a link to itself
    listing = discover([str(src)])
    assert listing.paths == files
    assert listing.notes == [f"{src / 'a' / 'top'}: symbolic link loop (back to {src}), not followed",
                             f"{src / 'b' / 'c' / 'up'}: symbolic link loop (back to {src / 'b'}), not followed"]
    assert listing.refused == [f"{src / 'self.h5'}: a symbolic link loop, not read"]


def test_symlinked_folder_walked_once(tree, tmp_path):
    src, files = tree
    other = tmp_path / "other"
    g = touch(other / G3.replace("006_02", "006_03"))
    os.symlink(other, src / "d")                            # a link to a folder elsewhere: followed
    os.symlink(other, src / "e")                            # the same folder again: listed once
    listing = discover([str(src)])
    assert listing.paths == files + [str(src / "d" / os.path.basename(g))]
    assert listing.notes == [f"{src / 'e'}: same folder as {src / 'd'}, listed once"]


def test_output_folder_inside_source_is_never_listed(tree):
    src, files = tree
    out = src / "out"
    touch(out / G1.replace(".h5", "_gt1l_A.h5"))
    touch(out / "sub" / G1.replace(".h5", "_gt2r_D.h5"))
    assert len(discover([str(src)]).paths) == 5             # without exclude the outputs are found
    listing = discover([str(src)], exclude=[str(out)])
    assert listing.paths == files and listing.refused == [] and listing.notes == []
    assert list_sources([str(src)], exclude=[str(out)]) == files
    # a relative or symlinked spelling of the output folder is the same folder
    os.symlink(out, src.parent / "outlink")
    assert discover([str(src)], exclude=[str(src.parent / "outlink")]).paths == files
    # a glob into the output folder: its files refused by name; the folder itself as SOURCE: a note
    g = discover([str(out / "*.h5")], exclude=[str(out)])
    assert g.paths == [] and len(g.refused) == 1 and "inside the output folder" in g.refused[0]
    assert discover([str(out)], exclude=[str(out)]).notes == [f"{out}: inside the output folder {out}, not listed"]
    # an output folder that does not exist yet excludes nothing
    assert discover([str(src)], exclude=[str(src / "new")]).paths == discover([str(src)]).paths


def test_source_matching_nothing_is_an_error(tmp_path):
    with pytest.raises(SourceError, match=r"nomatch/\*\.h5: matches nothing"):
        discover([str(tmp_path / "nomatch" / "*.h5")])
    with pytest.raises(SourceError, match="no such file or folder"):
        discover([str(tmp_path / "missing.h5")])
    with pytest.raises(SourceError, match=r"list file .*: cannot be read"):
        discover(["@" + str(tmp_path / "missing.txt")])
    with pytest.raises(SourceError, match="s3://: no bucket"):      # remote forms: tests/test_remote.py
        discover(["s3://"])
    empty = tmp_path / "empty"
    empty.mkdir()
    listing = discover([str(empty)])                      # an empty folder: a note, not an error
    assert listing.paths == [] and listing.notes == [f"{empty}: no *.h5/*.hdf5/*.he5 files in this folder"]


def test_list_file_entries_relative_to_it(tree, tmp_path):
    src, files = tree
    lst = src / "lists" / "l.txt"
    lst.parent.mkdir()
    lst.write_text(f"# comment\n../{G1}\n\n{files[2]}\n../b/*.h5\n")
    assert discover(["@" + str(lst)]).paths == [str(lst.parent / ".." / G1), files[2],
                                                 str(lst.parent / ".." / "b" / G2)]


@pytest.mark.parametrize("ext", [".h5", ".hdf5", ".he5", ".H5"])
def test_extensions(tmp_path, ext):
    p = touch(tmp_path / f"x{ext}")
    touch(tmp_path / "x.nc")
    assert discover([str(tmp_path)]).paths == [p]


def test_deep_tree_no_recursion_limit(tmp_path):
    d = tmp_path
    for i in range(60):
        d = d / f"d{i:02d}"
    p = touch(d / G1)
    assert discover([str(tmp_path)]).paths == [p]


def test_unreadable_folder_refused(tree, monkeypatch):
    """A folder that cannot be listed (permissions; simulated, since root reads every folder)."""
    import readatl06.sources.local as local
    src, files = tree
    locked = str(src / "b" / "c")
    real = os.scandir

    def scandir(path):
        if os.fspath(path) == locked:
            raise PermissionError(13, "Permission denied", locked)
        return real(path)

    monkeypatch.setattr(local.os, "scandir", scandir)
    listing = discover([str(src)])
    assert listing.paths == files[:2] and "folder cannot be read (Permission denied)" in listing.refused[0]


def test_real_data_folder(tmp_path):
    from conftest import REAL
    for p in REAL:
        shutil.copy(p, tmp_path / p.name)
    assert sorted(os.path.basename(p) for p in discover([str(tmp_path)]).paths) == sorted(p.name for p in REAL)
