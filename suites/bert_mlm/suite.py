"""The bert_mlm suite object: presets, targets, per-optimizer defaults, the schedule, the builder."""

from __future__ import annotations

from typing import Any

from nightbench.optimizers import Schedule, get_spec
from nightbench.suites.base import BuildContext, TrainingSuite, TrainingTask

from .documents import LOCAL_CORPUS
from .presets import PAPER_DEFAULTS, PARITY_MARGINS, PRESETS, SMALL_DEFAULTS, TARGET_VALUES
from .task import build_task, check_config


class BertMLMSuite(TrainingSuite):
    name = "bert_mlm"
    title = "BERT masked-language-model pre-training"
    description = ("BERT masked-LM pretraining (Section 5.2): masked-token accuracy on held-out text; "
                   "paper = BERT-Base, seq 512, batch 256, 500k steps")
    presets = PRESETS
    target_metric = "mlm_accuracy"
    target_values = TARGET_VALUES
    warmup_keys = ("warmup_steps", "steps")
    parity_margins = PARITY_MARGINS

    def optimizer_defaults(self, optimizer_name: str, config: dict[str, Any]) -> dict[str, Any]:
        """This suite's defaults for a builtin optimizer (paper table unless the offline corpus is used),
        restricted to the hyperparameters its spec declares; {} for optimizers it has no opinion on."""
        table = SMALL_DEFAULTS if config.get("dataset") == LOCAL_CORPUS else PAPER_DEFAULTS
        if optimizer_name not in table:
            return {}
        try:
            declared = {h.name for h in get_spec(optimizer_name).hyperparameters}
        except KeyError:
            return {}
        return {k: v for k, v in table[optimizer_name].items() if k.startswith("policy.") or k in declared}

    def validate_config(self, config: dict[str, Any]) -> None:
        """The build's checks that need no data (task.check_config): a board refuses them before it starts."""
        check_config(config)

    def schedule(self, optimizer_name: str, config: dict[str, Any], task: TrainingTask) -> Schedule:
        """Linear warmup, then linear decay to zero at the last step (Devlin et al.; the paper's NIGT too);
        warmup then a constant lr for optimizers that replace the decay (Schedule-Free)."""
        warmup = min(int(config.get("warmup_steps") or 0), task.total_steps)
        if get_spec(optimizer_name).constant_schedule:
            return Schedule(kind="constant", total_steps=task.total_steps, warmup_steps=warmup)
        return Schedule(kind="poly", total_steps=task.total_steps, warmup_steps=warmup, power=1.0)

    def build(self, ctx: BuildContext) -> TrainingTask:
        return build_task(ctx)


SUITE = BertMLMSuite()
