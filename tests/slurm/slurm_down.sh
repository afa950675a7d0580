#!/usr/bin/env bash
# Stops the private scheduler that tests/slurm/slurm_up.sh started in DIR:
# sends SIGTERM to slurmd and slurmctld by their PID files and waits for them
# to exit (SIGKILL after SLURM_DOWN_TIMEOUT seconds, default 15). Running job
# processes die with slurmd's step daemons. DIR itself is left in place.
# Usage: tests/slurm/slurm_down.sh DIR
set -euo pipefail

dir=${1:?usage: slurm_down.sh DIR}
timeout=${SLURM_DOWN_TIMEOUT:-15}
status=0

stop_daemon() {
  local name=$1 pidfile=$2 pid
  if [ ! -s "$pidfile" ]; then
    return
  fi
  pid=$(cat "$pidfile")
  if ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$pidfile"
    return
  fi
  kill -TERM "$pid"
  local deadline=$((SECONDS + timeout))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "slurm_down: $name (PID $pid) still running after ${timeout} s;" \
        "sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
      status=1
      break
    fi
    sleep 0.1
  done
  rm -f "$pidfile"
}

# Cancel what is still queued or running, so no step daemon outlives slurmd.
if [ -f "$dir/slurm.conf" ] && [ -s "$dir/run/slurmctld.pid" ]; then
  SLURM_CONF=$dir/slurm.conf scancel --full --quiet --partition=test \
    >/dev/null 2>&1 || true
fi
stop_daemon slurmd "$dir/run/slurmd.pid"
stop_daemon slurmctld "$dir/run/slurmctld.pid"
exit "$status"
