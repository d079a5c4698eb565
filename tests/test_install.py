"""scripts/setup.sh on a cluster: no root, MPI and parallel HDF5 named only through the environment
(as `module load` would), nothing installed outside the checkout; serial or mismatched HDF5 refused
with one line. As root the set-up runs as an unprivileged user made for the test (runuser)."""
import os
import pathlib
import pwd
import shutil
import subprocess
import tempfile

import pytest

from conftest import ROOT

USER = "readatl06-ci"
MULTIARCH = "x86_64-linux-gnu"
DEBIAN_HDF5 = f"/usr/lib/{MULTIARCH}/hdf5/openmpi"


@pytest.fixture
def user_tmp():
    """A folder the unprivileged user can reach (pytest's own is private to root), removed afterwards."""
    folder = pathlib.Path(tempfile.mkdtemp(prefix="readatl06-install-"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _unprivileged(tmp_path):
    """(argv prefix, owner uid, gid, home) of an unprivileged user: this one, or, as root, USER."""
    if os.geteuid() != 0:
        return [], os.getuid(), os.getgid(), pathlib.Path.home()
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
        pw = pwd.getpwnam(USER)
    home = tmp_path / "home"
    home.mkdir()
    return [shutil.which("runuser") or "/usr/sbin/runuser", "-u", USER, "--"], pw.pw_uid, pw.pw_gid, home


def _checkout(tmp_path, uid, gid, wheels=True):
    """A copy of the tracked files (and the cached h5py wheels) owned by the user, as a clone would be."""
    dest = tmp_path / "readatl06"
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    if wheels and (ROOT / ".wheelhouse").is_dir():
        shutil.copytree(ROOT / ".wheelhouse", dest / ".wheelhouse")
    os.chown(tmp_path, uid, gid)
    for folder, dirs, names in os.walk(tmp_path):
        for n in dirs + names:
            os.chown(os.path.join(folder, n), uid, gid, follow_symlinks=False)
    return dest


def _env(home, **extra):
    """A cluster login shell: system PATH (no root-only Python), the site's MPI and HDF5 named by variables."""
    env = {k: v for k, v in os.environ.items() if k.startswith(("PIP_", "LANG", "LC_"))}
    env.update(PATH="/usr/local/bin:/usr/bin:/bin", HOME=str(home), PYTHON="/usr/bin/python3", **extra)
    return env


def _setup(prefix, checkout, env, timeout):
    return subprocess.run([*prefix, "bash", str(checkout / "scripts" / "setup.sh")], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_unprivileged_setup_with_site_mpi_and_hdf5_from_the_environment(user_tmp):
    tmp_path = user_tmp
    prefix, uid, gid, home = _unprivileged(tmp_path)
    checkout = _checkout(tmp_path, uid, gid)
    env = _env(home, MPICC="mpicc.openmpi", HDF5_DIR=DEBIAN_HDF5, READATL06_EXTRAS="")
    r = _setup(prefix, checkout, env, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "(site)" in r.stdout and f"HDF5_DIR={DEBIAN_HDF5}" in r.stdout
    assert "parallel HDF5 check: 4 ranks wrote 1000000 gzip-compressed values collectively: OK" in r.stdout
    venv_python = checkout / ".venv" / "bin" / "python"
    assert venv_python.exists() and os.stat(venv_python.parent).st_uid == uid     # the user's own files
    check = subprocess.run([*prefix, str(venv_python), "-c", "import h5py, mpi4py, readatl06; "
                            "print(h5py.get_config().mpi, h5py.version.hdf5_version, readatl06.__file__)"],
                           capture_output=True, text=True, env=env, cwd=checkout, timeout=120)
    mpi, version, where = check.stdout.split()
    assert (mpi, version) == ("True", "1.10.8") and where.startswith(str(checkout))


def _fake_hdf5(folder, parallel, needed=None):
    """An HDF5 installation as a site module lays it out: include/H5pubconf.h and lib/libhdf5.so
    (linked against a stand-in MPI library named ``needed``)."""
    (folder / "include").mkdir(parents=True)
    (folder / "lib").mkdir()
    conf = '#define H5_VERSION "1.14.3"\n' + ("#define H5_HAVE_PARALLEL 1\n" if parallel else "")
    (folder / "include" / "H5pubconf.h").write_text(conf)
    src = folder / "x.c"
    src.write_text("int h5_stub(void) { return 0; }\n")
    libs = []
    if needed:
        subprocess.run(["gcc", "-shared", "-o", str(folder / "lib" / needed), str(src), f"-Wl,-soname,{needed}"],
                       check=True)
        libs = [f"-L{folder / 'lib'}", f"-l:{needed}", "-Wl,--no-as-needed"]
    subprocess.run(["gcc", "-shared", "-o", str(folder / "lib" / "libhdf5.so"), str(src), "-Wl,--no-as-needed",
                    *libs], check=True)
    return folder


@pytest.mark.parametrize("case", ["serial", "other-mpi", "no-mpicc"])
def test_setup_refuses_what_cannot_work_with_one_line(user_tmp, case):
    tmp_path = user_tmp
    prefix, uid, gid, home = _unprivileged(tmp_path)
    checkout = _checkout(tmp_path, uid, gid, wheels=False)
    extra = {"MPICC": "mpicc.openmpi"}
    if case == "serial":
        extra["HDF5_DIR"] = str(_fake_hdf5(tmp_path / "hdf5-serial", parallel=False))
    elif case == "other-mpi":
        extra["HDF5_DIR"] = str(_fake_hdf5(tmp_path / "hdf5-mpich", parallel=True, needed="libmpich.so.12"))
    else:
        extra = {"MPICC": "no-such-mpicc", "HDF5_DIR": DEBIAN_HDF5}
    r = _setup(prefix, checkout, _env(home, **extra), timeout=120)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 1 and len(lines) == 1 and lines[0].startswith("setup: error: "), r.stderr
    expected = {"serial": "is a serial build (H5_HAVE_PARALLEL is not defined in",
                "other-mpi": "MPI mismatch: HDF5 1.14.3 in", "no-mpicc": "MPICC=no-such-mpicc: no such command"}
    assert expected[case] in lines[0]
    if case == "other-mpi":
        assert "links libmpich.so.12 but MPICC=mpicc.openmpi links libmpi.so.40" in lines[0]
    assert not (checkout / ".venv").exists()        # refused before anything was installed
