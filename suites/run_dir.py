"""The run directory: the only thing a run leaves behind, and all a report reads.

    <results>/<suite>/<preset>/<optimizer>/<run_name>/
        config.json     the resolved configuration (hyperparameters, policy, suite config, environment)
        metrics.jsonl   append-only log, one JSON object per line, each with "kind" and "time"
        checkpoint.pt   the latest checkpoint (engine-private), replaced atomically
        summary.json    written atomically once the run ends: status completed | diverged | failed
        .lock           held while a process works on the run

A run without summary.json is unfinished (or was killed); running the same command again resumes it.
A run whose summary says completed or diverged is finished and is never rewritten.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import math
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

FINISHED_STATUSES = ("completed", "diverged")


class RunLockedError(RuntimeError):
    """Another process is working on this run directory."""


def safe_name(name: str) -> str:
    """A filesystem-safe rendering of an optimizer or suite name (the real name lives in config.json)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._")
    return cleaned or "unnamed"


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if hasattr(value, "item"):  # numpy / torch scalars
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON-serializable: {type(value).__name__}")


def _sanitize(value: Any) -> Any:
    """Replace non-finite floats by strings so the files stay strict JSON (NaN is not JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _sanitize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_sanitize(v) for v in value]
    return value


def dumps(value: Any, **kwargs: Any) -> str:
    return json.dumps(_sanitize(value), default=_json_default, allow_nan=False, **kwargs)


def identity_hash(identity: dict) -> str:
    """Eight hex digits of the canonical JSON of what determines a run's computation."""
    canonical = dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:8]


def run_name(protocol: str, hyperparameters: dict, identity: dict, seed: int) -> str:
    """e.g. 'default-lr1e-03-3fa2b1c9-seed0': readable lr, exact hash, seed."""
    lr = hyperparameters.get("lr")
    lr_part = f"lr{lr:.0e}-" if isinstance(lr, (int, float)) else ""
    return f"{protocol}-{lr_part}{identity_hash(identity)}-seed{seed}"


def run_path(results_root: str | Path, suite: str, preset: str, optimizer: str, name: str) -> Path:
    return Path(results_root) / safe_name(suite) / safe_name(preset) / safe_name(optimizer) / name


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file in the same directory and rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_json(path: Path, value: Any) -> None:
    atomic_write_text(path, dumps(value, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> dict | None:
    """The JSON object in `path`, or None if it is missing or unreadable (half-written, corrupt)."""
    try:
        with open(path) as f:
            value = json.load(f)
        return value if isinstance(value, dict) else None
    except (OSError, ValueError):
        return None


def read_summary(run_dir: Path) -> dict | None:
    return read_json(Path(run_dir) / "summary.json")


def is_finished(run_dir: Path) -> bool:
    summary = read_summary(run_dir)
    return bool(summary) and summary.get("status") in FINISHED_STATUSES


class MetricsLog:
    """The append-only metrics.jsonl of one run.

    On open, a torn last line (a process killed mid-write) is cut off; `truncate(offset)` drops
    what was logged after a checkpoint, so a resumed run logs each step exactly once.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_torn_tail()
        self._file = open(self.path, "a")

    def _drop_torn_tail(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
            with open(self.path, "r+b") as f:
                f.truncate(keep)

    def append(self, record: dict) -> None:
        self._file.write(dumps(record) + "\n")
        self._file.flush()

    def offset(self) -> int:
        self._file.flush()
        return self._file.tell()

    def truncate(self, offset: int) -> None:
        self._file.flush()
        self._file.truncate(offset)
        self._file.seek(offset)

    def close(self) -> None:
        self._file.close()


def read_metrics(run_dir: Path) -> list[dict]:
    """All complete records of a run's metrics log (a torn or corrupt line is skipped)."""
    path = Path(run_dir) / "metrics.jsonl"
    records = []
    if not path.exists():
        return records
    with open(path) as f:
        for line in f:
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                records.append(value)
    return records


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run directory so two processes never work on one run."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(f"another process is running {run_dir}; wait for it or stop it") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
