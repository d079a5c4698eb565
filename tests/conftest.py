import contextlib
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DATA = pathlib.Path(os.environ.get("READATL06_DATA", ROOT.parent / "shared" / "data"))
REAL = sorted((DATA / "atl06").glob("*.h5"))
OTHER = sorted((DATA / "other").glob("*.h5"))


def pytest_report_header(config):
    return f"readatl06 test data: {DATA} ({len(REAL)} ATL06 granules, {len(OTHER)} other files)"


@pytest.fixture(scope="session")
def real_dir(tmp_path_factory):
    """Copies of the real granules (the originals are never touched)."""
    if not REAL:
        pytest.fail(f"no real ATL06 granules under {DATA}/atl06")
    d = tmp_path_factory.mktemp("real")
    for p in REAL:
        shutil.copy(p, d / p.name)
        os.chmod(d / p.name, 0o444)
    return d


@pytest.fixture(scope="session")
def real_reduced(real_dir, tmp_path_factory):
    """The real granules reduced once with default options (serial, in-process)."""
    from readatl06.cli import main
    out = tmp_path_factory.mktemp("real_out")
    assert main(["reduce", "--all-releases", str(real_dir), "-o", str(out), "--no-progress"]) == 0
    return out


@pytest.fixture
def mpi_real_dir(mpi_tmp_path):
    """Copies of the real granules in a folder every rank sees (made by rank 0)."""
    from mpi4py import MPI
    src = mpi_tmp_path / "in"
    if MPI.COMM_WORLD.rank == 0:
        src.mkdir()
        for p in REAL:
            shutil.copy(p, src / p.name)
    MPI.COMM_WORLD.Barrier()
    return src


def run_cli(*args, ranks=None, timeout=300, cwd=None, env=None, wrap=()):
    """Run readatl06 in a subprocess (under mpirun when ``ranks`` is given; ``wrap``: a command
    prefix for each process, e.g. prlimit)."""
    cmd = [*wrap, sys.executable, "-m", "readatl06", *map(str, args)]
    if ranks:
        cmd = ["mpirun", "-n", str(ranks), *cmd]
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_rmaps_base_oversubscribe="1", OMPI_MCA_btl_vader_single_copy_mechanism="none",
               PYTHONWARNINGS="error", **(env or {}))
    for var in [v for v in env if v.startswith(("OMPI_COMM_WORLD", "PMIX_", "PMI_"))]:
        env.pop(var)   # a child mpirun must not think it runs inside the test's own MPI job
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)


@contextlib.contextmanager
def every_rank(comm):
    """Checks made on some ranks only (``if comm.rank == 0: assert ...``) fail on EVERY rank: the
    verdict is gathered before anyone goes on, so a failed assert on rank 0 fails the test instead
    of leaving the other ranks waiting at the next barrier (a hang)."""
    error = None
    try:
        yield
    except Exception as exc:          # noqa: BLE001 (re-raised below, on this rank and the others)
        error = exc
    failed = [r for r, e in enumerate(comm.allgather(None if error is None else repr(error)[:500])) if e]
    if error is not None:
        raise error
    if failed:
        raise AssertionError(f"ranks {failed} failed their checks (see their output)")
