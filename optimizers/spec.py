"""What the suites and reports know about one optimizer: its `OptimizerSpec`, and the unknown-name error.

A leaf module: the registry fills a table of specs, the timm bridge builds specs for timm's
optimizers, and neither needs the other to do so.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import Any, Callable, Mapping

import torch

from .hyperparams import Check, Hyperparameter, HyperparameterError, resolve
from .param_groups import HIDDEN_MATRIX_RULE
from .plugin_registry import UnknownNameError
from .search_space import FALLBACK_SPACE, Distribution, describe

PAPER_LR_GRID = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # Section 5: the paper's eta_0 grid

# The optimizer sets (`--optimizers paper`, `modern`, `all`): a spec's `family` names its set.
# paper:  the mission's eight (the paper's four methods and its four baselines): the default board.
# modern: the baselines the field uses now (Muon, Lion, Signum, Schedule-Free AdamW, Adafactor).
# plugin: everything registered from outside the package (entry points, --optimizer-file).
FAMILIES = ("paper", "modern", "plugin")
FAMILY_HELP = {"paper": "the mission's eight, the default board", "modern": "the baselines the field uses now",
               "plugin": "registered from outside nightbench"}


class UnknownOptimizerError(UnknownNameError):
    """An optimizer name that is not registered."""


@dataclass(frozen=True)
class OptimizerSpec:
    """Everything the suites and reports need to know about one optimizer.

    factory(param_groups, **hyperparameters) returns a torch.optim.Optimizer.
    Capabilities the run engine asks for:
      needs_eval_swap     the model holds a point other than the reported iterate during training
                          (NIGT trains at x_t, reports w_t); the optimizer then has `.eval()` and
                          `.train()` methods that swap the model's parameters to w_t and back.
      gradients_per_step  2 for optimizers that need two independent gradients at the same point;
                          their `step(closure)` calls the closure twice, once per half-batch.
      state_slots         parameter-sized tensors kept per parameter (None: unknown, e.g. plugins).
      needs_bn_recalibration  BatchNorm statistics gathered at the training point do not fit the
                          evaluated point (Schedule-Free evaluates at an average far from where it
                          trains): suites with BatchNorm recompute them before each evaluation.
      constant_schedule   the optimizer replaces the lr decay itself (Schedule-Free): suites give it
                          their warmup, then a constant lr.
      splits_hidden_matrices  the optimizer treats the model's hidden weight matrices apart (Muon):
                          `create` asks the policy for them in their own group (param_groups.py).
    `family` is the optimizer set it belongs to (FAMILIES); `package` the distribution whose code
    does the update (its version is recorded in every run's config).
    `search_space` is what the tuning protocol searches (None: `FALLBACK_SPACE`, lr alone).
    """

    name: str
    factory: Callable[..., torch.optim.Optimizer]
    hyperparameters: tuple[Hyperparameter, ...]
    paper: str = ""
    description: str = ""
    state_slots: int | None = None
    needs_eval_swap: bool = False
    gradients_per_step: int = 1
    lr_grid: tuple[float, ...] = PAPER_LR_GRID
    source: str = "builtin"
    check: Check | None = None  # cross-parameter constraints (e.g. lamb's phi_min <= phi_max)
    search_space: Mapping[str, Distribution] | None = None
    family: str = "plugin"
    package: str = ""
    needs_bn_recalibration: bool = False
    splits_hidden_matrices: bool = False
    constant_schedule: bool = False
    # a user's --optimizer-file: 'sha256:<12 hex digits>' of the file as it was imported. Part of each
    # run's identity (plan.py), so a run of an edited file is a new run, not the old one's result.
    source_digest: str = ""

    @property
    def implementation(self) -> dict[str, str]:
        """The package whose code implements the optimizer and its installed version."""
        if not self.package and self.source.startswith("file "):  # a user's --optimizer-file
            return {"package": self.source, "version": self.source_digest or "unknown"}
        package = self.package or getattr(self.factory, "__module__", "").split(".")[0] or "unknown"
        return {"package": package, "version": package_version(package)}

    @property
    def tuning_space(self) -> Mapping[str, Distribution]:
        """The declared search space, or the fallback (lr alone) where none is declared."""
        return self.search_space if self.search_space is not None else FALLBACK_SPACE

    @property
    def defaults(self) -> dict[str, Any]:
        return {h.name: h.default for h in self.hyperparameters}

    def hyperparameter(self, name: str) -> Hyperparameter:
        for h in self.hyperparameters:
            if h.name == name:
                return h
        raise HyperparameterError(
            f"optimizer '{self.name}' has no hyperparameter '{name}'; accepted: "
            f"{', '.join(h.name for h in self.hyperparameters)}"
        )

    def resolve(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Defaults filled in, every value validated, unknown names rejected."""
        return resolve(self.hyperparameters, given, self.name, self.check)

    def to_dict(self) -> dict:
        """Metadata (no code) for configs and reports."""
        return {
            "name": self.name,
            "paper": self.paper,
            "description": self.description,
            "state_slots": self.state_slots,
            "needs_eval_swap": self.needs_eval_swap,
            "gradients_per_step": self.gradients_per_step,
            "lr_grid": list(self.lr_grid),
            "source": self.source,
            "hyperparameters": [h.to_dict() for h in self.hyperparameters],
            "search_space": describe(self.tuning_space),
            "search_space_declared": self.search_space is not None,
            "family": self.family,
            "implementation": self.implementation,
            "needs_bn_recalibration": self.needs_bn_recalibration,
            "splits_hidden_matrices": self.splits_hidden_matrices,
            **({"hidden_matrices": HIDDEN_MATRIX_RULE} if self.splits_hidden_matrices else {}),
            "constant_schedule": self.constant_schedule,
        }


def package_version(package: str) -> str:
    """The installed version of a distribution ('nightbench' for the package itself), or 'unknown'."""
    if package == "torch":
        return torch.__version__
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"
