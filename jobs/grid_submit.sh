#!/usr/bin/env bash
# Submits a hyperparameter grid search: a job array with one task per grid
# point (jobs/grid_point.sbatch) and a selection job (jobs/grid_select.sbatch)
# that starts once every task succeeded (--dependency=afterok), picks the
# point with the lowest validation NLL and refits it on train + validation.
#
# Usage: jobs/grid_submit.sh GRID TRAIN.h5 VALIDATION.h5 OUT_FOLDER [SBATCH_OPTION...]
#   GRID: 'l1=0,0.1,0.3 gamma=0.3,0.5,0.8 factors=16,32' (names and values as
#   tcorex select --grid takes them). SBATCH_OPTIONs (e.g. --ntasks=8
#   --partition=short) go to both submissions. SELECT_OPTIONS and TCOREX in
#   the environment reach the jobs (sbatch exports the environment).
# Prints "ARRAY_JOB_ID SELECT_JOB_ID" on stdout; the jobs' logs go to
# OUT_FOLDER/logs. Results: OUT_FOLDER/point_K.csv, grid.csv and best.h5.
set -euo pipefail

if [ "$#" -lt 4 ]; then
  echo "usage: $0 GRID TRAIN.h5 VALIDATION.h5 OUT_FOLDER [SBATCH_OPTION...]" >&2
  exit 2
fi
grid=$1
train=$(realpath "$2")
validation=$(realpath "$3")
mkdir -p "$4/logs"
out=$(realpath "$4")
shift 4
jobs=$(cd "$(dirname "$0")" && pwd)

# The grid has as many points as the product of the value counts.
points=1
for entry in $grid; do
  values=${entry#*=}
  if [ "$values" = "$entry" ] || [ -z "$values" ]; then
    echo "grid_submit: '$entry' in the grid is not NAME=V1,V2,...;" \
      "write e.g. 'l1=0,0.1 factors=16,32'" >&2
    exit 2
  fi
  commas=${values//[^,]/}
  points=$((points * (${#commas} + 1)))
done

# --parsable prints "ID" or "ID;CLUSTER".
array_id=$(sbatch --parsable --array="0-$((points - 1))" \
  --output="$out/logs/point_%a.out" "$@" \
  "$jobs/grid_point.sbatch" "$grid" "$train" "$validation" "$out")
array_id=${array_id%%;*}
select_id=$(sbatch --parsable --dependency="afterok:$array_id" \
  --output="$out/logs/select.out" "$@" \
  "$jobs/grid_select.sbatch" "$grid" "$train" "$validation" "$out")
select_id=${select_id%%;*}
echo "grid_submit: array job $array_id ($points points) and selection job" \
  "$select_id" >&2
echo "$array_id $select_id"
