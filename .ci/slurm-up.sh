#!/usr/bin/env bash
# A single-node SLURM cluster for the SLURM executor's tests: installs slurmd, slurmctld, the SLURM
# client and munge (Debian packages), writes slurm.conf, starts munged, slurmctld and slurmd, and
# records their PIDs in $NIGHTBENCH_SLURM_STATE/pids (default /tmp/nightbench-slurm) for
# .ci/slurm-down.sh. Needs root. Exits 0 when the cluster answers, 1 (saying why) when it cannot
# be brought up; the tests then skip, saying why.
#
# The controller starts from a clean state (-c): jobs of an earlier cluster on this machine are
# forgotten. Settings chosen for tests (slurm.conf below):
#   KillWait=5           a job that does not stop on SIGTERM (submitit ignores it) is killed 5 s
#                        later, not 30: scancel and time limits take effect quickly
#   AuthInfo=cred_expire=5
#                        a requeued job (time limit, preemption) may start again after 5 s instead of 120
#   SchedulerParameters=sched_interval=2,bf_interval=2
#                        pending jobs (a requeued one, an array's next task) are looked at every 2 s
#   MinJobAge=30         ended jobs leave the controller's memory after 30 s
#   DefMemPerCPU         a job without --mem takes its share of memory, so jobs run side by side
#   CPUs (at least 4) with SlurmdParameters=config_overrides
GresTypes=gpu
#                        a small machine offers 4 job slots, not fewer: the tests' toy jobs mostly sleep
#                        (to outlast a time limit, to be killed midway), so more of them overlap
set -euo pipefail

STATE=${NIGHTBENCH_SLURM_STATE:-/tmp/nightbench-slurm}
log() { echo "slurm-up: $*" >&2; }

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
mkdir -p "$STATE" /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/munge
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
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmdParameters=config_overrides
GresTypes=gpu
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$HOST CPUs=$CPUS RealMemory=$MEM_MB Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
printf "NodeName=$HOST Name=gpu File=/dev/null\nNodeName=$HOST Name=gpu File=/dev/zero\n" >/etc/slurm/gres.conf

# munged: the package created its key; it runs as the munge user and writes its own pidfile
chown munge:munge /run/munge
rm -f /run/munge/munged.pid
su -s /bin/sh munge -c "/usr/sbin/munged --pid-file=/run/munge/munged.pid" \
  || { log "munged did not start"; exit 1; }
rm -f "$STATE/slurmctld.pid" "$STATE/slurmd.pid"
slurmctld -c || { log "slurmctld did not start (see /var/log/slurm/slurmctld.log)"; exit 1; }
slurmd || { log "slurmd did not start (see /var/log/slurm/slurmd.log)"; exit 1; }

# the daemons write their pidfiles once they have forked; wait for them, then record the PIDs
for _ in $(seq 50); do
  [ -s /run/munge/munged.pid ] && [ -s "$STATE/slurmctld.pid" ] && [ -s "$STATE/slurmd.pid" ] && break
  sleep 0.2
done
{
  echo "munged $(cat /run/munge/munged.pid)"
  echo "slurmctld $(cat "$STATE/slurmctld.pid")"
  echo "slurmd $(cat "$STATE/slurmd.pid")"
} >"$STATE/pids"

# the node registers with the controller within a few seconds
for _ in $(seq 60); do
  if sinfo -h -o "%t" 2>/dev/null | grep -qE "^(idle|mix|alloc)"; then
    log "cluster up: $(sinfo -h -o '%P %a %D %t %C' | head -1) (PIDs in $STATE/pids)"
    exit 0
  fi
  sleep 0.5
done
log "the node did not become idle: $(sinfo -h 2>&1 | head -1); see /var/log/slurm/"
exit 1
