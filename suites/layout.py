"""Where everything of a results root lives: the one definition of the on-disk layout.

    <results>/<suite>/<preset>/<optimizer>/<run_name>/        one run (see run_dir.py for its files)
        config.json  metrics.jsonl  checkpoint.pt  checkpoint.prev.pt  summary.json  .lock
    <results>/<suite>/<preset>/<optimizer>/<run_name>.request.json   what the run was asked to do
    <results>/_tuning/<preset>/<suite>/<optimizer>.json       the tuning protocol's record (best lr)
    <results>/_logs/<stage>/<run label>-<pid>.log             a leaderboard child's output
    <results>/_cache/                                         corpora, tokenizers, datasets (shared)
    <results>/_slurm/ and <run>/JOB_FILE                        the SLURM executor's (leaderboard/slurm_queue.py)

Top-level folders starting with '_' hold no runs. This module imports nothing heavy: the engine,
the leaderboard and the reports all use it.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Iterable

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"
CHECKPOINT_FILE = "checkpoint.pt"
PREVIOUS_CHECKPOINT_FILE = "checkpoint.prev.pt"  # the one before it, kept while the run can still resume
DAMAGED_MARK = ".damaged-"  # a damaged checkpoint is renamed <name>.damaged-<UTC time>, never deleted
LOCK_FILE = ".lock"
REQUEST_SUFFIX = ".request.json"
JOB_FILE = "job.json"  # the SLURM executor's record of a run's jobs (leaderboard/slurm_queue.py)
RUN_FILES = (CONFIG_FILE, METRICS_FILE, SUMMARY_FILE)  # any of them marks a run directory
RUN_DEPTH = 4  # suite / preset / optimizer / run_name below the results root
CACHE_DIR, LOGS_DIR, TUNING_DIR = "_cache", "_logs", "_tuning"
MAX_NAME_LENGTH = 80  # a path component well under every filesystem's 255-byte limit


def safe_name(name: str) -> str:
    """A filesystem-safe rendering of an optimizer or suite name (the real name lives in config.json).

    Long names are cut and given a digest of the whole name, so two long names never collide."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "unnamed"
    if len(cleaned) <= MAX_NAME_LENGTH:
        return cleaned
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{cleaned[:MAX_NAME_LENGTH - 9]}-{digest}"


def run_path(results_root: str | Path, suite: str, preset: str, optimizer: str, name: str) -> Path:
    return Path(results_root) / safe_name(suite) / safe_name(preset) / safe_name(optimizer) / name


def request_path(run_dir: Path) -> Path:
    """The request file beside a run directory (a child process starts from it)."""
    return run_dir.with_name(run_dir.name + REQUEST_SUFFIX)


def tuning_record_path(results_root: str | Path, preset: str, suite: str, optimizer: str) -> Path:
    return Path(results_root) / TUNING_DIR / safe_name(preset) / safe_name(suite) / f"{safe_name(optimizer)}.json"


def identity_from_path(run_dir: Path, results_root: Path) -> dict[str, str | None]:
    """suite / preset / optimizer / run_name as the directory names spell them (sanitized)."""
    parts = Path(run_dir).relative_to(results_root).parts
    if len(parts) == RUN_DEPTH:
        suite, preset, optimizer, name = parts
        return {"suite": suite, "preset": preset, "optimizer": optimizer, "run_name": name}
    return {"suite": None, "preset": None, "optimizer": None, "run_name": "/".join(parts)}


def results_root(path: str | Path) -> Path:
    """An existing results root to read (report, status, verify), or an InputError saying what is wrong."""
    root = Path(path)
    if not root.is_dir():
        from nightbench.optimizers.errors import InputError  # here: this module imports nothing heavy

        found = "is a file, not a folder" if root.exists() else "does not exist"
        raise InputError(f"results directory not found: {root} {found} (expected the --results folder of your runs)")
    return root


def find_runs(results_root: str | Path, markers: Iterable[str] = RUN_FILES, *, empty: bool = False,
              planned: bool = False) -> list[Path]:
    """The run directories under a results root: every folder holding one of the `markers` files
    (a run has no runs inside it), at the run depth or not (a report names a misplaced one); with
    `empty`, every folder at the run depth; with `planned`, the run directory of every request file
    (a planned run, whose folder may not exist yet).

    Top-level folders whose names start with '_' (cache, logs, tuning records: caches may hold
    unrelated config.json files) and hidden folders are skipped; sanitized names deeper down may
    start with '_'."""
    root, markers = Path(results_root), set(markers)
    found: set[Path] = set()
    for current, dirnames, filenames in os.walk(root):
        here = Path(current)
        depth = len(here.relative_to(root).parts)
        if planned and depth == RUN_DEPTH - 1:
            found.update(here / name[: -len(REQUEST_SUFFIX)] for name in filenames if name.endswith(REQUEST_SUFFIX))
        if markers & set(filenames) or (empty and depth == RUN_DEPTH):
            found.add(here)
            dirnames[:] = []
            continue
        hidden = ("_", ".") if depth == 0 else (".",)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(hidden)) if depth < RUN_DEPTH else []
    return sorted(found)
