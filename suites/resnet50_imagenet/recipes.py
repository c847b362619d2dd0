"""Per-optimizer defaults and learning-rate schedules for resnet50_imagenet.

Schedules (epochs convert to steps at the run's batch size, so they work at every preset):
  sgd          linear warmup over `warmup_epochs`, then /10 at each of `sgd_milestone_epochs`
               (paper: 5 warmup epochs to 0.4, /10 at 30, 60, 80; Goyal et al. 2017)
  every other  linear warmup over `warmup_epochs`, then polynomial decay (1 - t/T)^2 over the
               `epochs` horizon: the paper's NIGT schedule, and the MLPerf LARS one.
  constant_schedule optimizers (Schedule-Free): the same warmup, then a constant lr.

BatchNorm recalibration: an optimizer whose spec says `needs_bn_recalibration` (it evaluates at a
point other than where the BatchNorm statistics were gathered) gets `bn_recalibration_batches`
(RECALIBRATION_IMAGES worth of micro-batches) as its default; `--set bn_recalibration_batches=...` wins.

Default hyperparameters depend on the data (`dataset`): ImageNet (folder/hf) values are the
paper's or the literature's for a global batch of 1024; digits values were picked by short runs
on the small preset (the issue note lists them). SGD's lr follows the linear scaling rule
lr = 0.1 x batch / 256 (Goyal et al. 2017) on ImageNet, so `--set global_batch_size=...` keeps a
sensible lr; every other default is for the preset's own batch.
"""

from __future__ import annotations

from typing import Any

from nightbench.optimizers import PAPER_RECIPE_SETTINGS, Schedule, epochs_to_steps, get_spec
from nightbench.suites.base import TrainingTask

from .task import schedule_horizon

# The paper's Section 5 recipe for the normalized optimizers (defined in nightbench.optimizers):
# per-layer normalization, step scaled by each layer's weight norm, biases/BatchNorm not
# normalized and their lr x1000.
PAPER_RECIPE = PAPER_RECIPE_SETTINGS

IMAGENET_DEFAULTS: dict[str, dict[str, Any]] = {
    "sgd": {"momentum": 0.9, "weight_decay": 1e-4},  # lr from the linear scaling rule
    "adam": {"lr": 2e-3, "beta1": 0.9, "beta2": 0.999, "weight_decay": 0.05, "decoupled_weight_decay": True},
    "lars": {"lr": 2.0, "momentum": 0.9, "weight_decay": 5e-5},
    "lamb": {"lr": 5e-3, "beta1": 0.9, "beta2": 0.999, "weight_decay": 0.02},
    "nsgd": {"lr": 0.01, **PAPER_RECIPE, "weight_decay": 1e-4},
    "nsgd_momentum": {"lr": 0.01, "beta": 0.9, **PAPER_RECIPE, "weight_decay": 1e-4},
    "nigt": {"lr": 0.01, "beta": 0.9, **PAPER_RECIPE, "weight_decay": 1e-4},
    # Algorithm 2 sets its own step eta_t in parameter units; lr only scales it (1 = the theory's).
    "nigt_adaptive": {"lr": 1.0, "weight_decay": 1e-4},
    # The modern set (untuned here; the tuning protocol tunes them). Muon with match_rms_adamw reuses
    # AdamW's lr and weight decay (Liu et al. 2025), here adam's above.
    "muon": {"lr": 2e-3, "weight_decay": 0.05, "momentum": 0.95, "adjust_lr_fn": "match_rms_adamw"},
    # Chen et al. 2023: Lion's lr 3-10x smaller and weight decay 3-10x larger than AdamW's (10x both).
    "lion": {"lr": 2e-4, "beta1": 0.9, "beta2": 0.99, "weight_decay": 0.5},
    # Bernstein et al. 2018 trained ResNet-50 on ImageNet with Signum at lr 1e-4, momentum 0.9; their
    # decay was coupled, so the decoupled weight decay follows Lion's rule (10x AdamW's).
    "signum": {"lr": 1e-4, "momentum": 0.9, "weight_decay": 0.5},
    # Defazio et al. 2024 (and their AlgoPerf submission): lr 2.5e-3 (the package's default), beta2
    # 0.9955 and weight decay near AdamW's.
    "adamw_schedulefree": {"lr": 2.5e-3, "beta1": 0.9, "beta2": 0.9955, "weight_decay": 0.05},
    # Shazeer & Stern 2018 / torch: relative steps capped at lr 1e-2; AdamW's weight decay.
    "adafactor": {"lr": 1e-2, "weight_decay": 0.05},
    # SOAP is Adam in a rotated basis: Vyas et al. 2025 sweep its lr and decay around AdamW's (adam's
    # above); their betas (0.95, 0.95) and preconditioning every 10 steps.
    "soap": {"lr": 2e-3, "beta1": 0.95, "beta2": 0.95, "weight_decay": 0.05, "precondition_frequency": 10},
}

DIGITS_DEFAULTS: dict[str, dict[str, Any]] = {
    "sgd": {"lr": 0.05, "momentum": 0.9, "weight_decay": 1e-4},  # small, 18 epochs: lr 0.1 -> 0.83 top-1, 0.05 -> 0.90
    "adam": {"lr": 1e-3, "weight_decay": 0.05, "decoupled_weight_decay": True},
    "lars": {"lr": 2.0, "momentum": 0.9, "weight_decay": 5e-5},
    "lamb": {"lr": 5e-3, "weight_decay": 0.02},
    "nsgd": {"lr": 0.01, **PAPER_RECIPE, "weight_decay": 1e-4},
    "nsgd_momentum": {"lr": 0.01, "beta": 0.9, **PAPER_RECIPE, "weight_decay": 1e-4},
    "nigt": {"lr": 0.01, "beta": 0.9, **PAPER_RECIPE, "weight_decay": 1e-4},
    "nigt_adaptive": {"lr": 1.0, "weight_decay": 1e-4},
    # The modern set, from the ImageNet rules above applied to adam's digits values (no short runs).
    "muon": {"lr": 1e-3, "weight_decay": 0.05, "momentum": 0.95, "adjust_lr_fn": "match_rms_adamw"},
    "lion": {"lr": 1e-4, "weight_decay": 0.5},
    "signum": {"lr": 1e-4, "momentum": 0.9, "weight_decay": 0.5},
    "adamw_schedulefree": {"lr": 2.5e-3, "weight_decay": 0.05},
    "adafactor": {"lr": 1e-2, "weight_decay": 0.05},
    "soap": {"lr": 1e-3, "beta1": 0.95, "beta2": 0.95, "weight_decay": 0.05},
}

# Images BatchNorm statistics are recomputed on before each evaluation, where an optimizer needs it:
# ImageNet: 50 micro-batches of 128; digits: about its whole training split (1150 images).
RECALIBRATION_IMAGES = {"imagenet": 6400, "digits": 1024}


def recalibration_batches(config: dict[str, Any]) -> int:
    """Micro-batches for BatchNorm recalibration: RECALIBRATION_IMAGES, at most the training images used."""
    images = RECALIBRATION_IMAGES["digits" if config.get("dataset") == "digits" else "imagenet"]
    if config.get("train_limit"):
        images = min(images, int(config["train_limit"]))
    return max(1, images // int(config["micro_batch_size"]))


def optimizer_defaults(optimizer_name: str, config: dict[str, Any]) -> dict[str, Any]:
    """This suite's defaults for an optimizer, restricted to what its spec declares, plus the BatchNorm
    recalibration its spec asks for; {} for an optimizer it has no opinion on."""
    table = DIGITS_DEFAULTS if config.get("dataset") == "digits" else IMAGENET_DEFAULTS
    try:
        spec = get_spec(optimizer_name)
    except KeyError:
        return {}
    recalibration = {"bn_recalibration_batches": recalibration_batches(config)} if spec.needs_bn_recalibration else {}
    if optimizer_name not in table:
        return recalibration
    wanted = dict(table[optimizer_name])
    if optimizer_name == "sgd" and "lr" not in wanted:
        wanted["lr"] = 0.1 * config["global_batch_size"] / 256
    declared = {h.name for h in spec.hyperparameters}
    # A plugin registered under a builtin's name may declare less; give it only what it accepts.
    return {**{k: v for k, v in wanted.items() if k.startswith("policy.") or k in declared}, **recalibration}


def make_schedule(optimizer_name: str, config: dict[str, Any], task: TrainingTask) -> Schedule:
    """The epoch-based schedule of `optimizer_name`, in steps of this task."""
    steps_per_epoch = task.steps_per_epoch or 1
    horizon = schedule_horizon(config, steps_per_epoch)
    warmup = epochs_to_steps(float(config["warmup_epochs"]), steps_per_epoch)
    if config["warmup_epochs"] > 0:
        warmup = max(1, warmup)  # a warmup asked for lasts at least one step, even in a tiny run
    warmup = min(warmup, horizon)
    if optimizer_name == "sgd":
        milestones = epochs_to_steps([float(e) for e in config["sgd_milestone_epochs"]], steps_per_epoch)
        return Schedule(kind="step", total_steps=horizon, warmup_steps=warmup, milestones=tuple(milestones),
                        gamma=0.1)
    if get_spec(optimizer_name).constant_schedule:
        return Schedule(kind="constant", total_steps=horizon, warmup_steps=warmup)
    return Schedule(kind="poly", total_steps=horizon, warmup_steps=warmup, power=2.0)
