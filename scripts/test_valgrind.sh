#!/usr/bin/env bash
# Runs one MPI test under valgrind memcheck at 2 ranks: mpitest_h5io, which
# covers the collective HDF5 reads and writes, missing values, bad files
# and, as root, the full-disk paths. Any invalid access, use of
# uninitialised memory or definite leak fails, except those listed with a
# reason in tests/sanitizers/valgrind.supp (Open MPI and PMIx internals).
# The run stops after TCX_VALGRIND_TIMEOUT seconds (default 600); it takes
# about 15 s on 2 cores. Needs the Debian package valgrind.
# Usage: scripts/test_valgrind.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-valgrind
limit=${TCX_VALGRIND_TIMEOUT:-600}

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build "$build" -j "$(nproc)" --target mpitest_h5io

logs=$build/memcheck
rm -rf "$logs"
mkdir -p "$logs"
flags=(--oversubscribe)
if [ "$(id -u)" -eq 0 ]; then
  flags+=(--allow-run-as-root)
fi
export OPENBLAS_NUM_THREADS=1

status=0
timeout "$limit" mpirun -n 2 "${flags[@]}" \
  valgrind --error-exitcode=99 --leak-check=full \
  --show-leak-kinds=definite --errors-for-leak-kinds=definite \
  --num-callers=40 --suppressions="$root/tests/sanitizers/valgrind.supp" \
  --log-file="$logs/rank.%p.log" \
  "$build/tests/mpitest_h5io" || status=$?

if [ "$status" -ne 0 ]; then
  cat "$logs"/rank.*.log
  if [ "$status" -eq 124 ]; then
    echo "test_valgrind: timed out after $limit s" >&2
  else
    echo "test_valgrind: failed with status $status (99: memcheck errors," \
      "logs above)" >&2
  fi
  exit "$status"
fi
echo "test_valgrind: mpitest_h5io at 2 ranks is clean under memcheck"
