#!/usr/bin/env bash
# One-command set-up for readatl06 (docs/install.md). Two ways to get MPI and parallel HDF5:
#  - site: the MPI and parallel HDF5 a cluster provides (module load ..., Cray, Spack), found from the
#    environment: MPICC (else Cray's cc wrapper where CRAYPE_VERSION is set, else mpicc on PATH) and
#    HDF5_DIR (else h5pcc on PATH, else pkg-config hdf5-mpi/hdf5). Nothing is installed outside this
#    folder and no root is needed. Used whenever MPICC or HDF5_DIR is set, or when not root.
#  - debian: as root on Debian with neither given, Open MPI + parallel HDF5 + SLURM + sshd from apt
#    (the test servers), then the same steps as a site.
# Then: a virtual environment at .venv/ (or $READATL06_VENV), h5py 3.16.0 built against that HDF5
# (wheel cached in .wheelhouse/, keyed by HDF5 version, folders and MPI compiler), mpi4py, readatl06
# with the extras in $READATL06_EXTRAS (default: test), and a real check: 4 ranks write a gzip
# dataset collectively and read it back. A serial HDF5, or an HDF5 built against another MPI than
# MPICC's, is refused with one line saying what was found. Re-running skips finished steps.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
H5PY_VERSION=3.16.0
MPI4PY_VERSION=4.1.2
VENV=${READATL06_VENV:-$ROOT/.venv}
EXTRAS=${READATL06_EXTRAS-test}

step() { printf "\n== %s  [%ss]\n" "$*" "$(( $(date +%s) - t0 ))"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }
t0=$(date +%s)
WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT

# ------------------------------------------------------------------ where MPI and HDF5 come from
MODE=site
if [ -z "${MPICC:-}${HDF5_DIR:-}${CRAYPE_VERSION:-}" ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  MODE=debian
fi

if [ "$MODE" = debian ]; then
  step "Debian packages (Open MPI, parallel HDF5, SLURM, sshd and netCDF-C's ncdump for the tests)"
  PKGS="openmpi-bin libopenmpi-dev libhdf5-openmpi-dev hdf5-tools pkg-config slurm-wlm slurm-wlm-torque
        openssh-server python3-venv netcdf-bin"
  missing=""
  for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
  if [ -n "$missing" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
  else
    echo "all present"
  fi
  MULTIARCH=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
  MPICC=mpicc.openmpi
  HDF5_DIR=/usr/lib/$MULTIARCH/hdf5/openmpi
fi

step "MPI compiler and parallel HDF5 ($MODE)"
if [ -z "${MPICC:-}" ]; then
  if [ -n "${CRAYPE_VERSION:-}" ] && command -v cc >/dev/null; then MPICC=cc
  elif command -v mpicc >/dev/null; then MPICC=mpicc
  else die "no MPI C compiler: set MPICC, or load your site's MPI (e.g. 'module load openmpi'); found no mpicc on PATH"
  fi
fi
command -v "$MPICC" >/dev/null || die "MPICC=$MPICC: no such command on PATH"
cat > "$WORK/hello.c" <<'C'
#include <mpi.h>
int main(int argc, char **argv) { MPI_Init(&argc, &argv); MPI_Finalize(); return 0; }
C
"$MPICC" "$WORK/hello.c" -o "$WORK/hello" 2> "$WORK/cc.err" ||
  die "MPICC=$MPICC cannot build an MPI program: $(head -n 1 "$WORK/cc.err")"

hdf5_dirs_from_h5pcc() {     # the -I folder holding H5pubconf.h and the -L folder holding libhdf5.so
  local tok
  for tok in $(h5pcc -show 2>/dev/null); do
    case $tok in
      -I*) [ -f "${tok#-I}/H5pubconf.h" ] && INC=${tok#-I} ;;
      -L*) [ -e "${tok#-L}/libhdf5.so" ] && LIB=${tok#-L} ;;
    esac
  done
}
INC=""; LIB=""
if [ -n "${HDF5_DIR:-}" ]; then
  [ -d "$HDF5_DIR" ] || die "HDF5_DIR=$HDF5_DIR: no such folder"
  INC=$HDF5_DIR/include
  for d in "$HDF5_DIR/lib" "$HDF5_DIR/lib64"; do [ -e "$d/libhdf5.so" ] && { LIB=$d; break; }; done
  FROM="HDF5_DIR=$HDF5_DIR"
elif command -v h5pcc >/dev/null; then
  hdf5_dirs_from_h5pcc; FROM="h5pcc ($(command -v h5pcc))"
elif command -v pkg-config >/dev/null; then
  for name in hdf5-mpi hdf5-openmpi hdf5-mpich hdf5; do
    if pkg-config --exists "$name"; then
      INC=$(pkg-config --variable=includedir "$name"); LIB=$(pkg-config --variable=libdir "$name")
      FROM="pkg-config $name"; break
    fi
  done
fi
[ -n "${FROM:-}" ] || die "no HDF5 found: set HDF5_DIR, or load your site's parallel HDF5 (e.g. 'module load hdf5-parallel' or 'cray-hdf5-parallel'); found no h5pcc and no pkg-config hdf5"
[ -f "$INC/H5pubconf.h" ] || die "$FROM: no H5pubconf.h in ${INC:-(no include folder)}; expected an HDF5 installation"
[ -n "$LIB" ] && [ -e "$LIB/libhdf5.so" ] || die "$FROM: no libhdf5.so beside $INC; expected a shared HDF5 library"
INC=$(readlink -f "$INC"); LIB=$(readlink -f "$LIB")
HDF5_VERSION=$(sed -n 's/^#define H5_VERSION "\(.*\)"/\1/p' "$INC/H5pubconf.h")
grep -q '^#define H5_HAVE_PARALLEL 1' "$INC/H5pubconf.h" ||
  die "$FROM: HDF5 $HDF5_VERSION in $LIB is a serial build (H5_HAVE_PARALLEL is not defined in $INC/H5pubconf.h); load the parallel HDF5 (e.g. 'module load hdf5-parallel') or point HDF5_DIR at it"

mpi_sonames() { readelf -d "$1" 2>/dev/null | sed -n 's/.*Shared library: \[\(lib\(mpi\|mpich\)[^]]*\)\].*/\1/p' | sort -u | tr '\n' ' ' || true; }
if command -v readelf >/dev/null; then
  want=$(mpi_sonames "$(readlink -f "$LIB/libhdf5.so")"); have=$(mpi_sonames "$WORK/hello")
  if [ -n "$want" ] && [ -n "$have" ] && [ "$want" != "$have" ]; then
    die "MPI mismatch: HDF5 $HDF5_VERSION in $LIB links ${want% } but MPICC=$MPICC links ${have% }; load the HDF5 module built for this MPI (or set MPICC to its compiler)"
  fi
fi
echo "MPICC=$MPICC  HDF5 $HDF5_VERSION (parallel) from $FROM: include $INC, lib $LIB"

# ------------------------------------------------------------------ the Python side
step "virtual environment $VENV"
PY=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV" || die "$PY -m venv failed: install python3-venv or load a Python module"
VPY=$VENV/bin/python
"$VPY" -m pip install -q --upgrade pip 'setuptools>=77' wheel
# h5py is pinned so that no dependency can swap the parallel build for the serial PyPI wheel.
echo "h5py==$H5PY_VERSION" > "$VENV/constraints.txt"
"$VPY" -m pip install -q -c "$VENV/constraints.txt" numpy cython pkgconfig packaging mpi4py==$MPI4PY_VERSION

step "h5py $H5PY_VERSION against parallel HDF5 $HDF5_VERSION"
PYVER=$("$VPY" -c 'import sys; print("%d%d" % sys.version_info[:2])')
KEY=$(printf '%s|%s|%s' "$INC" "$LIB" "$(readlink -f "$(command -v "$MPICC")")" | sha1sum | cut -c1-10)
WHEELS=$ROOT/.wheelhouse/hdf5-$HDF5_VERSION-$KEY-py$PYVER
have_mpi_h5py() {
  "$VPY" - "$H5PY_VERSION" "$HDF5_VERSION" 2>/dev/null <<'PY'
import sys, h5py
sys.exit(0 if h5py.get_config().mpi and h5py.__version__ == sys.argv[1]
         and h5py.version.hdf5_version == sys.argv[2] else 1)
PY
}
if have_mpi_h5py; then
  echo "already installed with MPI"
else
  if ! ls "$WHEELS"/h5py-$H5PY_VERSION-*.whl >/dev/null 2>&1; then
    mkdir -p "$WHEELS"
    printf '[build_ext]\nparallel = %s\n' "$(nproc)" > "$WORK/h5py-build.cfg"
    env -u HDF5_DIR CC="$MPICC" HDF5_MPI=ON HDF5_INCLUDEDIR="$INC" HDF5_LIBDIR="$LIB" \
      CFLAGS="-O2 -g0 -fwrapv -DNDEBUG" DIST_EXTRA_CONFIG="$WORK/h5py-build.cfg" \
      "$VPY" -m pip wheel -q --no-cache-dir --no-deps --no-build-isolation \
      --no-binary=h5py -w "$WHEELS" h5py==$H5PY_VERSION
  fi
  "$VPY" -m pip install -q --no-deps --force-reinstall "$WHEELS"/h5py-$H5PY_VERSION-*.whl
fi

step "readatl06 and its dependencies${EXTRAS:+ (extras: $EXTRAS)}"
"$VPY" -m pip install -q -c "$VENV/constraints.txt" -e ".${EXTRAS:+[$EXTRAS]}"
# bytecode up front, as a non-editable pip install does: every start then skips compiling readatl06
# (about 40 ms a process where PYTHONDONTWRITEBYTECODE is set; a stale .pyc is simply recompiled)
"$VPY" -m compileall -q readatl06

step "check: h5py has MPI, 4 ranks write gzip collectively"
"$VPY" - <<'PY'
import sys, h5py
if not h5py.get_config().mpi:
    sys.exit("setup: error: h5py in the virtual environment is a serial build (h5py.get_config().mpi is "
             "False); delete it and .wheelhouse and run scripts/setup.sh again")
print("h5py", h5py.__version__, "HDF5", h5py.version.hdf5_version, "MPI: yes")
PY
# oversubscribed (a login node may have fewer cores than 4); no single-copy shared memory (containers)
MPIRUN=${READATL06_MPIRUN:-mpirun -n 4}
OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl_vader_single_copy_mechanism=none \
  OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
  $MPIRUN "$VPY" -m readatl06.selfcheck "$WORK/check.h5"
echo "set-up finished in $(( $(date +%s) - t0 )) s"
