#!/usr/bin/env bash
# The demo: synthetic Antarctic granules -> reduce (2 MPI ranks) -> merge -> crossovers -> figures.
# No download. Granules are cached in WORKDIR/granules-<key>/: a second run skips generating them.
#   bash scripts/demo.sh [WORKDIR] [demo options...]     e.g. bash scripts/demo.sh demo --granules 16
#   RANKS=1 bash scripts/demo.sh                          (or: python -m readatl06 demo, no mpirun at all)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/mpienv.sh
# Waiting ranks yield the core instead of spinning: on a machine with as many cores as ranks that
# also runs other work, a spinning rank slows the working one down (the merge took 2-4 x longer).
export OMPI_MCA_mpi_yield_when_idle="${OMPI_MCA_mpi_yield_when_idle:-1}"
# glibc keeps freed memory for reuse instead of unmapping and faulting it in again (the generator
# allocates many arrays of a few MB): about 10 % less time generating.
export MALLOC_MMAP_THRESHOLD_="${MALLOC_MMAP_THRESHOLD_:-67108864}" MALLOC_TRIM_THRESHOLD_="${MALLOC_TRIM_THRESHOLD_:-536870912}"
export MALLOC_TOP_PAD_="${MALLOC_TOP_PAD_:-67108864}"
workdir="${1:-demo}"
shift $(( $# > 0 ? 1 : 0 ))
exec mpirun -n "${RANKS:-2}" python -m readatl06 demo --workdir "$workdir" "$@"
