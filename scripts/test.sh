#!/usr/bin/env bash
# The whole test suite: serial, then the MPI tests under mpirun -n 2 and -n 4 (pytest-mpi).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/mpienv.sh
python -c 'import h5py, sys; sys.exit(0 if h5py.get_config().mpi else "h5py in .venv has no MPI: run scripts/setup.sh")'
t0=$(date +%s)
echo "== serial"
python -m pytest -q -m "not mpi" "$@"
# a rank that waits forever (a collective another rank never reaches) fails the suite instead of hanging it
MPI_TEST_TIMEOUT=${READATL06_MPI_TEST_TIMEOUT:-1800}
for n in 2 4; do
  echo "== mpirun -n $n (MPI tests, at most ${MPI_TEST_TIMEOUT} s)"
  timeout -k 30 "$MPI_TEST_TIMEOUT" mpirun -n $n python -m pytest -q --with-mpi -m mpi -p no:randomly "$@" \
    > .venv/mpi-test-$n.log 2>&1 || {
    rc=$?; cat .venv/mpi-test-$n.log
    [ $rc = 124 ] && echo "timed out after ${MPI_TEST_TIMEOUT} s (a hang)"
    exit 1
  }
  tail -n 1 .venv/mpi-test-$n.log
done
echo "test suite finished in $(( $(date +%s) - t0 )) s"
