#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang (AddressSanitizer
# and UndefinedBehaviorSanitizer on) into build-fuzz, replays each seed
# corpus tests/fuzz/corpus/<target> and the inputs in
# tests/fuzz/known/<target>, then fuzzes each target. New inputs go to
# build-fuzz/corpus/<target>, never into the repository; a crash, leak or
# timeout leaves its input as build-fuzz/artifacts/<target>-* and fails
# the script. By default each target runs a fixed number of inputs from
# seed TCX_FUZZ_SEED (default 1), about 30 s on a 2-core machine, so
# that CI tries the same inputs on an unchanged tree and a failure
# repeats here. TCX_FUZZ_SECONDS=S fuzzes for S seconds per target
# instead, and another seed explores further. Needs the Debian packages
# clang and libclang-rt-14-dev.
# Usage: scripts/fuzz.sh [TARGET...]   (default: all four targets)
#        TCX_FUZZ_SECONDS=600 TCX_FUZZ_SEED=7 scripts/fuzz.sh h5_read
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build-fuzz
seconds=${TCX_FUZZ_SECONDS:-}
seed=${TCX_FUZZ_SEED:-1}
targets=("$@")
# Inputs per target in the default run: about 30 s each here (measured
# rates: options 40000/s, csv 4000/s, nifti 680/s, h5_read 140/s).
declare -A runs=([options]=1000000 [csv]=100000 [nifti]=20000 [h5_read]=4000)
if [ "${#targets[@]}" -eq 0 ]; then
  targets=(options h5_read nifti csv)
fi

CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DTCX_FUZZ=ON -DTCX_BUILD_TESTS=OFF
for target in "${targets[@]}"; do
  cmake --build "$build" -j "$(nproc)" --target "fuzz_$target"
done

# Open MPI keeps its start-up allocations until exit, and HDF5 leaks on
# some error paths; the two files list each case with its reason.
cat "$root/tests/sanitizers/lsan.supp" \
  "$root/tests/fuzz/lsan_dependencies.supp" > "$build/lsan.supp"
# HDF5 requests petabytes from malloc when an object header's size field is
# corrupt, and handles the NULL it gets in a normal run. Without
# allocator_may_return_null, AddressSanitizer would report that request as
# a crash (tests/fuzz/known/h5_read/huge_object_header_allocation.h5).
# A smaller corrupt size, such as the 4 GB that H5C_protect requested
# under H5Fopen in a CI run, is granted by malloc outside the sanitizer
# build, and HDF5 may fill it before its read fails. libFuzzer reports any
# request above its malloc limit (the 2048 MB RSS limit) as out-of-memory.
# So AddressSanitizer returns NULL for requests above 1 GiB, as malloc does
# in a process whose memory is capped, and HDF5 fails on the NULL with an
# error that tcorex reports.
# tests/fuzz/asan_dependencies.supp lists the memory errors inside HDF5 that
# the sanitizer detects through memcpy on corrupt input, with their inputs.
export ASAN_OPTIONS=detect_leaks=1:fast_unwind_on_malloc=0:abort_on_error=0:allocator_may_return_null=1:max_allocation_size_mb=1024:suppressions=$root/tests/fuzz/asan_dependencies.supp
# use_tls=0: see scripts/test_sanitizers.sh.
export LSAN_OPTIONS=use_tls=0:suppressions=$build/lsan.supp:print_suppressions=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export OPENBLAS_NUM_THREADS=1
mkdir -p "$build/artifacts"

for target in "${targets[@]}"; do
  binary=$build/tests/fuzz/fuzz_$target
  seeds=$root/tests/fuzz/corpus/$target
  corpus=$build/corpus/$target
  mkdir -p "$corpus"
  options=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048
    -max_len=65536
    "-artifact_prefix=$build/artifacts/$target-")

  echo "fuzz: replaying the $target corpus"
  "$binary" "${options[@]}" -runs=0 "$seeds"
  # Inputs that once showed a fault in a dependency (lsan_dependencies.supp).
  if [ -d "$root/tests/fuzz/known/$target" ]; then
    "$binary" "${options[@]}" -runs=0 "$root/tests/fuzz/known/$target"
  fi
  if [ -n "$seconds" ]; then
    budget=(-max_total_time="$seconds")
    limit=$((seconds + 120))
    echo "fuzz: fuzzing $target for $seconds s from seed $seed"
  else
    budget=(-runs="${runs[$target]}")
    limit=600
    echo "fuzz: fuzzing $target for ${runs[$target]} inputs from seed $seed"
  fi
  # The limit below stops a target that hangs outside libFuzzer's control.
  timeout "$limit" "$binary" "${options[@]}" \
    -seed="$seed" "${budget[@]}" -print_final_stats=1 "$corpus" "$seeds"
done
echo "fuzz: no crash in ${targets[*]}"
