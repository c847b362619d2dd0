"""The param-group policy: which tensors are 'excluded' and how they are treated. One place only.

Excluded tensors (biases and normalization-layer parameters; by the common rule, every tensor with
ndim <= 1) get, per the policy: no weight decay, no layer adaptation (normalization in nsgd/nigt,
trust ratio in lars/lamb), and a learning-rate multiplier (1000 in the paper's Section 5 recipe).

Each param group the policy builds carries these keys, which every optimizer here reads:
  lr                 base lr x lr_multiplier (so torch lr schedulers scale it like any group)
  weight_decay       the run's weight decay, or 0.0 for excluded tensors
  layer_adaptation   False where the optimizer must not normalize / apply a trust ratio
  lr_multiplier      recorded for reports
  group_name         'regular' or 'excluded' (or 'hidden', below)
  hidden_matrix      (only when asked to split hidden matrices) True for the 'hidden' group

Hidden matrices (for Muon, which orthogonalizes only the weights of hidden layers; Jordan et al.
2024): asked with `split_hidden_matrices=True`, the policy moves them out of 'regular' into a group
'hidden' of their own. HIDDEN_MATRIX_RULE says which they are; given plain tensors (no model, so no
module names), every regular tensor with ndim >= 2 counts as hidden.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Iterable, Union

import torch

EXCLUDE_RULES = ("ndim<=1", "none")

# Which tensors are the hidden weight matrices, decided from the model's modules. Embeddings are
# lookups, not linear maps, and the output head maps to logits: both go to the optimizer's other
# part (AdamW for Muon), as do excluded tensors (biases, norm layers). Convolution weights count:
# Muon updates them as their (out, in*k*k) view. Recorded in each such optimizer's config
# (OptimizerSpec.to_dict).
HIDDEN_MATRIX_RULE = ("regular tensors with ndim >= 2, except the weights of nn.Embedding modules and of the "
                      "output head (the last nn.Linear the model registers)")

ParamsLike = Union[torch.nn.Module, Iterable[torch.Tensor], Iterable[tuple[str, torch.Tensor]], Iterable[dict]]


@dataclass(frozen=True)
class ParamGroupPolicy:
    """How biases and normalization parameters are treated; recorded in every run's config."""

    exclude: str = "ndim<=1"  # which tensors are excluded: 'ndim<=1' (bias/norm layers) or 'none'
    excluded_weight_decay: bool = False  # decay excluded tensors too?
    excluded_layer_adaptation: bool = False  # normalize / trust-ratio excluded tensors too?
    excluded_lr_multiplier: float = 1.0  # the paper's Section 5 recipe uses 1000

    def __post_init__(self) -> None:
        if self.exclude not in EXCLUDE_RULES:
            raise ValueError(f"invalid param-group policy exclude={self.exclude!r}: expected one of {EXCLUDE_RULES}")
        if not (isinstance(self.excluded_lr_multiplier, (int, float)) and self.excluded_lr_multiplier > 0):
            raise ValueError(
                f"invalid param-group policy excluded_lr_multiplier={self.excluded_lr_multiplier!r}: "
                "expected a number > 0"
            )

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(cls.__dataclass_fields__)

    @classmethod
    def from_dict(cls, values: dict) -> "ParamGroupPolicy":
        unknown = set(values) - set(cls.field_names())
        if unknown:
            raise ValueError(
                f"unknown param-group policy field(s) {sorted(unknown)}; accepted: {list(cls.field_names())}"
            )
        coerced = {}
        for k, v in values.items():
            if k == "exclude":
                coerced[k] = str(v)
            elif k == "excluded_lr_multiplier":
                try:
                    coerced[k] = float(v)
                except (TypeError, ValueError):
                    raise ValueError(f"invalid policy.excluded_lr_multiplier={v!r}: expected a number > 0")
            else:
                if isinstance(v, str):
                    if v.lower() not in ("true", "false", "1", "0"):
                        raise ValueError(f"invalid policy.{k}={v!r}: expected true or false")
                    v = v.lower() in ("true", "1")
                coerced[k] = bool(v)
        return cls(**coerced)

    def to_dict(self) -> dict:
        return asdict(self)

    def is_excluded(self, name: str, param: torch.Tensor) -> bool:
        return self.exclude == "ndim<=1" and param.ndim <= 1

    def build_param_groups(self, params: ParamsLike, lr: float, weight_decay: float = 0.0,
                           split_hidden_matrices: bool = False) -> list[dict]:
        """Split parameters into a 'regular' and an 'excluded' group (empty groups are dropped).

        Accepts a module, named parameters, plain tensors, or ready-made param-group dicts (which
        are passed through untouched apart from defaults, so callers keep full control).
        `split_hidden_matrices`: the hidden matrices (HIDDEN_MATRIX_RULE) go into a group of their own.
        """
        not_hidden: set[int] = set()
        if isinstance(params, torch.nn.Module):
            not_hidden = not_hidden_matrices(params)
            named = [(n, p) for n, p in params.named_parameters() if p.requires_grad]
        else:
            items = list(params)
            if items and isinstance(items[0], dict):
                return [self._fill_defaults(dict(g), lr, weight_decay) for g in items]
            named = [(x if isinstance(x, tuple) else (f"param{i}", x)) for i, x in enumerate(items)]
        if not named:
            raise ValueError("no trainable parameters were given to the optimizer")
        regular = [p for n, p in named if not self.is_excluded(n, p)]
        excluded = [p for n, p in named if self.is_excluded(n, p)]
        groups = []
        if split_hidden_matrices:
            hidden = [p for p in regular if p.ndim >= 2 and id(p) not in not_hidden]
            regular = [p for p in regular if p.ndim < 2 or id(p) in not_hidden]
            if hidden:
                groups.append({
                    "params": hidden, "lr": lr, "weight_decay": weight_decay, "layer_adaptation": True,
                    "lr_multiplier": 1.0, "group_name": "hidden", "hidden_matrix": True,
                })
        if regular:
            groups.append({
                "params": regular, "lr": lr, "weight_decay": weight_decay, "layer_adaptation": True,
                "lr_multiplier": 1.0, "group_name": "regular",
            })
        if excluded:
            groups.append({
                "params": excluded,
                "lr": lr * self.excluded_lr_multiplier,
                "weight_decay": weight_decay if self.excluded_weight_decay else 0.0,
                "layer_adaptation": self.excluded_layer_adaptation,
                "lr_multiplier": self.excluded_lr_multiplier,
                "group_name": "excluded",
            })
        if split_hidden_matrices:
            for group in groups:
                group.setdefault("hidden_matrix", False)
        return groups

    @staticmethod
    def _fill_defaults(group: dict, lr: float, weight_decay: float) -> dict:
        group.setdefault("lr", lr)
        group.setdefault("weight_decay", weight_decay)
        group.setdefault("layer_adaptation", True)
        group.setdefault("lr_multiplier", 1.0)
        group.setdefault("group_name", "custom")
        return group


def not_hidden_matrices(model: torch.nn.Module) -> set[int]:
    """ids of the parameters HIDDEN_MATRIX_RULE keeps out of the hidden matrices: every nn.Embedding's
    and the output head's (the last nn.Linear registered; a tied LM head shares the embedding's weight)."""
    out: set[int] = set()
    head = None
    for module in model.modules():
        if isinstance(module, torch.nn.Embedding):
            out.update(id(p) for p in module.parameters(recurse=False))
        elif isinstance(module, torch.nn.Linear):
            head = module
    if head is not None:
        out.update(id(p) for p in head.parameters(recurse=False))
    return out


# The paper's Section 5 recipe (docs/algorithms.md), its one home: per-layer normalization with the step
# scaled by each layer's weight norm; biases and norm layers not normalized, their lr x1000.
# The suites' presets apply it to the normalized optimizers through PAPER_RECIPE_SETTINGS.
PAPER_RECIPE_POLICY = ParamGroupPolicy(excluded_lr_multiplier=1000.0)
PAPER_RECIPE_HYPERPARAMETERS = {"norm": "layer", "weight_norm_scaling": True}


def recipe_settings(hyperparameters: dict, policy: ParamGroupPolicy) -> dict:
    """Hyperparameters and a policy as one dict of run settings, in `--set` form ('policy.<field>'),
    naming only the policy fields that differ from the default policy."""
    default = ParamGroupPolicy().to_dict()
    changed = {f"policy.{k}": v for k, v in policy.to_dict().items() if v != default[k]}
    return {**hyperparameters, **changed}


PAPER_RECIPE_SETTINGS = recipe_settings(PAPER_RECIPE_HYPERPARAMETERS, PAPER_RECIPE_POLICY)
