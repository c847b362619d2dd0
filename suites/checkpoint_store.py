"""The one place a single-process checkpoint file is saved and loaded.

Two promises:
* Loading never runs code from the file. Every load is torch.load(weights_only=True), which reads
  tensors, lists, tuples, dicts, numbers, strings and None, plus only the globals a caller names; a
  file that needs anything else is refused. So a results folder received from someone else cannot
  run code when its runs are resumed. (Callers store RNG state and bookkeeping as plain data.)
* A damaged file never blocks its run. A file that cannot be read back (truncated, emptied, random
  bytes, refused as above, or not the dict the caller expects) is renamed to
  `<name>.damaged-<UTC time>` (never deleted), one line says so, and loading goes on with the
  previous checkpoint, which every save keeps:

    checkpoint.pt        the latest checkpoint
    checkpoint.prev.pt   the one before it (deleted once the run has finished: it never resumes again)
    checkpoint.pt.tmp    a save in progress (ignored on load)

Each checkpoint carries its own bookkeeping (step, metrics-log offset), so resuming from the
previous one is exact: the run redoes the steps after it and ends as an uninterrupted run would.
"""

from __future__ import annotations

import datetime
import errno
import os
import pickle
import re
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from nightbench.optimizers.errors import InputError

from .layout import CHECKPOINT_FILE, DAMAGED_MARK, PREVIOUS_CHECKPOINT_FILE
# Errors that are not the file's damage (no permission, a vanished file): renaming it would not help,
# so they propagate. Any other error of a load means the file is damaged.
_NOT_DAMAGE = (PermissionError, FileNotFoundError, IsADirectoryError)
_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
# Below this much free space, a failed save is put down to a full disk: torch reports one as
# "[enforce fail at inline_container.cc] unexpected pos", which names neither the disk nor the file.
FULL_DISK_BYTES = 64 * 2**20


class DamagedCheckpointError(InputError):
    """A checkpoint file that cannot be loaded safely: unreadable, or it needs a global that is not allowed."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"checkpoint {path} {reason}")
        self.path, self.reason = Path(path), reason


def _reason(exc: BaseException) -> str:
    """What was wrong with a file, in a few words, from the error torch.load raised on it."""
    text = str(exc)
    unsafe = _UNSAFE_GLOBAL.search(text)
    if unsafe:
        return f"needs {unsafe.group(1)}, which a checkpoint may not use (loading it could run code)"
    if isinstance(exc, pickle.UnpicklingError) and "WeightsUnpickler error:" in text:
        detail = text.split("WeightsUnpickler error:", 1)[1].strip().splitlines()[0]
        return f"holds something a weights-only load refuses ({detail})"
    first_sentence = text.strip().splitlines()[0].split(". ")[0] if text.strip() else ""
    return f"is unreadable ({type(exc).__name__}: {first_sentence[:160]})"


def _utf8_encodable(path: Path) -> bool:
    try:
        str(path).encode("utf-8")
        return True
    except UnicodeEncodeError:  # the locale's file-system encoding kept undecodable bytes as surrogates
        return False


def load_weights_only(path: str | Path, *, map_location: Any = "cpu", allowed_globals: Iterable[Any] = (),
                      mmap: bool = False) -> Any:
    """torch.load(path, weights_only=True) with exactly `allowed_globals` added to what it accepts.

    Raises DamagedCheckpointError naming the file when the file is unreadable or needs another global."""
    path = Path(path)
    with open(path, "rb") as f:
        size, is_zip = os.fstat(f.fileno()).st_size, zipfile.is_zipfile(f)
    if not is_zip:  # said plainly: torch's own complaint would name a pickle opcode, or mmap
        raise DamagedCheckpointError(path, "is empty" if size == 0 else
                                     "is not a whole torch.save archive (cut short, or other bytes)")
    try:
        with torch.serialization.safe_globals(list(allowed_globals)), open(path, "rb") as handle:
            # torch needs a filename to map the file, and passes it on as UTF-8: a path outside ASCII
            # under a non-UTF-8 locale (LC_ALL=C) cannot go that way, so such a file is read instead.
            source = path if mmap and _utf8_encodable(path) else handle
            return torch.load(source, map_location=map_location, weights_only=True, mmap=mmap and source is path)
    except _NOT_DAMAGE:
        raise
    except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError, EOFError, OSError, UnpicklingError, ...
        raise DamagedCheckpointError(path, _reason(exc)) from exc


def move_aside(path: str | Path) -> Path:
    """Rename a damaged file or folder to `<name>.damaged-<UTC time>[-n]`, never over another; the new path."""
    path = Path(path)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    aside = path.with_name(f"{path.name}{DAMAGED_MARK}{stamp}")
    n = 1
    while aside.exists():  # the run lock is held: nobody else names files here meanwhile
        aside = path.with_name(f"{path.name}{DAMAGED_MARK}{stamp}-{n}")
        n += 1
    os.rename(path, aside)
    return aside


def announce_on_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class CheckpointStore:
    """The checkpoint files of one run directory: save (keeping the previous one) and load safely.

    required_keys: what a loaded payload must hold; a file that loads but lacks one counts as damaged.
    announce: receives the one line written per damaged file (default: standard error).
    """

    def __init__(self, run_dir: str | Path, *, required_keys: Iterable[str] = (),
                 announce: Callable[[str], None] = announce_on_stderr):
        self.run_dir = Path(run_dir)
        self.required_keys = tuple(required_keys)
        self.announce = announce

    @property
    def latest(self) -> Path:
        return self.run_dir / CHECKPOINT_FILE

    @property
    def previous(self) -> Path:
        return self.run_dir / PREVIOUS_CHECKPOINT_FILE

    @property
    def in_progress(self) -> Path:
        return self.run_dir / (CHECKPOINT_FILE + ".tmp")

    def exists(self) -> bool:
        return self.latest.exists() or self.previous.exists()

    def save(self, payload: dict) -> None:
        """Write `payload` as the latest checkpoint; the latest so far becomes the previous one.

        The new file is complete on disk before any rename, and each rename is atomic, so a kill at any
        moment leaves at least one whole checkpoint under one of the two names."""
        try:
            with open(self.in_progress, "wb") as f:
                torch.save(payload, f)
                f.flush()
                os.fsync(f.fileno())
        except BaseException as exc:  # a full disk, a kill: no partial file is left behind
            free = shutil.disk_usage(self.run_dir).free  # measured before the partial file goes
            self.in_progress.unlink(missing_ok=True)
            if isinstance(exc, Exception) and free < FULL_DISK_BYTES:
                # the command line's one line for a machine failure (cli.environment_failure) then names it
                raise OSError(errno.ENOSPC, f"No space left on device ({free / 2**20:.1f} MiB free) for a checkpoint",
                              str(self.in_progress)) from exc
            raise
        self._check_loadable(self.in_progress)
        if self.latest.exists():
            os.replace(self.latest, self.previous)
        os.replace(self.in_progress, self.latest)

    def drop_previous(self) -> None:
        """Delete the fallback; for a finished run only (its summary is written), which never loads one."""
        self.previous.unlink(missing_ok=True)

    def _check_loadable(self, path: Path) -> None:
        """Refuse to keep a checkpoint that no load would accept (say, a plugin's optimizer state holding
        its own objects): without this, every resume would move it aside and start the run again."""
        try:
            load_weights_only(path, mmap=True)  # reads the structure; tensor data stays on disk
        except DamagedCheckpointError as exc:
            path.unlink()
            raise RuntimeError(f"cannot save a checkpoint that loads safely: it {exc.reason}; model, optimizer "
                               "and scheduler state must be tensors, lists, dicts, numbers or strings") from exc

    def load(self, map_location: Any = "cpu") -> dict | None:
        """The newest checkpoint that loads safely, or None when there is none (the run starts again).

        Each damaged file on the way is moved aside with one announced line."""
        for path in (self.latest, self.previous):
            if not path.exists():
                continue
            try:
                return self._load_one(path, map_location)
            except DamagedCheckpointError as exc:
                aside = move_aside(path)
                then = (f"resuming from {self.previous.name}" if path == self.latest and self.previous.exists()
                        else "starting the run again")
                self.announce(f"{exc}; kept it as {aside.name}, {then}")
        return None

    def _load_one(self, path: Path, map_location: Any) -> dict:
        payload = load_weights_only(path, map_location=map_location)
        if not isinstance(payload, dict):
            raise DamagedCheckpointError(path, f"holds a {type(payload).__name__}, not a checkpoint's dict")
        missing = [key for key in self.required_keys if key not in payload]
        if missing:
            raise DamagedCheckpointError(path, f"lacks {', '.join(missing)}")
        return payload
