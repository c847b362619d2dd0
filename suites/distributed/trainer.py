"""The training loop under DeepSpeed: the engine's Trainer with backward, step and checkpoints done
through a DeepSpeed engine, on one rank's share of every global batch.

The global batch is the suite's. Each of the W ranks takes its contiguous 1/W share and runs the
Trainer's accumulation on it (micro-batch loss SUM / (count of the whole global batch / W));
DeepSpeed averages gradients over the ranks, so the update is that of the global batch-mean loss,
as in one process. The logged loss is summed over the ranks (the global batch's loss).
Checkpoints go through DeepSpeed's API into <run>/deepspeed/<tag>/; only rank 0 writes metrics.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from typing import Any, Iterator

import torch


from ..batching import split_batch
from ..checkpoint_store import CheckpointStore, announce_on_stderr, load_weights_only
from ..config import ConfigError
from ..run_dir import atomic_write_json, atomic_write_text, read_json
from ..trainer import Trainer, TrainingState, _rng_state, _set_rng_state, seed_everything
from .launch import ProcessGroup, all_reduce_sum, barrier, broadcast_from_main
from .ds_config import zero_stage
from .safe_load import META_FILE, complete_tags, read_latest, tag_step, usable_tag
from .support import optimizer_view
from .zero_pieces import ZeroPieces

CHECKPOINT_DIR = "deepspeed"  # inside the run directory; DeepSpeed's own layout below it


class NullLog:
    """The metrics log of ranks other than 0: accepts records, writes nothing."""

    def append(self, record: dict) -> None:
        pass

    def offset(self) -> int:
        return 0

    def truncate(self, offset: int) -> None:
        pass

    def close(self) -> None:
        pass


def rank_seed(seed: int, rank: int, step: int) -> int:
    """Rank r > 0's own random stream (dropout must differ across ranks), reproducible per step."""
    return (seed * 1_000_003 + rank * 7_919 + step) % 2**63


class DeepSpeedTrainer(Trainer):
    """Trainer whose model and optimizer are wrapped by a DeepSpeed engine (any world size)."""

    def __init__(self, *, group: ProcessGroup, ds_config: dict, seed: int, **kwargs: Any):
        self.group, self.ds_config, self.seed = group, ds_config, seed
        kwargs["progress"] = kwargs.get("progress", True) and group.is_main
        super().__init__(world_size=group.world_size, **kwargs)  # the registry's optimizer, the suite's schedule
        import deepspeed

        self.view = optimizer_view(ds_config)
        self.engine, _, _, _ = deepspeed.initialize(model=self.model, optimizer=self.optimizer, config=ds_config)
        self._check_wrapper()
        self.pieces = ZeroPieces(self.engine.optimizer, self.optimizer, group.device) if self.view == "zero12" else None
        if group.rank > 0:
            seed_everything(rank_seed(seed, group.rank, 0))

    def _check_wrapper(self) -> None:
        wrapper = type(self.engine.optimizer).__name__
        expected = {"whole": type(self.optimizer).__name__, "zero12": "DeepSpeedZeroOptimizer"}.get(self.view)
        if expected is not None and wrapper != expected:
            raise RuntimeError(f"DeepSpeed wrapped the optimizer in {wrapper}, not {expected} as nightbench expects "
                               f"for this configuration ({self.view}); its per-layer norms would not be exact")

    def _open_log(self):
        return super()._open_log() if self.group.is_main else NullLog()

    # --- one step: the Trainer's accumulation, through the DeepSpeed engine ----------------------
    def _local_share(self, batch: Any) -> Any:
        return split_batch(batch, self.group.world_size)[self.group.rank]

    def _before_micro_batch(self, last: bool) -> None:
        self.engine.set_gradient_accumulation_boundary(last)

    def _forward_module(self) -> torch.nn.Module:
        return self.engine

    def _backward(self, loss: torch.Tensor) -> None:
        self.engine.backward(loss, scale_wrt_gas=False)  # the loss is already scaled for accumulation

    def _optimizer_step(self, closure=None) -> None:
        self.engine.step()  # DeepSpeed steps without a closure: two-gradient optimizers are refused

    def _sum_over_processes(self, loss: torch.Tensor) -> torch.Tensor:
        return all_reduce_sum(loss)

    # --- evaluation at the reported iterate ---------------------------------------------------
    @contextlib.contextmanager
    def _evaluation_weights(self) -> Iterator[None]:
        """Swap the optimizer to w_t and, under ZeRO 1/2, push its fp32 pieces into the model."""
        if not self.spec.needs_eval_swap:
            yield
            return
        self.optimizer.eval()
        self._push_optimizer_weights()
        try:
            yield
        finally:
            self.optimizer.train()
            self._push_optimizer_weights()

    def _push_optimizer_weights(self) -> None:
        if self.view == "zero12":  # the model's tensors are copies of the partitions: refresh, all-gather
            self.engine.optimizer.update_lp_params()

    # --- checkpoints through DeepSpeed ----------------------------------------------------------
    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / CHECKPOINT_DIR

    def save_checkpoint(self) -> None:
        tag = f"step{self.state.step}"
        tag_dir = self.checkpoint_dir / tag
        tag_dir.mkdir(parents=True, exist_ok=True)
        torch.save(_rng_state(), tag_dir / f"rng_rank{self.group.rank}.pt")
        client_state = {"scheduler": self.scheduler.state_dict(), "metrics_offset": self.log.offset(),
                        "state": {**self.state.to_dict(), "elapsed": self.elapsed()}}
        self.engine.save_checkpoint(str(self.checkpoint_dir), tag=tag, client_state=client_state, save_latest=False)
        barrier()  # every rank's files are complete before 'latest' names them
        if self.group.is_main:
            atomic_write_json(tag_dir / META_FILE, {"world_size": self.group.world_size, "step": self.state.step,
                                                "zero_stage": zero_stage(self.ds_config), "optimizer_view": self.view})
            atomic_write_text(self.checkpoint_dir / "latest", tag)  # DeepSpeed's pointer, replaced atomically
            earlier = [t for t in complete_tags(self.checkpoint_dir) if tag_step(t) < self.state.step]
            keep = {tag, *earlier[:1]}  # this checkpoint and the one before it (a fallback if this one is damaged)
            for old in self.checkpoint_dir.iterdir():
                if old.is_dir() and tag_step(old.name) is not None and old.name not in keep:
                    shutil.rmtree(old, ignore_errors=True)  # tags set aside as damaged are not step<N>: kept
        barrier()

    def load_checkpoint(self) -> bool:
        """Resume from the newest tag whose files load safely (damaged tags are set aside); False: start again."""
        tag = broadcast_from_main(self._latest_tag() if self.group.is_main else None)
        if tag is None:
            if CheckpointStore(self.run_dir).exists():
                raise ConfigError(f"{self.run_dir} holds a checkpoint of a run without --deepspeed; "
                                  "resume it without --deepspeed, or start over in another --results folder")
            self.log.truncate(0)
            return False
        tag_dir = self.checkpoint_dir / tag
        meta = broadcast_from_main(read_json(tag_dir / META_FILE) if self.group.is_main else None) or {}
        check_resumable(meta, zero_stage(self.ds_config), self.group.world_size)
        path, client_state = self.engine.load_checkpoint(str(self.checkpoint_dir), tag=tag, load_optimizer_states=True,
                                                         load_lr_scheduler_states=False, load_module_strict=True)
        if path is None:
            raise RuntimeError(f"DeepSpeed could not load the checkpoint {tag_dir}")
        self.scheduler.load_state_dict(client_state["scheduler"])
        self.state = TrainingState.from_dict(client_state["state"])
        self.log.truncate(client_state["metrics_offset"])
        rng_file = tag_dir / f"rng_rank{self.group.rank}.pt"
        if meta.get("world_size") == self.group.world_size and rng_file.exists():
            _set_rng_state(load_weights_only(rng_file))  # plain data: no global allowed
        else:  # a new world size: ranks start fresh streams from (seed, rank, step)
            seed_everything(rank_seed(self.seed, self.group.rank, self.state.step) if self.group.rank else self.seed)
        self._session_start = time.monotonic()
        return True

    def _latest_tag(self) -> str | None:
        """(Rank 0) The newest tag whose every file loads without running code; 'latest' is pointed at it."""
        tag = usable_tag(self.checkpoint_dir, announce=announce_on_stderr)
        if tag is not None and read_latest(self.checkpoint_dir) != tag:
            atomic_write_text(self.checkpoint_dir / "latest", tag)  # so every reader of 'latest' sees this tag
        return tag


def _deepspeed_version() -> str:
    import deepspeed

    return deepspeed.__version__


def latest_checkpoint_meta(run_dir: Path) -> dict | None:
    """What the latest DeepSpeed checkpoint of a run records (world size, ZeRO stage, step), or None."""
    checkpoint_dir = Path(run_dir) / CHECKPOINT_DIR
    try:
        tag = (checkpoint_dir / "latest").read_text().strip()
    except OSError:
        return None
    return read_json(checkpoint_dir / tag / META_FILE)


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
