"""What one run is, before anything touches the disk: a `RunRequest` becomes a `RunPlan`.

A request names the run as a user does (suite, optimizer, preset, seed, --set overrides); planning
resolves it against the suite and the registry, validates every value, and fixes the run's
identity and directory. Planning writes nothing, so bad input fails before a directory exists.
A request also travels as a file (`write_request` / `read_request`): a leaderboard's child process
or a cluster job starts from it.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nightbench.optimizers import get_spec, load_optimizer_file

from .base import DEFAULT_PRESET
from .catalog import get_suite, load_suite_file
from .config import ConfigError, ResolvedConfig, resolve_config
from .layout import request_path, run_path
from .run_dir import atomic_write_json, identity_hash
from .tuned_defaults import defaults_source

PROTOCOLS = ("default", "tuning", "final")
MAX_SEED = 2**63 - 1  # seeds feed torch's and numpy's generators (64-bit)


@dataclass
class RunRequest:
    suite: str
    optimizer: str
    preset: str = DEFAULT_PRESET
    seed: int = 0
    overrides: dict[str, Any] = field(default_factory=dict)
    results_root: str = "results"
    device: str | None = None  # None: cuda when available, else cpu
    protocol: str = "default"  # default | tuning | final (which leaderboard protocol produced it)
    optimizer_files: list[str] = field(default_factory=list)
    suite_files: list[str] = field(default_factory=list)
    progress: bool = True
    deepspeed: Any = None  # a distributed.DeepSpeedOptions: run under DeepSpeed (any launcher, any world size)


@dataclass(frozen=True)
class RunPlan:
    """Everything a run needs, resolved and validated; `config` is what config.json will record."""

    request: RunRequest
    suite: Any
    spec: Any  # nightbench.optimizers.OptimizerSpec
    resolved: ResolvedConfig
    run_dir: Path
    config: dict

    @property
    def label(self) -> str:
        """suite/optimizer/protocol/seedN (with the lr for tuning runs): how progress lines name a run."""
        r = self.request
        label = f"{self.suite.name}/{self.spec.name}/{r.protocol}/seed{r.seed}"
        if r.protocol == "tuning":
            label += f"/lr={self.resolved.hyperparameters.get('lr')}"
        return label


def run_name(protocol: str, hyperparameters: dict, identity: dict, seed: int) -> str:
    """e.g. 'default-lr1e-03-3fa2b1c9-seed0': readable lr, exact hash, seed."""
    lr = hyperparameters.get("lr")
    lr_part = f"lr{lr:.0e}-" if isinstance(lr, (int, float)) else ""
    return f"{protocol}-{lr_part}{identity_hash(identity)}-seed{seed}"


def plan_run(request: RunRequest) -> RunPlan:
    """Resolve and validate one run without touching the disk."""
    if request.protocol not in PROTOCOLS:
        raise ConfigError(f"invalid protocol {request.protocol!r}: expected one of {PROTOCOLS}")
    seed = request.seed
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"invalid seed {seed!r}: expected an integer from 0 to 2**63 - 1")
    for path in request.optimizer_files:
        load_optimizer_file(path)
    for path in request.suite_files:
        load_suite_file(path)
    suite = get_suite(request.suite)
    spec = get_spec(request.optimizer)
    resolved = resolve_config(suite, request.preset, spec, request.overrides)
    identity = {
        "suite": suite.name, "preset": request.preset, "optimizer": spec.name,
        "hyperparameters": resolved.hyperparameters, "policy": resolved.policy.to_dict(),
        "suite_config": resolved.suite_config, "seed": seed,
    }
    if spec.source_digest:  # a user's optimizer file: once edited, its runs are new runs
        identity["optimizer_source"] = spec.source_digest
    name = run_name(request.protocol, resolved.hyperparameters, identity, seed)
    config = {
        **identity,
        "run_name": name,
        "protocol": request.protocol,
        "overrides": resolved.overrides,
        "defaults_source": defaults_source(suite, request.preset, spec.name),
        "optimizer_spec": spec.to_dict(),
        "suite_kind": suite.kind,
        "suite_description": suite.description,
        "suite_facts": suite.facts(),
        "target_metric": suite.target_metric,
        "higher_is_better": suite.higher_is_better,
        "target_value": suite.target_values.get(request.preset),
        "world_size": 1,
    }
    run_dir = run_path(request.results_root, suite.name, request.preset, spec.name, name)
    return RunPlan(request, suite, spec, resolved, run_dir, config)


# --- requests as files ------------------------------------------------------------------------
_FILE_FIELDS = ("suite", "optimizer", "preset", "seed", "overrides", "results_root", "device", "protocol",
                "optimizer_files", "suite_files")


def write_request(plan: RunPlan) -> Path:
    """Write the run's request beside its run directory (absolute paths: a job may start elsewhere)."""
    r = plan.request
    record = {key: getattr(r, key) for key in _FILE_FIELDS}
    record["results_root"] = str(Path(r.results_root).resolve())
    record["optimizer_files"] = [str(Path(p).resolve()) for p in r.optimizer_files]
    record["suite_files"] = [str(Path(p).resolve()) for p in r.suite_files]
    record["run_dir"] = str(plan.run_dir.resolve())
    path = request_path(plan.run_dir)
    atomic_write_json(path, record)
    return path


# The type each field of a request file must have (None: the field may be null); "run_dir" is
# written for the reader's sake and not read back.
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "suite": (str,), "optimizer": (str,), "preset": (str,), "seed": (int,), "overrides": (dict,),
    "results_root": (str,), "device": (str, type(None)), "protocol": (str,), "optimizer_files": (list,),
    "suite_files": (list,), "run_dir": (str,),
}


def _check_record(record: dict, path: str | Path) -> None:
    """Every key known and of its type: a misspelt key would otherwise run another run than the one asked for."""
    for key, value in record.items():
        if key not in _FIELD_TYPES:
            close = difflib.get_close_matches(str(key), list(_FIELD_TYPES), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ConfigError(f"run request {path}: unknown field '{key}'{hint}; "
                              f"expected only: {', '.join(_FIELD_TYPES)}")
        accepted = _FIELD_TYPES[key]
        wrong = (not isinstance(value, accepted) or (isinstance(value, bool) and bool not in accepted)
                 or (isinstance(value, list) and not all(isinstance(v, str) for v in value))
                 or (isinstance(value, dict) and not all(isinstance(k, str) for k in value)))
        if wrong:
            expected = {str: "a string", int: "an integer", dict: "an object of name -> value",
                        list: "a list of file paths (strings)", type(None): "null"}
            raise ConfigError(f"run request {path}: field '{key}' is {json.dumps(value)[:80]}; expected "
                              + " or ".join(expected[t] for t in accepted))


def read_request(path: str | Path, **changes: Any) -> RunRequest:
    """The RunRequest a request file holds (with `changes` applied, e.g. progress=False)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the run request {path}: {exc}") from None
    if not isinstance(record, dict) or not {"suite", "optimizer"} <= set(record):
        raise ConfigError(f"{path} is not a nightbench run request (expected a JSON object with suite and optimizer)")
    _check_record(record, path)
    fields = {key: record[key] for key in _FILE_FIELDS if key in record}
    return dataclasses.replace(RunRequest(**fields), **changes)
