#!/usr/bin/env bash
# The demo: synthetic Antarctic granules -> reduce (2 MPI ranks) -> merge -> plots. No download.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/mpienv.sh
exec mpirun -n "${RANKS:-2}" python -m readatl06 demo --workdir "${1:-demo}"
