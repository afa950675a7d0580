#!/usr/bin/env bash
# Starts the private single-node SLURM of the tests (tests/slurm/slurm_up.sh)
# in a temporary folder, runs one 2-task step through srun --mpi=pmix and a
# batch job, and stops the daemons again. CI runs it before the test suite,
# so that a scheduler that cannot start fails with its daemon logs here
# rather than inside a test. Needs root and the Debian packages slurmctld,
# slurmd and slurm-client (scripts/setup.sh installs them).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d "${TMPDIR:-/tmp}/tcx_slurm_check_XXXXXX")

cleanup() {
  "$root/tests/slurm/slurm_down.sh" "$dir" || true
  rm -rf "$dir"
}
trap cleanup EXIT

start=$SECONDS
eval "$("$root/tests/slurm/slurm_up.sh" "$dir" 4)"
echo "slurm_check: scheduler up in $((SECONDS - start)) s"
sinfo

# Two tasks of one step must see each other through PMIx: each prints the
# task count that SLURM gave it and its rank.
ranks=$(srun --ntasks=2 --mpi=pmix bash -c 'echo "$SLURM_NTASKS:$PMIX_RANK"' |
  sort | tr '\n' ' ')
if [ "$ranks" != "2:0 2:1 " ]; then
  echo "slurm_check: srun --mpi=pmix gave '$ranks', expected '2:0 2:1 '" >&2
  tail -n 30 "$dir/log/slurmd.log" >&2
  exit 1
fi

job=$(sbatch --parsable --ntasks=1 --output="$dir/job.out" --wrap 'echo batch ok')
deadline=$((SECONDS + 60))
while [ -n "$(squeue -h -j "$job")" ]; do
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "slurm_check: batch job $job still queued after 60 s" >&2
    scontrol show job "$job" >&2
    exit 1
  fi
  sleep 0.2
done
if ! grep -q "batch ok" "$dir/job.out"; then
  echo "slurm_check: batch job $job wrote no output" >&2
  scontrol show job "$job" >&2
  exit 1
fi
echo "slurm_check: srun --mpi=pmix and sbatch work; stopping the scheduler"
