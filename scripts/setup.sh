#!/usr/bin/env bash
# One-command set-up for readatl06 on a fresh Debian machine (run as root or with sudo).
#  1. Debian Open MPI + parallel HDF5; SLURM (slurm-wlm, and slurm-wlm-torque for PBS-style qsub),
#     whose daemons the job-script tests start themselves on localhost
#  2. a virtual environment at .venv/
#  3. h5py 3.16.0 built from source against parallel HDF5 (wheel cached in .wheelhouse/)
#  4. the package itself (editable) with its test dependencies
#  5. a real check: 4 ranks write a gzip dataset collectively and read it back
# Re-running skips finished steps.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
H5PY_VERSION=3.16.0
HDF5_DIR=/usr/lib/x86_64-linux-gnu/hdf5/openmpi
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo

step() { printf '\n== %s\n' "$*"; }
t0=$(date +%s)

step "Debian packages (Open MPI, parallel HDF5, SLURM for the job-script tests)"
PKGS="openmpi-bin libopenmpi-dev libhdf5-openmpi-dev hdf5-tools pkg-config slurm-wlm slurm-wlm-torque openssh-server"
missing=""
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
else
  echo "all present"
fi

step "virtual environment .venv/"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
VPY=$ROOT/.venv/bin/python
"$VPY" -m pip install -q --upgrade pip 'setuptools>=77' wheel
# h5py is pinned so that no dependency can swap the parallel build for the serial PyPI wheel.
echo "h5py==$H5PY_VERSION" > .venv/constraints.txt
"$VPY" -m pip install -q -c .venv/constraints.txt numpy cython pkgconfig packaging mpi4py==4.1.2

step "h5py $H5PY_VERSION against parallel HDF5"
HDF5_VER=$(dpkg-query -W -f '${Version}' libhdf5-openmpi-dev | tr ':~+' '___')
PYVER=$("$VPY" -c 'import sys; print("%d%d" % sys.version_info[:2])')
WHEELS=$ROOT/.wheelhouse/hdf5-$HDF5_VER-py$PYVER
have_mpi_h5py() { "$VPY" -c 'import sys, h5py; sys.exit(0 if h5py.get_config().mpi and h5py.__version__ == "'$H5PY_VERSION'" else 1)' 2>/dev/null; }
if have_mpi_h5py; then
  echo "already installed with MPI"
else
  if ! ls "$WHEELS"/h5py-$H5PY_VERSION-*.whl >/dev/null 2>&1; then
    mkdir -p "$WHEELS"
    printf '[build_ext]\nparallel = %s\n' "$(nproc)" > .venv/h5py-build.cfg
    CC=mpicc.openmpi HDF5_MPI=ON HDF5_DIR=$HDF5_DIR CFLAGS="-O2 -g0 -fwrapv -DNDEBUG" \
      DIST_EXTRA_CONFIG=$ROOT/.venv/h5py-build.cfg \
      "$VPY" -m pip wheel -q --no-cache-dir --no-deps --no-build-isolation \
      --no-binary=h5py -w "$WHEELS" h5py==$H5PY_VERSION
  fi
  "$VPY" -m pip install -q --no-deps --force-reinstall "$WHEELS"/h5py-$H5PY_VERSION-*.whl
fi

step "readatl06 and its dependencies"
"$VPY" -m pip install -q -c .venv/constraints.txt -e '.[test]'
# bytecode up front, as a non-editable pip install does: every start then skips compiling readatl06
# (about 40 ms a process where PYTHONDONTWRITEBYTECODE is set; a stale .pyc is simply recompiled)
"$VPY" -m compileall -q readatl06

step "check: h5py has MPI, 4 ranks write gzip collectively"
"$VPY" - <<'PY'
import sys, h5py
if not h5py.get_config().mpi:
    sys.exit("FATAL: h5py in .venv is a serial build (h5py.get_config().mpi is False); "
             "delete .venv and .wheelhouse and run scripts/setup.sh again")
print("h5py", h5py.__version__, "HDF5", h5py.version.hdf5_version, "MPI: yes")
PY
. scripts/mpienv.sh
CHECK=$(mktemp -d)
mpirun -n 4 "$VPY" -m readatl06.selfcheck "$CHECK/check.h5"
rm -rf "$CHECK"
echo "set-up finished in $(( $(date +%s) - t0 )) s"
