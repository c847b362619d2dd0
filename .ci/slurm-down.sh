#!/usr/bin/env bash
# Stops the daemons .ci/slurm-up.sh started, by the PIDs it recorded (never by name), and removes
# the record. A PID whose process is gone, or now belongs to another program, is left alone, and so
# is a munged that slurm-up.sh found running (it records only what it started).
set -uo pipefail

STATE=${NIGHTBENCH_SLURM_STATE:-/tmp/nightbench-slurm}
[ -s "$STATE/pids" ] || exit 0

# jobs of this test cluster first: their steps outlive slurmd
if command -v squeue >/dev/null 2>&1; then
  jobs=$(timeout 20 squeue -h -o %A 2>/dev/null | sort -u)
  if [ -n "$jobs" ]; then
    scancel $jobs 2>/dev/null
    for _ in $(seq 40); do
      [ -z "$(timeout 20 squeue -h -o %A 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
fi
# slurmd first (it runs the jobs), the controller next, munge last (the others authenticate through it)
stopped=""
for name in slurmd slurmctld munged; do
  pid=$(awk -v n="$name" '$1 == n {print $2}' "$STATE/pids")
  [ -n "$pid" ] || continue
  if [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$name" ]; then
    continue  # already gone (or the PID was reused)
  fi
  kill -TERM "$pid" 2>/dev/null
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null
  fi
  stopped="$stopped $name"
done
rm -f "$STATE/pids"
echo "slurm-down: stopped${stopped:- nothing (already gone)}" >&2
