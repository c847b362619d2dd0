#!/usr/bin/env bash
# A single-node SLURM cluster for the SLURM executor's tests: installs slurmd, slurmctld, the SLURM
# client and munge (Debian packages), writes slurm.conf, starts munged, slurmctld and slurmd, and
# records their PIDs in $NIGHTBENCH_SLURM_STATE/pids (default /tmp/nightbench-slurm) for
# .ci/slurm-down.sh. Needs root. Exits 0 when the cluster answers, 1 (saying why) when it cannot
# be brought up; the tests then skip, saying why. When it fails it stops what it started.
#
# The controller's state, slurmd's spool and the logs live in $NIGHTBENCH_SLURM_STATE, not in
# /var/spool: a cluster run earlier on this machine (another ClusterName) leaves state there that
# slurmctld refuses to start with. The controller starts from a clean state (-c) all the same: jobs
# of an earlier test cluster are forgotten. A munged already answering is used, not started again
# (a second one fails on the first one's lock), and is left running by slurm-down.sh.
# Settings chosen for tests (slurm.conf below):
#   KillWait=5           a job that does not stop on SIGTERM (submitit ignores it) is killed 5 s
#                        later, not 30: scancel and time limits take effect quickly
#   AuthInfo=cred_expire=5
#                        a requeued job (time limit, preemption) may start again after 5 s instead of 120
#   SchedulerParameters=sched_interval=2,bf_interval=2
#                        pending jobs (a requeued one, an array's next task) are looked at every 2 s
#   MinJobAge=30         ended jobs leave the controller's memory after 30 s
#   DefMemPerCPU         a job without --mem takes its share of memory, so jobs run side by side
#   CPUs (at least 4) with SlurmdParameters=config_overrides
#                        a small machine offers 4 job slots, not fewer: the tests' toy jobs mostly sleep
#                        (to outlast a time limit, to be killed midway), so more of them overlap
set -euo pipefail

STATE=${NIGHTBENCH_SLURM_STATE:-/tmp/nightbench-slurm}
HERE=$(cd "$(dirname "$0")" && pwd)
log() { echo "slurm-up: $*" >&2; }
# On failure: say why, stop the daemons started so far (by their recorded PIDs), exit 1.
fail() { log "$*"; bash "$HERE/slurm-down.sh"; exit 1; }
# Record a daemon's PID once it has written its pidfile (it forks first); fail if it never does.
record() {
  local name=$1 pidfile=$2
  for _ in $(seq 50); do
    if [ -s "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      echo "$name $(cat "$pidfile")" >>"$STATE/pids"
      return 0
    fi
    sleep 0.2
  done
  return 1
}

if [ "$(id -u)" != 0 ]; then
  log "needs root (installs packages and starts daemons); not starting a cluster"
  exit 1
fi
if [ -s "$STATE/pids" ] && sinfo -h >/dev/null 2>&1; then
  log "already running (PIDs in $STATE/pids)"
  exit 0
fi
if ! command -v slurmctld >/dev/null 2>&1 || ! command -v slurmd >/dev/null 2>&1 \
   || ! command -v sbatch >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
  log "installing slurmd slurmctld slurm-client munge"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmd slurmctld slurm-client munge \
     >/dev/null) || { log "could not install the SLURM packages"; exit 1; }
fi

HOST=$(hostname -s)
CPUS=$(( $(nproc) > 4 ? $(nproc) : 4 ))
# RealMemory a little under the machine's (slurmd refuses a node that claims more than it has)
MEM_MB=$(awk '/MemTotal/ {print int($2 / 1024 * 0.85)}' /proc/meminfo)
MEM_PER_CPU=$((MEM_MB / CPUS))
bash "$HERE/slurm-down.sh"  # whatever an earlier attempt left running (by its recorded PIDs)
rm -rf "$STATE/slurmctld" "$STATE/slurmd"  # this script's own earlier state only
mkdir -p "$STATE/slurmctld" "$STATE/slurmd" "$STATE/log" /etc/slurm /run/munge
cat >/etc/slurm/slurm.conf <<EOF
# written by nightbench's .ci/slurm-up.sh: a single-node test cluster (see that script for why)
ClusterName=nightbench-ci
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
AuthInfo=cred_expire=5
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=$MEM_PER_CPU
ReturnToService=2
KillWait=5
MinJobAge=30
StateSaveLocation=$STATE/slurmctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmdParameters=config_overrides
GresTypes=gpu
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
printf "NodeName=$HOST Name=gpu File=/dev/null\nNodeName=$HOST Name=gpu File=/dev/zero\n" >/etc/slurm/gres.conf

# munged: the package created its key; it runs as the munge user and writes its own pidfile
if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
  log "using the munged already running"
else
  chown munge:munge /run/munge
  rm -f /run/munge/munged.pid
  su -s /bin/sh munge -c "/usr/sbin/munged --pid-file=/run/munge/munged.pid" || fail "munged did not start"
  record munged /run/munge/munged.pid || fail "munged did not write its pidfile"
fi
rm -f "$STATE/slurmctld.pid" "$STATE/slurmd.pid"
slurmctld -c || fail "slurmctld did not start (see $STATE/log/slurmctld.log)"
record slurmctld "$STATE/slurmctld.pid" || fail "slurmctld exited at start: $(tail -n 3 "$STATE/log/slurmctld.log" 2>/dev/null)"
slurmd || fail "slurmd did not start (see $STATE/log/slurmd.log)"
record slurmd "$STATE/slurmd.pid" || fail "slurmd exited at start: $(tail -n 3 "$STATE/log/slurmd.log" 2>/dev/null)"

# the node registers with the controller within a few seconds
for _ in $(seq 60); do
  if sinfo -h -o "%t" 2>/dev/null | grep -qE "^(idle|mix|alloc)"; then
    log "cluster up: $(sinfo -h -o '%P %a %D %t %C' | head -1) (PIDs in $STATE/pids)"
    exit 0
  fi
  sleep 0.5
done
fail "the node did not become idle: $(sinfo -h 2>&1 | head -1); see $STATE/log/"
