"""A run's DeepSpeed checkpoints: <run>/deepspeed/<tag>/, in DeepSpeed's own layout.

Each tag (step<N>) holds DeepSpeed's files, every rank's random streams (rng_rank<r>.pt) and a meta
file (world size, ZeRO stage, optimizer view); DeepSpeed's 'latest' names the newest complete tag
and is replaced atomically. This tag and the one before it are kept (a fallback if this one is
damaged) until the run finishes, then only this one; a tag whose files do not load safely is set
aside and the one before it loaded.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from ..checkpoint_store import CheckpointStore, announce_on_stderr, load_weights_only
from ..config import ConfigError
from ..run_dir import atomic_write_json, atomic_write_text, read_json
from ..training_host import rng_state, seed_everything, set_rng_state
from .launch import ProcessGroup, barrier, broadcast_from_main
from .safe_load import META_FILE, complete_tags, read_latest, tag_step, usable_tag

CHECKPOINT_DIR = "deepspeed"  # inside the run directory; DeepSpeed's own layout below it


def rank_seed(seed: int, rank: int, step: int) -> int:
    """Rank r > 0's own random stream (dropout must differ across ranks), reproducible per step."""
    return (seed * 1_000_003 + rank * 7_919 + step) % 2**63


def save(engine: Any, run_dir: Path, group: ProcessGroup, step: int, trainer_state: dict, meta: dict) -> None:
    """Every rank saves its part of tag step<step>; rank 0 then writes the meta file (with `meta`),
    points 'latest' at the tag and removes the tags before the previous one."""
    checkpoint_dir = Path(run_dir) / CHECKPOINT_DIR
    tag = f"step{step}"
    tag_dir = checkpoint_dir / tag
    tag_dir.mkdir(parents=True, exist_ok=True)
    torch.save(rng_state(), tag_dir / f"rng_rank{group.rank}.pt")
    engine.save_checkpoint(str(checkpoint_dir), tag=tag, client_state=trainer_state, save_latest=False)
    barrier()  # every rank's files are complete before 'latest' names them
    if group.is_main:
        atomic_write_json(tag_dir / META_FILE, {"world_size": group.world_size, "step": step, **meta})
        atomic_write_text(checkpoint_dir / "latest", tag)  # DeepSpeed's pointer, replaced atomically
        earlier = [t for t in complete_tags(checkpoint_dir) if tag_step(t) < step]
        _remove_tags_except(checkpoint_dir, {tag, *earlier[:1]})  # and the one before it: a fallback
    barrier()


def drop_fallback(run_dir: Path) -> None:
    """(Rank 0, once the run has finished: it never resumes again) Keep only the tag 'latest' names."""
    checkpoint_dir = Path(run_dir) / CHECKPOINT_DIR
    latest = read_latest(checkpoint_dir)
    if latest is not None:
        _remove_tags_except(checkpoint_dir, {latest})


def _remove_tags_except(checkpoint_dir: Path, keep: set[str]) -> None:
    for old in checkpoint_dir.iterdir():
        if old.is_dir() and tag_step(old.name) is not None and old.name not in keep:
            shutil.rmtree(old, ignore_errors=True)  # tags set aside as damaged are not step<N>: kept


def load(engine: Any, run_dir: Path, group: ProcessGroup, stage: int, seed: int) -> dict | None:
    """Every rank loads the newest tag whose files load safely (damaged tags are set aside) and gets back
    the trainer's state saved with it; None: there is none, start again."""
    run_dir = Path(run_dir)
    checkpoint_dir = run_dir / CHECKPOINT_DIR
    tag = broadcast_from_main(_latest_tag(checkpoint_dir) if group.is_main else None)
    if tag is None:
        if CheckpointStore(run_dir).exists():
            raise ConfigError(f"{run_dir} holds a checkpoint of a run without --deepspeed; "
                              "resume it without --deepspeed, or start over in another --results folder")
        return None
    tag_dir = checkpoint_dir / tag
    meta = broadcast_from_main(read_json(tag_dir / META_FILE) if group.is_main else None) or {}
    check_resumable(meta, stage, group.world_size)
    path, trainer_state = engine.load_checkpoint(str(checkpoint_dir), tag=tag, load_optimizer_states=True,
                                                 load_lr_scheduler_states=False, load_module_strict=True)
    if path is None:
        raise RuntimeError(f"DeepSpeed could not load the checkpoint {tag_dir}")
    rng_file = tag_dir / f"rng_rank{group.rank}.pt"
    if meta.get("world_size") == group.world_size and rng_file.exists():
        set_rng_state(load_weights_only(rng_file))  # plain data: no global allowed
    else:  # a new world size: ranks start fresh streams from (seed, rank, step)
        step = trainer_state["state"]["step"]
        seed_everything(rank_seed(seed, group.rank, step) if group.rank else seed)
    return trainer_state


def _latest_tag(checkpoint_dir: Path) -> str | None:
    """(Rank 0) The newest tag whose every file loads without running code; 'latest' is pointed at it."""
    tag = usable_tag(checkpoint_dir, announce=announce_on_stderr)
    if tag is not None and read_latest(checkpoint_dir) != tag:
        atomic_write_text(checkpoint_dir / "latest", tag)  # so every reader of 'latest' sees this tag
    return tag


def _deepspeed_version() -> str:
    import deepspeed

    return deepspeed.__version__


def latest_checkpoint_meta(run_dir: Path) -> dict | None:
    """What the latest DeepSpeed checkpoint of a run records (world size, ZeRO stage, step), or None."""
    checkpoint_dir = Path(run_dir) / CHECKPOINT_DIR
    tag = read_latest(checkpoint_dir)
    return None if tag is None else read_json(checkpoint_dir / tag / META_FILE)


def check_resumable(meta: dict | None, stage: int, world_size: int) -> None:
    """DeepSpeed re-partitions nothing: a ZeRO 1/2/3 checkpoint needs the same stage and world size."""
    if not meta:
        return
    saved_stage, saved_world = meta.get("zero_stage"), meta.get("world_size")
    if saved_stage != stage and (saved_stage or stage):
        raise ConfigError(f"this run was checkpointed under ZeRO stage {saved_stage}; resume it with "
                          f"--zero-stage {saved_stage} (the optimizer state is laid out per stage)")
    if stage > 0 and saved_world != world_size:
        raise ConfigError(
            f"this run was checkpointed by {saved_world} processes under ZeRO stage {stage}, and DeepSpeed "
            f"{_deepspeed_version()} cannot re-partition ZeRO optimizer state for {world_size}; resume it with "
            f"{saved_world} processes (ZeRO 0 checkpoints resume at any world size)")
