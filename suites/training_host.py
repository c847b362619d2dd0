"""What the Trainer asks of the place it runs (`TrainingHost`), with one process's answers.

`engine.Host` extends TrainingHost with a run's lifecycle; `distributed/host.py`'s DeepSpeedHost
overrides it for one rank of a DeepSpeed launch. The random streams' state (saved in every
checkpoint) and the log of a rank that writes none live here too, as both hosts use them.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint_store import CheckpointStore
from .run_dir import MetricsLog


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """The random streams' states as plain data (tensors, lists, numbers, strings), which a weights-only
    load reads back: numpy's and Python's own state objects would need globals allow-listed."""
    kind, key, position, has_gauss, cached_gaussian = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "key": key.tolist(), "position": int(position), "has_gauss": int(has_gauss),
                  "cached_gaussian": float(cached_gaussian)},
        "python": {"version": version, "internal": list(internal), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what rng_state saved (generators take their state as CPU tensors, wherever it was loaded to)."""
    torch.set_rng_state(state["torch"].cpu())
    numpy_state = state["numpy"]
    np.random.set_state((numpy_state["kind"], np.array(numpy_state["key"], dtype=np.uint32), numpy_state["position"],
                         numpy_state["has_gauss"], numpy_state["cached_gaussian"]))
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(python_state["internal"]), python_state["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([cuda_state.cpu() for cuda_state in state["cuda"]])


class NullLog:
    """The metrics log of a process that does not write the run's (a DeepSpeed rank other than 0)."""

    def append(self, record: dict) -> None:
        pass

    def offset(self) -> int:
        return 0

    def truncate(self, offset: int) -> None:
        pass

    def close(self) -> None:
        pass


# What the Trainer itself keeps in every checkpoint, beside what its host saves (weights, random streams).
TRAINER_CHECKPOINT_KEYS = ("scheduler", "state", "metrics_offset")


class TrainingHost:
    """What the Trainer asks of the place it runs; these methods are one process's.

    `engine.Host` extends this with the run's lifecycle, and `distributed/host.py`'s DeepSpeedHost
    overrides both for one rank of a DeepSpeed launch: the Trainer is the same everywhere."""

    is_main = True  # the process that owns the run directory
    rank, world_size = 0, 1
    device: torch.device  # where the run's tensors live (set by the engine's Host)

    def attach(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """Take the model and optimizer the Trainer built (a DeepSpeed rank wraps them in its engine)."""
        self.model, self.optimizer = model, optimizer

    def open_log(self, path: Path) -> MetricsLog | NullLog:
        """The run's metrics log; a process other than the main one gets a log that writes nothing."""
        return MetricsLog(path) if self.is_main else NullLog()

    # --- one step: the Trainer's accumulation calls these ------------------------------------
    def local_share(self, batch: Any) -> Any:
        """This process's share of a global batch."""
        return batch

    def before_micro_batch(self, last: bool) -> None:
        """Told whether the coming micro-batch is the last of the (half-)batch."""

    def forward_module(self) -> torch.nn.Module:
        """The module the loss is computed with."""
        return self.model

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def optimizer_step(self, closure=None) -> None:
        self.optimizer.step(closure) if closure is not None else self.optimizer.step()

    def sum_over_processes(self, loss: torch.Tensor) -> torch.Tensor:
        return loss

    def optimizer_weights_moved(self) -> None:
        """The optimizer changed its weights outside a step (an evaluation swap, and back). One process's
        model holds the optimizer's own tensors: nothing to do."""

    # --- checkpoints ---------------------------------------------------------------------------
    def save_checkpoint(self, run_dir: Path, step: int, trainer_state: dict) -> None:
        """Save the model, optimizer and random streams with `trainer_state` (TRAINER_CHECKPOINT_KEYS), as
        the step's checkpoint (one process keeps its newest two in checkpoint_store's files)."""
        CheckpointStore(run_dir).save({"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                                       "rng": rng_state(), **trainer_state})

    def load_checkpoint(self, run_dir: Path) -> dict | None:
        """Restore the newest checkpoint that loads safely (damaged ones are moved aside) and return the
        trainer's state saved with it; None: there is none, start again."""
        payload = CheckpointStore(run_dir, required_keys=("model", "optimizer", "rng", *TRAINER_CHECKPOINT_KEYS)
                                  ).load(map_location=self.device)
        if payload is None:
            return None
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        set_rng_state(payload["rng"])
        return payload

    def drop_fallback_checkpoint(self, run_dir: Path) -> None:
        """(Main process, the summary written) A finished run never resumes: the checkpoint kept in case
        the latest was damaged only costs disk (a ResNet-50 run's is hundreds of MB). The latest stays."""
        CheckpointStore(run_dir).drop_previous()
