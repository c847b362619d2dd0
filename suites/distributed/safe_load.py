"""Checking a DeepSpeed checkpoint's files before DeepSpeed reads them.

DeepSpeed loads its own files with torch.load(weights_only=False), which runs whatever a pickle
asks. So every .pt file of a tag is first read here with a weights-only load that accepts, beyond
tensors and plain data, exactly the globals DeepSpeed's files hold under the settings nightbench
allows (ZeRO 0-3, fp32 or bf16 autocast, no fp16, no offload). ZeRO 0 files need none; ZeRO 1-3:

  LossScaler        the optimizer wrapper's loss scaler, saved as an object (a static scale of 1
                    here: nightbench refuses fp16, so DynamicLossScaler never appears)
  ZeroStageEnum     the stage, recorded as this enum
  fragment_address  (ZeRO 1/2) each parameter's (numel, start) slice of the flat partition

Each is rebuilt from data alone (no code of the file's choosing runs). A file that needs anything
else, or cannot be read, is refused with its name; the trainer then sets the tag aside as damaged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

from ..checkpoint_store import DAMAGED_MARK, DamagedCheckpointError, load_weights_only, move_aside
from ..run_dir import read_json

META_FILE = "nightbench.json"  # per tag, written by rank 0 once every rank's files are complete
MODEL_STATES_FILE = "mp_rank_00_model_states.pt"
_TAG = re.compile(r"step(\d+)")


def deepspeed_globals() -> list[Any]:
    """The globals DeepSpeed's checkpoint files need, beyond what weights_only accepts (see above)."""
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, ZeroStageEnum, fragment_address]


def load_deepspeed_file(path: str | Path, map_location: Any = "cpu", mmap: bool = False) -> Any:
    """One file of a DeepSpeed checkpoint, read without running code (DamagedCheckpointError if it cannot be)."""
    return load_weights_only(path, map_location=map_location, allowed_globals=deepspeed_globals(), mmap=mmap)


def expected_files(stage: int, world_size: int) -> list[str]:
    """The files DeepSpeed writes per tag: whole module state below ZeRO 3, per-rank pieces of what is partitioned."""
    per_rank = [f"zero_pp_rank_{rank}_mp_rank_00_{{}}_states.pt" for rank in range(world_size)]
    if stage == 0:
        return [MODEL_STATES_FILE]
    if stage in (1, 2):
        return [MODEL_STATES_FILE] + [name.format("optim") for name in per_rank]
    return [name.format(kind) for kind in ("model", "optim") for name in per_rank]


def check_tag(tag_dir: str | Path) -> None:
    """Raise DamagedCheckpointError, naming the file, unless every file of the tag loads safely and is there."""
    tag_dir = Path(tag_dir)
    meta = read_json(tag_dir / META_FILE)
    if meta is None:
        raise DamagedCheckpointError(tag_dir / META_FILE, "is missing or unreadable (the save did not complete)")
    try:
        stage, world_size = int(meta.get("zero_stage", 0)), int(meta.get("world_size", 1))
    except (TypeError, ValueError):
        raise DamagedCheckpointError(tag_dir / META_FILE, "records no usable ZeRO stage and world size") from None
    for name in expected_files(stage, world_size):
        if not (tag_dir / name).is_file():
            raise DamagedCheckpointError(tag_dir / name, "is missing")
    for path in sorted(tag_dir.rglob("*.pt")):
        load_deepspeed_file(path, mmap=True)  # reads the pickle; tensor data stays on disk


def tag_step(name: str) -> int | None:
    """The step of a tag folder named step<N>, or None for any other name."""
    match = _TAG.fullmatch(name)
    return int(match.group(1)) if match else None


def read_latest(checkpoint_dir: Path) -> str | None:
    """The tag DeepSpeed's 'latest' pointer names, or None."""
    try:
        return (Path(checkpoint_dir) / "latest").read_text().strip() or None
    except OSError:
        return None


def complete_tags(checkpoint_dir: Path) -> list[str]:
    """Tags whose save completed (their META_FILE is written last), newest first; damaged ones excluded."""
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        return []
    tags = [p.name for p in checkpoint_dir.iterdir()
            if p.is_dir() and tag_step(p.name) is not None and (p / META_FILE).is_file()]
    return sorted(tags, key=tag_step, reverse=True)


def usable_tag(checkpoint_dir: Path, announce: Callable[[str], None]) -> str | None:
    """The newest tag that loads safely: 'latest' first, then the other complete tags, newest first.

    A tag that fails the check is renamed <tag>.damaged-<UTC time> (never deleted) and announced in one line."""
    checkpoint_dir = Path(checkpoint_dir)
    latest = read_latest(checkpoint_dir)
    candidates = [latest] if latest and DAMAGED_MARK not in latest and (checkpoint_dir / latest).is_dir() else []
    candidates += [tag for tag in complete_tags(checkpoint_dir) if tag not in candidates]
    for index, tag in enumerate(candidates):
        try:
            check_tag(checkpoint_dir / tag)
            return tag
        except DamagedCheckpointError as exc:
            aside = move_aside(checkpoint_dir / tag)
            then = (f"resuming from {candidates[index + 1]}" if index + 1 < len(candidates)
                    else "starting the run again")
            announce(f"{exc}; kept the checkpoint as {aside.name}, {then}")
    return None
