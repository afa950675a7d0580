#!/usr/bin/env bash
# Runs mpirun with the flags a small machine or a root shell needs:
# --oversubscribe (more ranks than cores) and, as root, --allow-run-as-root.
# Usage: scripts/mpirun.sh N COMMAND [ARGS...]
set -euo pipefail
ranks=$1
shift
flags=(--oversubscribe)
if [ "$(id -u)" -eq 0 ]; then
  flags+=(--allow-run-as-root)
fi
# One BLAS thread per rank, so that ranks and OpenBLAS threads do not compete.
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
exec mpirun -n "$ranks" "${flags[@]}" "$@"
