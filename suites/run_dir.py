"""The run directory: the only thing a run leaves behind, and all a report reads.

    <results>/<suite>/<preset>/<optimizer>/<run_name>/     (where: layout.py)
        config.json     the resolved configuration (hyperparameters, policy, suite config, environment)
        metrics.jsonl   append-only log, one JSON object per line, each with "kind" and "time"
        checkpoint.pt   the latest checkpoint (engine-private), replaced atomically
        checkpoint.prev.pt  the one before it (a damaged latest is set aside as *.damaged-<UTC time>);
                            deleted once the run has finished
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
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .layout import LOCK_FILE, METRICS_FILE

class RunLockedError(RuntimeError):
    """Another process is working on this run directory."""


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


def current_umask() -> int:
    """The process's umask, read without changing it where Linux says it (/proc), else set and restored."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str, mode: int | None = None, errors: str = "strict") -> None:
    """Write via a temporary file in the same directory and rename: readers never see half a file.

    The file gets `mode`, by default what open() would give it (0o666 less the umask; not mkstemp's
    private 0o600: colleagues on a shared results folder read config.json and summary.json as they
    read metrics.jsonl); `errors` is the UTF-8 encoder's ('surrogateescape' writes back text that
    came from undecodable path bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors=errors) as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask() if mode is None else mode)
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
    path = Path(run_dir) / METRICS_FILE
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
    """Hold an exclusive lock on the run directory so two processes never work on one run.

    The lock is an flock: the kernel releases it when its holder dies, so a dead holder's run is
    taken over by the next process. The holder writes its host and pid into the file, for the
    message another process gets."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / LOCK_FILE, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise RunLockedError(f"{run_dir} is being run elsewhere ({holder}); "
                                 "it is left to that process (run the command again once it has ended)") from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {os.uname().nodename}")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def is_locked(run_dir: Path) -> bool:
    """Whether a live process holds the run's lock right now."""
    path = Path(run_dir) / LOCK_FILE
    if not path.exists():
        return False
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
        return False
