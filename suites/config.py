"""Resolving one run's configuration: preset + engine defaults + per-optimizer suite defaults + --set.

`--set key=value` names an optimizer hyperparameter (`lr`, `beta`, ...), a param-group policy
field (`policy.excluded_lr_multiplier`), or a key of the suite's preset (`steps`, `micro_batch_size`);
`optimizer.<k>` and `suite.<k>` force the namespace where a name exists in both.
Unknown keys fail with every key that would be accepted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping

from nightbench.optimizers import OptimizerSpec, ParamGroupPolicy
from nightbench.optimizers.errors import InputError

from .tuned_defaults import tuned_overrides

# Keys the engine reads from every suite config; presets may override them.
ENGINE_DEFAULTS: dict[str, Any] = {
    "precision": "fp32",  # 'fp32' or 'bf16' (autocast; meant for the paper presets on GPUs)
    "log_every": 10,  # steps between train-loss records
    "checkpoint_every": 0,  # steps between checkpoints; 0 = at every evaluation
    # torch's intra-op threads. Results depend on it (reduction order), so it is part of a run's
    # identity; one thread per run, with the leaderboard running runs side by side, uses the
    # cores best at the small presets.
    "threads": 1,
}


class ConfigError(InputError):
    """A preset, key or value that the suite or optimizer does not accept."""


# What a suite raises for its own bad input (checks, builder). Not ConfigErrors: raised while a run
# trains (a suite's run-time check), they fail that run like any error; raised by `suite.build`,
# the engine turns them into bad input (exit 2, nothing left behind). Any other exception is a bug.
class SuiteConfigError(InputError):
    """A suite's key whose value the suite cannot use; the message names it and what is accepted."""


class SuiteDataError(InputError):
    """A suite's data cannot be used: too little of it, a split without examples, a tokenizer that lacks a token."""


class DataNotFoundError(SuiteDataError, FileNotFoundError):
    """A data path (files, dataset, tokenizer) that does not exist or cannot be loaded."""


class DataNotADirectoryError(SuiteDataError, NotADirectoryError):
    """A data path that should be a folder and is a file."""


class DataIsADirectoryError(SuiteDataError, IsADirectoryError):
    """A data path that should be a file and is a folder."""


@dataclass
class ResolvedConfig:
    suite_config: dict[str, Any]
    hyperparameters: dict[str, Any]
    policy: ParamGroupPolicy
    overrides: dict[str, Any]


def parse_set_arguments(pairs: list[str]) -> dict[str, str]:
    """['lr=0.1', 'steps=20'] -> {'lr': '0.1', 'steps': '20'}; values stay strings until typed."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"invalid --set {pair!r}: expected key=value, e.g. --set lr=0.01")
        out[key.strip()] = value.strip()
    return out


def preset_config(suite: Any, preset: str) -> dict[str, Any]:
    if preset not in suite.presets:
        raise ConfigError(
            f"suite '{suite.name}' has no preset '{preset}'; accepted: {', '.join(suite.presets)}"
        )
    return {**ENGINE_DEFAULTS, **dict(suite.presets[preset])}


def _coerce_like(key: str, value: Any, template: Any) -> Any:
    """Type a --set value like the preset's own value for that key."""
    if not isinstance(value, str) or isinstance(template, str) or template is None:
        return value
    try:
        if isinstance(template, bool):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return value.lower() in ("true", "1", "yes")
        if isinstance(template, int):
            number = float(value)
            if number != int(number):
                raise ValueError
            return int(number)
        if isinstance(template, float):
            return float(value)
        if isinstance(template, (list, tuple, dict)):
            parsed = json.loads(value)
            if not isinstance(parsed, type(template) if not isinstance(template, tuple) else list):
                raise ValueError
            return parsed
    except (ValueError, OverflowError):  # int('inf') overflows
        raise ConfigError(
            f"invalid value {value!r} for suite key '{key}': expected a finite {type(template).__name__} "
            f"like {template!r}"
        ) from None
    return value


def split_keys(
    values: Mapping[str, Any], spec: OptimizerSpec, suite_keys: set[str], where: str
) -> tuple[dict, dict, dict]:
    """Sort keys into (optimizer hyperparameters, policy fields, suite config)."""
    hp_names = {h.name for h in spec.hyperparameters}
    policy_names = set(ParamGroupPolicy.field_names())
    hp, policy, suite = {}, {}, {}
    for key, value in values.items():
        namespace, dot, name = key.partition(".")
        if dot and namespace == "policy" and name in policy_names:
            policy[name] = value
        elif dot and namespace == "optimizer" and name in hp_names:
            hp[name] = value
        elif dot and namespace == "suite" and name in suite_keys:
            suite[name] = value
        elif not dot and key in hp_names:
            hp[key] = value
        elif not dot and key in suite_keys:
            suite[key] = value
        else:
            raise ConfigError(
                f"unknown key '{key}' in {where}. Accepted: optimizer '{spec.name}' hyperparameters "
                f"{sorted(hp_names)}; policy.<field> for {sorted(policy_names)}; suite keys {sorted(suite_keys)}"
            )
    return hp, policy, suite


def resolve_config(
    suite: Any, preset: str, spec: OptimizerSpec, overrides: Mapping[str, Any]
) -> ResolvedConfig:
    """Preset and engine defaults, then the suite's defaults for this optimizer, then the user's --set."""
    base = preset_config(suite, preset)
    suite_keys = set(base)
    user_hp, user_policy, user_suite = split_keys(overrides, spec, suite_keys, "--set")
    suite_config = {**base, **{k: _coerce_like(k, v, base[k]) for k, v in user_suite.items()}}
    # the suite's hand-picked defaults, then what a shipped tuning study chose (tuned_defaults.py)
    defaults = {**(suite.optimizer_defaults(spec.name, suite_config) or {}),
                **tuned_overrides(suite, preset, spec.name)}
    default_hp, default_policy, default_suite = split_keys(
        defaults, spec, suite_keys, f"suite '{suite.name}' defaults for '{spec.name}'"
    )
    for k, v in default_suite.items():  # a suite may tune its own keys per optimizer; --set still wins
        if k not in user_suite:
            suite_config[k] = v
    try:
        hyperparameters = spec.resolve({**default_hp, **user_hp})
        policy = ParamGroupPolicy.from_dict({**default_policy, **user_policy})
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    validate = getattr(suite, "validate_config", None)  # optional: a suite's own checks of its keys
    if validate is not None:
        try:
            validate(suite_config)
        except ValueError as exc:
            raise ConfigError(f"suite '{suite.name}': {exc}") from exc
    check_engine_keys(suite_config)
    return ResolvedConfig(suite_config, hyperparameters, policy, dict(overrides))


def check_engine_keys(config: dict[str, Any]) -> None:
    """The keys the engine itself reads, and batch sizes every training suite shares."""
    if config.get("precision") not in ("fp32", "bf16"):
        raise ConfigError(f"invalid precision {config.get('precision')!r}: expected 'fp32' or 'bf16'")
    for key, low in (("threads", 1), ("log_every", 1), ("checkpoint_every", 0)):
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"invalid {key} {value!r}: expected an integer >= {low}")
    micro, global_batch = config.get("micro_batch_size"), config.get("global_batch_size")
    if isinstance(micro, int) and isinstance(global_batch, int) and micro > global_batch:
        raise ConfigError(f"micro_batch_size {micro} is larger than global_batch_size {global_batch}: "
                          f"expected a micro-batch of at most {global_batch}")
