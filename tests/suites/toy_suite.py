"""A tiny TrainingSuite for testing the engine: noisy linear regression, deterministic per (seed, step)."""

from __future__ import annotations

import os
import time

import torch

from nightbench.optimizers import Schedule
from nightbench.suites.base import TrainingSuite, TrainingTask
from nightbench.suites.config import SuiteConfigError

PRESET = {"steps": 30, "eval_every": 10, "global_batch_size": 16, "micro_batch_size": 16, "dim": 5,
          "fail_at_step": -1}


class ToySuite(TrainingSuite):
    name = "toy"
    description = "noisy linear regression (engine tests)"
    presets = {"paper": dict(PRESET, steps=200), "small": dict(PRESET), "ci": dict(PRESET)}
    target_metric = "neg_mse"
    higher_is_better = True
    target_values = {"paper": None, "small": -0.5, "ci": -0.5}

    def optimizer_defaults(self, optimizer_name, config):
        return {"lr": 0.05} if optimizer_name == "sgd" else {}

    def schedule(self, optimizer_name, config, task):
        return Schedule(kind="poly", total_steps=task.total_steps, warmup_steps=3)

    def build(self, ctx):
        cfg = ctx.config
        if cfg["dim"] < 1:
            raise SuiteConfigError(f"dim must be >= 1, got {cfg['dim']}")
        dim = cfg["dim"]
        truth = torch.randn(dim, generator=torch.Generator().manual_seed(1234))
        model = torch.nn.Linear(dim, 1)

        def batch_for(step: int):
            g = torch.Generator().manual_seed(ctx.seed * 1_000_003 + step)
            x = torch.randn(cfg["global_batch_size"], dim, generator=g)
            y = x @ truth + 0.1 * torch.randn(cfg["global_batch_size"], generator=g)
            return {"x": x, "y": y}

        def train_batches(start_step: int):
            step = start_step
            while True:
                # slows the run down for the kill-and-resume test without changing its identity
                time.sleep(float(os.environ.get("NIGHTBENCH_TOY_SLEEP", "0")))
                if step == cfg["fail_at_step"]:
                    raise RuntimeError("toy failure requested")
                yield batch_for(step)
                step += 1

        def loss(model, batch):
            err = model(batch["x"]).squeeze(-1) - batch["y"]
            return (err ** 2).sum(), {}

        held_out = batch_for(10**6)

        def evaluate(model):
            mse = float(((model(held_out["x"]).squeeze(-1) - held_out["y"]) ** 2).mean())
            return {"neg_mse": -mse, "mse": mse}

        return TrainingTask(model=model, train_batches=train_batches, loss=loss, count=lambda b: b["x"].shape[0],
                            evaluate=evaluate, total_steps=cfg["steps"], eval_every=cfg["eval_every"],
                            global_batch_size=cfg["global_batch_size"], micro_batch_size=cfg["micro_batch_size"])


SUITE = ToySuite()
