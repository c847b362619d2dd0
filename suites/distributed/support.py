"""Which (optimizer, ZeRO stage, precision) combinations compute exactly what one process computes.

What the optimizer is handed depends on how DeepSpeed wraps it:
  whole    ZeRO 0 with fp32 weights: the model's own tensors, gradients all-reduced. Any optimizer.
  zero12   ZeRO 1/2: one flat slice per param group; nightbench re-presents it as per-layer pieces
           (zero_pieces.py). Exact for elementwise optimizers and for those whose norms go through
           the norm-reduction hook (optimizers/sharding.py).
  zero3    ZeRO 3: flat slices of per-tensor partitions, no piece layout: elementwise optimizers only.
  flat     DeepSpeed's own bf16 weights at ZeRO 0 (or at ZeRO 1 with fp32 gradient accumulation):
           whole param groups flattened into one tensor: elementwise optimizers only.
Everything else is refused before training, with the reason and what would work.

The modern set: lion and signum are elementwise (every stage, bf16 weights too); muon (Newton-Schulz
on whole matrices), adafactor (row and column statistics), soap (per-dimension preconditioners) and
adamw_schedulefree (its train/eval swap is not declared safe on pieces) need whole tensors: ZeRO 0 with fp32 weights only.
"""

from __future__ import annotations

from typing import Any

import torch

from nightbench.optimizers import OptimizerSpec, create
from nightbench.optimizers.sharding import ELEMENTWISE, NORM_HOOK, shard_support

from ..config import ConfigError
from .ds_config import bf16_weights, zero_stage

EXACT_FOR = {"whole": (ELEMENTWISE, NORM_HOOK, None), "zero12": (ELEMENTWISE, NORM_HOOK),
             "zero3": (ELEMENTWISE,), "flat": (ELEMENTWISE,)}


def optimizer_view(config: dict) -> str:
    """How DeepSpeed will present parameters to the client optimizer under `config` (see above)."""
    stage = zero_stage(config)
    bf16 = bf16_weights(config)
    if stage == 0:
        return "flat" if bf16 else "whole"
    if stage == 3:
        return "zero3"
    accumulates_fp32 = str((config.get("data_types") or {}).get("grad_accum_dtype", "")).lower() in ("fp32", "float32")
    return "flat" if (stage == 1 and bf16 and accumulates_fp32) else "zero12"


def probe_optimizer(spec: OptimizerSpec, hyperparameters: dict, policy: Any) -> torch.optim.Optimizer:
    """The run's optimizer class built on a tiny model, to read its capabilities before training."""
    return create(spec.name, torch.nn.Linear(2, 2), policy=policy, **hyperparameters)


def check_supported(spec: OptimizerSpec, optimizer: torch.optim.Optimizer, config: dict, precision: str) -> None:
    """Raise ConfigError, saying why and what would work, unless the combination is exact."""
    stage, view = zero_stage(config), optimizer_view(config)
    if spec.gradients_per_step > 1:
        raise ConfigError(
            f"'{spec.name}' takes {spec.gradients_per_step} gradients per step through step(closure), but DeepSpeed's "
            "engine steps the optimizer without a closure (and ZeRO reduces gradients inside backward); "
            f"run '{spec.name}' without --deepspeed")
    if bf16_weights(config) and precision != "bf16":
        raise ConfigError("the DeepSpeed config enables bf16 weights but the run's precision is fp32; "
                          "add --precision bf16 (or remove the bf16 section)")
    support = shard_support(optimizer)
    if support not in EXACT_FOR[view]:
        raise ConfigError(_refusal(spec, support, stage, view))
    if view == "zero12" and support == NORM_HOOK:
        adapted_global = [g for g in optimizer.param_groups
                          if g.get("norm") == "global" and g.get("layer_adaptation", True)]
        if len(adapted_global) > 1:
            raise ConfigError(
                f"'{spec.name}' with norm='global' normalizes {len(adapted_global)} param groups together, but ZeRO "
                f"stage {stage} steps the optimizer one param group at a time; use --zero-stage 0, norm='layer', "
                "or a policy that adapts one group (policy.excluded_layer_adaptation=false)")
    if spec.needs_eval_swap and view not in ("whole", "zero12"):
        raise ConfigError(f"'{spec.name}' swaps the model to its reported iterate for evaluation, which nightbench "
                          f"can pass on to the model only at ZeRO 0, 1 or 2 with fp32 weights; use one of those")


def _refusal(spec: OptimizerSpec, support: str | None, stage: int, view: str) -> str:
    name = spec.name
    if support is None and spec.family != "plugin":  # nightbench's own: known to need whole tensors
        return (f"'{name}' computes each tensor's update from the whole tensor, which DeepSpeed hands the optimizer "
                "only at ZeRO stage 0 with fp32 weights; run it with --zero-stage 0 and --precision fp32")
    if support is None:
        return (f"'{name}' does not declare how it behaves on sharded parameters (optimizers/sharding.py: "
                "SHARDING = ELEMENTWISE or NORM_HOOK), so it may compute norms that shards would change; "
                "run it with --zero-stage 0 and fp32 weights, where every process holds whole tensors")
    where = (f"ZeRO stage {stage}" if view != "flat"
             else f"DeepSpeed's bf16 weights at ZeRO stage {stage}")
    return (f"'{name}' normalizes whole layers, but under {where} DeepSpeed hands the optimizer flat slices "
            "that mix layers without a per-layer layout; use --zero-stage 0, 1 or 2 (with --precision bf16 "
            "for bf16 compute; DeepSpeed's bf16 weights work at ZeRO 1 and 2)")
