#!/usr/bin/env bash
# Starts a private single-node SLURM (slurmctld and slurmd from Debian's
# slurm-wlm packages) as root without systemd, for the tests and for CI.
# Everything lives under DIR: slurm.conf, state, spool, logs and PID files.
# Nothing under /etc/slurm is read or changed: clients find this scheduler
# through SLURM_CONF=DIR/slurm.conf, and the daemons get -f DIR/slurm.conf.
#
# Usage: tests/slurm/slurm_up.sh DIR [CPUS]
#   CPUS is the CPU count the node declares (default 4). It may exceed the
#   machine's cores because SlurmdParameters=config_overrides is set.
# Prints "export SLURM_CONF=DIR/slurm.conf" on success, so that
#   eval "$(tests/slurm/slurm_up.sh DIR)"
# points the shell at it. Stop it with tests/slurm/slurm_down.sh DIR.
# With SLURM_UP_OWNER_PID set, a watcher process stops the scheduler once
# that process has exited, so that a test killed by its timeout leaves no
# daemons behind.
# Exit codes: 0 running and the node idle; 1 a daemon failed or the node did
# not become idle within SLURM_UP_TIMEOUT seconds (default 60), with the
# daemon logs on stderr; 2 usage error or slurm-wlm not installed.
set -euo pipefail

dir=${1:?usage: slurm_up.sh DIR [CPUS]}
cpus=${2:-4}
timeout=${SLURM_UP_TIMEOUT:-60}

for program in slurmctld slurmd sinfo; do
  if ! command -v "$program" >/dev/null 2>&1; then
    echo "slurm_up: $program not found; install the Debian packages" \
      "slurmctld slurmd slurm-client (scripts/setup.sh does)" >&2
    exit 2
  fi
done
if [ "$(id -u)" -ne 0 ]; then
  echo "slurm_up: run as root: slurmd must start job steps as the" \
    "submitting user" >&2
  exit 2
fi

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
mkdir -p "$dir/state" "$dir/spool" "$dir/log" "$dir/run" "$dir/pmix"

# Two free TCP ports on the loopback for slurmctld and slurmd, so that
# several private schedulers (parallel test runs) do not collide.
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 20000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
}
ctld_port=$(free_port)
slurmd_port=$(free_port)
while [ "$slurmd_port" = "$ctld_port" ]; do
  slurmd_port=$(free_port)
done

# An empty plugin stack, so that no SPANK plugin from /etc/slurm is loaded.
: >"$dir/plugstack.conf"

# Memory is left undeclared (RealMemory defaults to 1 MB) and is not a
# consumable resource, so jobs never wait for memory.
cat >"$dir/slurm.conf" <<CONF
# Written by tests/slurm/slurm_up.sh for a private test scheduler.
ClusterName=tcxtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
CredType=cred/none
# A requeued job waits cred_expire seconds (default 120) before it may start
# again; 5 keeps the requeue tests short.
AuthInfo=cred_expire=5
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=pmix
SlurmdParameters=config_overrides
SchedulerType=sched/builtin
# A requeued job is started by the periodic scheduling pass only (default
# every 60 s); every 2 s keeps the requeue tests short.
SchedulerParameters=sched_interval=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MailProg=/bin/true
PlugStackConfig=$dir/plugstack.conf
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ReturnToService=2
JobRequeue=1
MinJobAge=600
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF

# The PMIx plugin reads mpi.conf beside slurm.conf. Its per-step folders
# (spmix_appdir_UID_JOB.STEP) would go to /tmp, where two private schedulers
# that both count jobs from 1 would share them.
echo "PMIxCliTmpDirBase=$dir/pmix" >"$dir/mpi.conf"

export SLURM_CONF=$dir/slurm.conf

dump_logs() {
  for log in "$dir/log/slurmctld.log" "$dir/log/slurmd.log"; do
    if [ -f "$log" ]; then
      echo "---- $log (last 30 lines)" >&2
      tail -n 30 "$log" >&2
    fi
  done
}

# -i ignores state left in DIR by an earlier run; both daemons fork into the
# background and write their PID files.
if ! slurmctld -f "$SLURM_CONF" -i; then
  echo "slurm_up: slurmctld failed to start" >&2
  dump_logs
  exit 1
fi
if ! slurmd -f "$SLURM_CONF" -N localhost; then
  echo "slurm_up: slurmd failed to start" >&2
  dump_logs
  "$(dirname "$0")/slurm_down.sh" "$dir" >/dev/null 2>&1 || true
  exit 1
fi

deadline=$((SECONDS + timeout))
while :; do
  state=$(sinfo -h -n localhost -o '%T' 2>/dev/null || true)
  if [ "$state" = "idle" ]; then
    break
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "slurm_up: node state is '${state:-unknown}' after ${timeout} s," \
      "expected idle" >&2
    dump_logs
    "$(dirname "$0")/slurm_down.sh" "$dir" >/dev/null 2>&1 || true
    exit 1
  fi
  sleep 0.2
done
if [ -n "${SLURM_UP_OWNER_PID:-}" ]; then
  owner=$SLURM_UP_OWNER_PID
  down=$(cd "$(dirname "$0")" && pwd)/slurm_down.sh
  # setsid detaches the watcher from the caller's pipes and process group.
  setsid bash -c 'while kill -0 "$1" 2>/dev/null; do sleep 2; done
    "$2" "$3" >/dev/null 2>&1' watcher "$owner" "$down" "$dir" \
    </dev/null >/dev/null 2>&1 &
fi
echo "export SLURM_CONF=$SLURM_CONF"
