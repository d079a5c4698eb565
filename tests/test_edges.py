"""Edge cases of issue 24 (items 4-7): every failure is one line, and nothing is read or drawn that was
not asked for. Each test runs the command line (``main`` in-process, or ``run_cli``)."""
import json
import os
import pty
import shutil
import subprocess
import sys

import pytest

from conftest import DATA, run_cli
from readatl06.cli import main

NORTH = DATA / "atl06" / "ATL06_20230816161508_08782002_006_02.h5"                 # 57-58 N
SOUTH = DATA / "atl06" / "processed_ATL06_20190222031203_08500210_001_01.h5"       # Antarctica


# ---------------------------------------------------------------- item 4: @list files
def test_list_file_with_a_byte_order_mark(tmp_path, capsys):
    shutil.copy(NORTH, tmp_path / NORTH.name)
    (tmp_path / "l.txt").write_bytes(b"\xef\xbb\xbf# written on Windows\n" + NORTH.name.encode() + b"\n")
    assert main(["list", f"@{tmp_path / 'l.txt'}"]) == 0
    assert capsys.readouterr().out.splitlines() == [str(tmp_path / NORTH.name)]


def test_nested_list_relative_to_its_list(tmp_path, monkeypatch, capsys):
    lists, decoy = tmp_path / "lists", tmp_path / "elsewhere"
    (lists / "sub").mkdir(parents=True)
    (decoy / "sub").mkdir(parents=True)
    shutil.copy(NORTH, lists / "sub" / NORTH.name)
    shutil.copy(SOUTH, decoy / SOUTH.name)
    (lists / "outer.txt").write_text("@sub/inner.txt\n")
    (lists / "sub" / "inner.txt").write_text(NORTH.name + "\n")
    (decoy / "sub" / "inner.txt").write_text(f"../{SOUTH.name}\n")      # the same name, another list
    monkeypatch.chdir(decoy)
    assert main(["list", f"@{lists / 'outer.txt'}"]) == 0
    assert capsys.readouterr().out.splitlines() == [str(lists / "sub" / NORTH.name)]


# ---------------------------------------------------------------- item 5: folder names are no patterns
@pytest.mark.parametrize("sibling", [True, False])
def test_plot_folder_with_glob_characters(tmp_path, sibling):
    pytest.importorskip("matplotlib")
    (tmp_path / "rx[1]").mkdir()
    shutil.copy(SOUTH, tmp_path / "rx[1]" / SOUTH.name)
    if sibling:                                  # what the name read as a pattern matches
        (tmp_path / "rx1").mkdir()
        shutil.copy(NORTH, tmp_path / "rx1" / NORTH.name)
    r = run_cli("plot", "rx[1]", "-o", "m.png", cwd=tmp_path, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "1 granules, EPSG:3031" in r.stdout


# ---------------------------------------------------------------- item 6: nothing to read is usage
def test_reduce_sources_inside_the_output_folder(tmp_path, monkeypatch, capsys):
    shutil.copy(NORTH, tmp_path / NORTH.name)
    monkeypatch.chdir(tmp_path)
    for argv in (["."], [NORTH.name], ["*.h5"]):
        assert main(["reduce", *argv, "-o", ".", "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("readatl06 reduce: error: -o .: every SOURCE (") and \
            "lies inside the output folder" in err[0], err
    assert not os.path.exists("readatl06-manifest.jsonl")


def _polygon(tmp_path, doc):
    p = tmp_path / f"p{len(list(tmp_path.glob('p*.geojson')))}.geojson"
    p.write_text(json.dumps(doc))
    return str(p)


@pytest.mark.parametrize("case, message", [
    ("bbox-xy-nan", "--bbox-xy nan nan nan nan: expected four finite numbers"),
    ("bbox-inf", "--bbox 0.0 inf -80.0 -70.0: expected four finite numbers"),
    ("list", "found a JSON list, expected a GeoJSON object"),
    ("nan-vertex", "a Polygon with a NaN or infinite vertex, expected finite coordinates"),
    ("no-area", "a Polygon with no area"),
    ("empty", "a Polygon with no area"),
])
def test_reduce_subset_that_keeps_nothing_is_refused(tmp_path, capsys, case, message):
    pytest.importorskip("shapely")
    args = {"bbox-xy-nan": ["--bbox-xy", "nan", "nan", "nan", "nan", "--crs", "EPSG:3031"],
            "bbox-inf": ["--bbox", "0", "inf", "-80", "-70"],
            "list": ["--polygon", _polygon(tmp_path, [1, 2])],
            "nan-vertex": ["--polygon", _polygon(tmp_path, {"type": "Polygon", "coordinates": [
                [[0, 0], [1, 0], [float("nan"), 1], [0, 0]]]})],
            "no-area": ["--polygon", _polygon(tmp_path, {"type": "Polygon", "coordinates": [
                [[0, 0], [1, 1], [2, 2], [0, 0]]]})],
            "empty": ["--polygon", _polygon(tmp_path, {"type": "Polygon", "coordinates": []})]}[case]
    assert main(["reduce", str(NORTH), "-o", str(tmp_path / "out"), "--no-progress", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- item 7: a terminal of 0 columns
def test_progress_line_on_a_terminal_without_a_size(tmp_path):
    """A fresh pseudo-terminal reports 0 rows and 0 columns (as under script(1)); the live line
    still shows the granules done."""
    master, slave = pty.openpty()
    assert os.get_terminal_size(slave).columns == 0
    env = dict(os.environ, PYTHONWARNINGS="error")
    for var in [v for v in env if v.startswith(("OMPI_COMM_WORLD", "PMIX_", "PMI_"))]:
        env.pop(var)
    proc = subprocess.Popen([sys.executable, "-m", "readatl06", "reduce", str(NORTH), "-o", str(tmp_path / "o")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave, env=env)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:                  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=120) == 0
    os.close(master)
    text = b"".join(chunks).decode(errors="replace")
    assert "readatl06: 100%" in text and "1/1" in text, text


# ---------------------------------------------------------------- item 9: a test suite that fails, never hangs
@pytest.mark.mpi(min_size=2)
def test_a_check_failing_on_rank_0_fails_every_rank():
    from mpi4py import MPI

    from conftest import every_rank
    comm = MPI.COMM_WORLD
    with pytest.raises(AssertionError) as info:
        with every_rank(comm):
            if comm.rank == 0:
                assert comm.rank == 1, "rank 0's own check"
    assert ("rank 0's own check" in str(info.value)) == (comm.rank == 0)
    assert comm.rank == 0 or "ranks [0] failed their checks" in str(info.value)
    comm.Barrier()                       # every rank gets here: no hang


def test_every_mpirun_of_the_test_script_has_a_time_limit():
    from conftest import ROOT
    lines = [ln.strip() for ln in (ROOT / "scripts" / "test.sh").read_text().splitlines()]
    runs = [ln for ln in lines if "mpirun -n" in ln and not ln.startswith(("#", "echo"))]
    assert runs and all(ln.startswith("timeout ") for ln in runs), runs
