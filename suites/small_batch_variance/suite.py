"""The small_batch_variance suite object: plans the units of one run and runs those not yet logged."""


from __future__ import annotations

from typing import Any

from nightbench.optimizers import ParamGroupPolicy
from nightbench.suites.base import SMALL_BATCH_VARIANCE, ExperimentSuite

from .findings import summarize, unit_records
from .presets import PRESETS, SuiteConfigError, validate_config
from .problems import Problem, build_problem
from .units import Unit, run_unit

# Suite defaults per optimizer: the run lr (the largest step on the skewed problems) and the lr
# scales of the other problem families. A normalized method's lr is a step LENGTH, an SGD lr
# multiplies the gradient, an Adam lr is about a per-coordinate step; see presets.py.
_NORMALIZED = {"lr": 1e-2, "lr_scale_nonconvex": 3.0, "lr_scale_mlp": 10.0}
OPTIMIZER_DEFAULTS: dict[str, dict[str, Any]] = {
    "nsgd": _NORMALIZED,
    "nsgd_momentum": _NORMALIZED,
    "nigt": _NORMALIZED,
    # Its lr multiplies Algorithm 2's own adaptive step eta_t (1 = as published); its steps shrink
    # over time by design, so the longer problems need a larger multiplier to get anywhere.
    "nigt_adaptive": {"lr": 1.0, "lr_scale_nonconvex": 10.0, "lr_scale_mlp": 3.0},
    "sgd": {"lr": 1e-2, "lr_scale_nonconvex": 1.0, "lr_scale_mlp": 30.0},
    "adam": {"lr": 1e-2, "lr_scale_nonconvex": 1.0, "lr_scale_mlp": 3.0},
    # These problems have no regularizer: weight decay would move the optimum the floor is measured at.
    "lars": {"lr": 1.0, "weight_decay": 0.0, "lr_scale_nonconvex": 1.0, "lr_scale_mlp": 1.0},
    "lamb": {"lr": 1e-2, "weight_decay": 0.0, "lr_scale_nonconvex": 1.0, "lr_scale_mlp": 1.0},
}


def plan_units(config: dict[str, Any], run_lr: float) -> list[Unit]:
    """Every unit of a run, in the order they run."""
    scale = {"skewed_flat": 1.0, "skewed_quadratic": 1.0, "nonconvex": config["lr_scale_nonconvex"],
             "digits_mlp": config["lr_scale_mlp"]}
    return [  # lrs rounded to 12 digits: 0.01 x 0.3 is 0.003, not 0.0030000000000000005, in every record
        Unit(problem, b, float(f"{run_lr * scale[problem] * m:.12g}"), r)
        for problem in config["problems"]
        for b in config["batch_sizes"]
        for m in config["lr_multipliers"]
        for r in range(config["replicates"])
    ]


def _read_unit_records(run_dir: str) -> list[dict[str, Any]]:
    from nightbench.suites.run_dir import read_metrics

    return unit_records(read_metrics(run_dir))


class SmallBatchVarianceSuite(ExperimentSuite):
    report_sections = (SMALL_BATCH_VARIANCE,)
    name = "small_batch_variance"
    title = "Small-batch variance"
    description = (
        "Gradient-norm floors vs batch size (1..256): the paper's skewed-noise example (flat and "
        "quadratic), a rotated non-convex function with Gaussian noise, and an MLP on sklearn digits"
    )
    presets = PRESETS
    target_metric = None  # a sweep of findings, not one number to reach
    higher_is_better = False
    target_values = {name: None for name in PRESETS}

    def optimizer_defaults(self, optimizer_name: str, config: dict[str, Any]) -> dict[str, Any]:
        """The suite's lr and per-family lr scales for known optimizers; {} for plugins."""
        return dict(OPTIMIZER_DEFAULTS.get(optimizer_name, {}))

    def validate_config(self, config: dict[str, Any]) -> dict[str, Any]:
        """The typed suite config, or SuiteConfigError naming the bad key and what is accepted."""
        return validate_config(config)

    def all_diverged(self, final_metrics: dict[str, float]) -> bool:
        units = final_metrics.get("units", 0)
        return units > 0 and final_metrics.get("diverged_units") == units

    def run(self, ctx: Any) -> dict[str, float]:
        """Run every unit not yet logged; return the summary over all of the run's units."""
        config = self.validate_config(ctx.config)
        run_lr = float(ctx.hyperparameters["lr"])
        if not run_lr > 0:
            raise SuiteConfigError(f"invalid lr={run_lr!r} for small_batch_variance: expected a number > 0")
        units = plan_units(config, run_lr)
        done = ctx.done_units()
        ctx.set_total_units(len(units))
        already = sum(u.key in done for u in units)
        if already:
            ctx.progress(already)
        gradients_per_step = int(getattr(ctx.spec, "gradients_per_step", 1))
        if gradients_per_step not in (1, 2):
            raise SuiteConfigError(f"optimizer '{ctx.optimizer_name}' needs {gradients_per_step} gradients "
                                   "per step; this suite supports 1 or 2")
        # Raw parameter vectors: no tensor is a bias or norm layer, so nothing is excluded.
        policy = ParamGroupPolicy(exclude="none")

        def make_optimizer(params, lr):
            return ctx.make_optimizer(params, policy=policy, lr=lr)

        problems: dict[str, Problem] = {}
        for unit in units:
            if unit.key in done:
                continue
            if unit.problem not in problems:
                problems[unit.problem] = build_problem(unit.problem, config)
            record = run_unit(unit, problems[unit.problem], config, ctx.seed, make_optimizer, gradients_per_step)
            ctx.log(record)
            ctx.progress(1)
        planned = {u.key for u in units}
        records = [r for r in _read_unit_records(ctx.run_dir) if r["unit"] in planned]
        return summarize(records, config)


SUITE = SmallBatchVarianceSuite()
