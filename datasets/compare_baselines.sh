#!/usr/bin/env bash
# Compares the held-out NLL of the true covariance, the Ledoit-Wolf baseline
# and T-CorEx on simulated sudden-change data of several sizes and seeds.
# Prints one tab-separated row per case. Every run uses RANKS MPI ranks.
#
# Usage: datasets/compare_baselines.sh [BUILD_DIR] [RANKS]
#   BUILD_DIR  folder with the tcorex program (default build)
#   RANKS      MPI ranks per command (default 2)
# T-CorEx settings are those of the sudden-change reference case: l1 = 0.3,
# gamma = 0.4, 500 Adam steps per annealing stage, initialised from linear
# CorEx, with m equal to the simulated factor count.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-build}
ranks=${2:-2}
tcorex=$(cd "$build" && pwd)/tcorex
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# mpirun forwards stdin to rank 0, so it would eat the case list below.
run() {
  "$here/scripts/mpirun.sh" "$ranks" "$tcorex" "$@" </dev/null
}

# Mean NLL from the last line of 'tcorex score'.
score_mean() {
  run score --model "$1" --input "$2" --dataset /test --zero-mean -q |
    awk '$1 == "mean" {print $3}'
}

# variables factors periods train_samples seed
cases="64 4 8 16 1
200 8 10 16 7
300 12 6 24 11
512 16 10 16 3"

printf 'p\tm\tnt\ttrain\tseed\ttruth\tledoit_wolf\ttcorex\ttcorex_s\n'
echo "$cases" | while read -r p m nt train seed; do
  data=$work/sim_$seed.h5
  run simulate --variables "$p" --factors "$m" --periods "$nt" \
    --train-samples "$train" --test-samples 1000 --seed "$seed" \
    --output "$data" -q
  truth=$(h5dump -a /truth_test_nll "$data" | awk '/\(0\)/ {print $2}')
  run baseline --method ledoit-wolf --input "$data" --dataset /train \
    --output "$work/lw_$seed.h5" -q
  start=$(date +%s.%N)
  run fit --input "$data" --dataset /train --factors "$m" --l1 0.3 \
    --gamma 0.4 --max-iter 500 --output "$work/tcorex_$seed.h5" -q
  seconds=$(awk -v start="$start" -v end="$(date +%s.%N)" \
    'BEGIN {print end - start}')
  printf '%s\t%s\t%s\t%s\t%s\t%.3f\t%.3f\t%.3f\t%.1f\n' "$p" "$m" "$nt" \
    "$train" "$seed" "$truth" \
    "$(score_mean "$work/lw_$seed.h5" "$data")" \
    "$(score_mean "$work/tcorex_$seed.h5" "$data")" "$seconds"
done

# The published sudden-change case, when the test data are present: the
# truth scored 200.00 and the published Ledoit-Wolf 264.92 on it.
reference=$here/tests/data/tcorex_sudden_p128.h5
if [ -f "$reference" ]; then
  run baseline --method ledoit-wolf --input "$reference" --dataset /train \
    --output "$work/lw_reference.h5" -q
  printf 'reference\tledoit_wolf\t%s\n' \
    "$(score_mean "$work/lw_reference.h5" "$reference")"
fi
