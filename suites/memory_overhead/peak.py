"""Peak memory of one training step: the counters, and the fresh subprocess that reads them.

On CPU the kernel's high-water mark of resident memory (`VmHWM` in /proc/self/status) is reset by
writing "5" to /proc/self/clear_refs, so it can bracket exactly one step. The reading is still
process-wide, so each measurement runs in a fresh subprocess (`peak_worker`) that holds nothing
but the one model and optimizer. `resource.getrusage` cannot be reset and `tracemalloc` does not
see torch's allocations, so neither is used. On CUDA torch's own allocator counters are used.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

PROC_STATUS = "/proc/self/status"
CLEAR_REFS = "/proc/self/clear_refs"
RESULT_PREFIX = "NIGHTBENCH_PEAK_RESULT "
WORKER_MODULE = "nightbench.suites.memory_overhead.peak_worker"
# glibc otherwise raises its mmap threshold after the first large free (up to 32 MiB) and keeps later
# tensors of that size on its heap after they die, so resident memory would overstate what is live.
# A fixed threshold makes every tensor above 64 KiB its own mapping, returned to the kernel when freed.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536"}
CPU_METHOD = "VmHWM after writing 5 to /proc/self/clear_refs (fresh subprocess)"
CUDA_METHOD = "torch.cuda.max_memory_allocated after reset_peak_memory_stats (fresh subprocess)"

# Optimizers with two bodies (a `foreach` argument; "single" = False, "multi" = True): the fields
# above are for the body the run uses (the record's "body"), these for each body measured on its own.
BODIES = ("single", "multi")
BODY_FIELDS = tuple(f"{field}_{body}" for body in BODIES
                    for field in ("peak_step_increment_bytes", "optimizer_step_peak_increment_bytes"))
PEAK_FIELDS = ("peak_step_bytes", "rss_before_step", "peak_step_increment_bytes",
               "optimizer_step_peak_bytes", "optimizer_step_peak_increment_bytes") + BODY_FIELDS


def read_status_bytes(field: str) -> int:
    """A memory line of /proc/self/status (e.g. 'VmHWM', 'VmRSS'), in bytes."""
    with open(PROC_STATUS) as status:
        for line in status:
            if line.startswith(field + ":"):
                value, unit = line.split()[1:3]
                if unit != "kB":
                    raise RuntimeError(f"unexpected unit {unit!r} for {field} in {PROC_STATUS}")
                return int(value) * 1024
    raise RuntimeError(f"{PROC_STATUS} has no {field} line")


def reset_high_water_mark() -> None:
    """Make VmHWM equal to the current resident size (Linux >= 4.0)."""
    with open(CLEAR_REFS, "w") as clear_refs:
        clear_refs.write("5")


def cpu_peak_unavailable_reason() -> str | None:
    """None where VmHWM can be reset and read here; otherwise why not (shown in the record)."""
    if not os.path.exists(PROC_STATUS):
        return f"{PROC_STATUS} does not exist (not Linux): the CPU peak cannot be read"
    try:
        reset_high_water_mark()
        read_status_bytes("VmHWM")
    except OSError as exc:
        return f"{CLEAR_REFS} is not writable ({exc.strerror or exc}): the high-water mark cannot be reset"
    except RuntimeError as exc:
        return str(exc)
    return None


def unavailable(reason: str, method: str | None = None) -> dict[str, Any]:
    """A peak result with every figure null and the reason recorded."""
    return {**{name: None for name in PEAK_FIELDS}, "peak_method": method, "peak_unavailable_reason": reason}


def measure_peak_in_subprocess(request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """Run `peak_worker` on `request` in a fresh Python process and return its result.

    A worker that fails or runs too long gives null figures with the reason, so the state-size and
    timing figures of the unit are still recorded.
    """
    env = {**os.environ, **MALLOC_ENV}
    command = [sys.executable, "-m", WORKER_MODULE, json.dumps(request)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired:
        return unavailable(f"the peak-memory subprocess ran past peak_timeout_s={timeout_s}")
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-1500:]
        return unavailable(f"the peak-memory subprocess exited with status {done.returncode}: {tail}")
    for line in reversed(done.stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            return json.loads(line[len(RESULT_PREFIX):])
    return unavailable(f"the peak-memory subprocess printed no result line; stdout ended: {done.stdout[-500:]}")
