"""The memory_overhead suite: what one optimizer costs in memory and time on BERT and ResNet-50.

One run = one optimizer; its units are the model families. Per family it records the exact bytes
of optimizer state after training steps (each storage once), the same per parameter and as copies
of the parameters, the peak memory of one training step (fresh subprocess), and step times.
"""

from __future__ import annotations

import gc
from typing import Any

import torch

from ..base import MEMORY, ExperimentSuite, RunContext
from ..run_dir import read_metrics
from .measure import measure_in_process
from .models import build_model_under_test
from .peak import measure_peak_in_subprocess, unavailable
from .presets import PRESETS, validate_config

RECORD_KIND = "memory"
# Per-unit record fields repeated in the run's summary as '<unit>_<field>'.
SUMMARY_FIELDS = ("params", "state_bytes", "state_bytes_per_param", "param_copies", "peak_step_bytes",
                  "peak_step_increment_bytes", "train_step_time", "optimizer_step_time")


class MemoryOverheadSuite(ExperimentSuite):
    seed_independent = True  # measurements, not training: one seed is enough
    report_sections = (MEMORY,)
    name = "memory_overhead"
    title = "Memory and step time"
    description = ("Optimizer memory and speed on BERT-Base and ResNet-50: exact state bytes per parameter, "
                   "peak memory of one training step, step times")
    presets = PRESETS
    target_metric = None
    higher_is_better = False  # less memory is better
    target_values = {preset: None for preset in PRESETS}

    def optimizer_defaults(self, optimizer_name: str, config: dict[str, Any]) -> dict[str, Any]:
        """No opinion: memory is measured at each optimizer's own defaults."""
        return {}

    def validate_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """The resolved config, checked (ValueError naming the bad key); usable before a run starts."""
        return validate_config(config)

    def run(self, ctx: RunContext) -> dict[str, float]:
        """Measure every family not yet logged; summarize all of them (earlier runs' records included)."""
        config = validate_config(ctx.config)
        families = config["families"]
        ctx.set_total_units(len(families))
        done = ctx.done_units()
        records = {r["unit"]: r for r in read_metrics(ctx.run_dir) if r.get("kind") == RECORD_KIND}
        for family in families:
            if family not in done:
                records[family] = measure_family(ctx, family, config)
                ctx.log(records[family])
            ctx.progress(1)
        return summarize([records[f] for f in families if f in records])


def measure_family(ctx: RunContext, family: str, config: dict[str, Any]) -> dict[str, Any]:
    """One unit's record: state bytes and timings here, then the step's peak in a fresh subprocess."""
    unit = build_model_under_test(family, config, ctx.device, ctx.seed)
    optimizer = ctx.make_optimizer(unit.model)
    figures = measure_in_process(unit, optimizer, ctx.spec.gradients_per_step, config["train_step_repeats"],
                                 config["optimizer_step_repeats"], ctx.device)
    description, shape = unit.description, unit.shape
    del unit, optimizer  # free this process's copy before the subprocess builds its own
    gc.collect()
    if ctx.device.type == "cuda":
        torch.cuda.empty_cache()
    if config["peak_memory"]:
        peak = measure_peak_in_subprocess(peak_request(ctx, family, config), config["peak_timeout_s"])
    else:
        peak = unavailable("not measured: the config sets peak_memory=false")
    return {
        "kind": RECORD_KIND,
        "unit": family,
        "family": family,
        "model": description,
        **shape,
        **figures,
        **peak,
        "step_time": figures["train_step_time"],  # the common field: one full training step
        "expected_state_slots": ctx.spec.state_slots,
        "gradients_per_step": ctx.spec.gradients_per_step,
        "dtype": "float32",
        "device": str(ctx.device),
    }


def peak_request(ctx: RunContext, family: str, config: dict[str, Any]) -> dict[str, Any]:
    """What the peak worker needs to rebuild this unit's model and the run's optimizer."""
    source = getattr(ctx.spec, "source", "")
    plugin_files = [source[len("file "):]] if source.startswith("file ") else []
    return {
        "family": family, "config": config, "device": str(ctx.device), "seed": ctx.seed,
        "optimizer": ctx.optimizer_name, "hyperparameters": ctx.hyperparameters,
        "policy": ctx.policy.to_dict(), "optimizer_files": plugin_files,
    }


def summarize(records: list[dict[str, Any]]) -> dict[str, float]:
    """'<unit>_<field>' for every numeric summary field of every unit record."""
    summary = {}
    for record in records:
        for field in SUMMARY_FIELDS:
            value = record.get(field)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                summary[f"{record['unit']}_{field}"] = value
    return summary


SUITE = MemoryOverheadSuite()
