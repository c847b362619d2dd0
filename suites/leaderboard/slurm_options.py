"""The SLURM executor's settings: command-line flags, a lab's config file, and the submitit parameters they become.

Each setting is declared once, in `SETTINGS`: its config-file key (also its `SlurmOptions` field),
default, flag, help, check, and the submitit parameters it decides. The flags, the file's accepted
keys, the checks and the parameters nightbench keeps to itself are generated from it. A lab writes
its settings in a TOML file (the README's 'On a SLURM cluster' has an example, which the tests read)
and passes `--executor-config FILE`; flags given on the command line win over the file. The file's
`[options]` table and `--slurm-option KEY=VALUE` are passed on to submitit as they are: a parameter
submitit takes goes to it by name, anything else becomes an `#SBATCH --KEY=VALUE` line.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field, make_dataclass
from pathlib import Path
from typing import Any, Callable

from nightbench.optimizers.errors import InputError

DEFAULT_TIME_MIN = 60
DEFAULT_MAX_REQUEUES = 10
DEFAULT_POLL_SECONDS = 10.0
# submitit asks SLURM for its checkpoint signal this many seconds before the limit. SLURM looks at
# time limits every 30 s or so and may send it that much earlier, so a short limit asks for a sixth
# of its length instead (at least 10 s: the job needs a moment to requeue itself and exit).
SUBMITIT_SIGNAL_DELAY_S = 90
ZERO_STAGES = (0, 1, 2, 3)
MEMORY = re.compile(r"^[0-9]+[KMGT]?$", re.IGNORECASE)
# submitit parameters the executor sets for each stage (slurm.py), whatever the settings say.
EXECUTOR_PARAMETERS = ("job_name", "map_count")


class SlurmOptionError(InputError):
    """A SLURM setting nightbench cannot use (flag, config file or passed-through option)."""


class _Rejected(ValueError):
    """A check's refusal; its message says what would be accepted."""


# -- the checks: each returns the value to keep, or raises _Rejected("<what is accepted>") ----------

def at_least(minimum: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise _Rejected(f"an integer >= {minimum}")
        return value
    return check


def a_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Rejected("a non-empty name")
    return value


def a_memory_size(value: Any) -> str:
    if not MEMORY.match(str(value)):
        raise _Rejected("a number with an optional unit K, M, G or T, as sbatch --mem reads it (e.g. 64G)")
    return str(value).upper()


def seconds(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise _Rejected("a number of seconds > 0")
    return value


def one_of(*accepted: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or value not in accepted:
            raise _Rejected(", ".join(map(str, accepted[:-1])) + f" or {accepted[-1]}")
        return value
    return check


def an_existing_file(value: Any) -> str:
    if not isinstance(value, str) or not Path(value).is_file():
        raise _Rejected("an existing file")
    return str(Path(value).resolve())  # the jobs start in another directory


@dataclass(frozen=True)
class Setting:
    key: str  # the config file's key and the SlurmOptions field
    default: Any
    help: str
    check: Callable[[Any], Any]
    flag: str | None = None  # None: in the config file only
    metavar: str | None = None
    type: Callable[[str], Any] = str  # how argparse reads the flag
    choices: tuple[Any, ...] | None = None  # the flag's choices, shown in --help (the check still runs)
    submitit: str | None = None  # the submitit parameter that takes the value as it is
    decides: tuple[str, ...] = ()  # submitit parameters computed from it (in submitit_parameters)

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")


SETTINGS = (
    Setting("partition", None, "the partition the jobs run in", a_name, "--slurm-partition", "NAME",
            submitit="partition"),
    Setting("time", DEFAULT_TIME_MIN, f"time limit of each job in minutes (default {DEFAULT_TIME_MIN}); a run that "
            "needs longer is requeued and resumes from its checkpoint", at_least(1), "--slurm-time", "MINUTES", int,
            submitit="time"),
    Setting("gpus_per_run", 0, "GPUs per node of a run; N > 1 runs DeepSpeed with one process per GPU "
            "(default 0: CPU)", at_least(0), "--gpus-per-run", "N", int, decides=("gpus_per_node", "ntasks_per_node")),
    Setting("nodes_per_run", 1, "nodes per run (default 1); M > 1 spreads a run over M nodes under DeepSpeed",
            at_least(1), "--nodes-per-run", "M", int, decides=("nodes",)),
    Setting("cpus_per_run", None, "CPU cores per node of a run, shared by its processes (default: the runs' "
            "'threads' setting per process)", at_least(1), "--cpus-per-run", "C", int, decides=("cpus_per_task",)),
    Setting("mem_per_run", None, "memory per node of a run, as sbatch --mem reads it (e.g. 64G; default: the "
            "cluster's)", a_memory_size, "--mem-per-run", "MEM", submitit="mem"),
    Setting("account", None, "the account the jobs are charged to", a_name, "--slurm-account", "NAME",
            submitit="account"),
    Setting("qos", None, "the jobs' quality of service", a_name, "--slurm-qos", "NAME", submitit="qos"),
    Setting("max_parallel", None, "jobs of one stage running at once: the job array's throttle (default: no "
            "limit)", at_least(1), "--max-parallel", "N", int, submitit="array_parallelism"),
    Setting("max_requeues", DEFAULT_MAX_REQUEUES, "time-limit requeues of one job before its run is given up "
            f"(default {DEFAULT_MAX_REQUEUES})", at_least(0), "--slurm-max-requeues", "N", int),
    Setting("poll_seconds", DEFAULT_POLL_SECONDS, "how often the waiting leaderboard asks squeue", seconds),
    Setting("zero_stage", None, "DeepSpeed ZeRO stage of multi-GPU runs (default 0)", one_of(*ZERO_STAGES),
            "--zero-stage", None, int, choices=ZERO_STAGES),
    Setting("deepspeed_config", None, "a DeepSpeed config to start multi-GPU runs from (no optimizer/scheduler/"
            "batch sections)", an_existing_file, "--deepspeed-config", "JSON"),
)
# The file's [options] table and --slurm-option: passed on to submitit (see the module docstring).
OPTIONS_KEY = "options"
FILE_KEYS = tuple(s.key for s in SETTINGS) + (OPTIONS_KEY,)
# Parameters the settings (and the executor) decide: a passed-through option must not set them behind their back.
OWNED_PARAMETERS = {name: s.flag for s in SETTINGS for name in (s.submitit, *s.decides) if name} | {
    name: "the executor" for name in EXECUTOR_PARAMETERS}


class _RunShape:
    """What the settings imply about one run's processes."""

    @property
    def tasks_per_node(self) -> int:
        """One process per GPU (one process for a CPU run)."""
        return max(1, self.gpus_per_run)

    @property
    def world_size(self) -> int:
        return self.nodes_per_run * self.tasks_per_node

    @property
    def signal_delay_s(self) -> int:
        """Seconds before the time limit at which the job is told to stop (and requeued)."""
        return min(SUBMITIT_SIGNAL_DELAY_S, max(10, self.time * 60 // 6))


SlurmOptions = make_dataclass(
    "SlurmOptions", [(s.key, Any, field(default=s.default)) for s in SETTINGS]
    + [(OPTIONS_KEY, dict, field(default_factory=dict))], bases=(_RunShape,), frozen=True)
SlurmOptions.__module__ = __name__  # pickled with the jobs' requests: found here, not in dataclasses
SlurmOptions.__doc__ = "The checked SLURM settings (fields: SETTINGS' keys) and the options passed on to submitit."


def add_slurm_arguments(parser: argparse.ArgumentParser) -> None:
    """The leaderboard's flags for `--executor slurm` (all default to None: unset means 'the config file's')."""
    g = parser.add_argument_group("SLURM (--executor slurm; see the README's 'On a SLURM cluster')")
    g.add_argument("--executor-config", metavar="FILE", default=None,
                   help="a TOML file of SLURM settings (keys: " + ", ".join(FILE_KEYS) + "); flags win over it")
    for s in SETTINGS:
        if s.flag:
            g.add_argument(s.flag, metavar=s.metavar, type=s.type, choices=s.choices, default=None, help=s.help)
    g.add_argument("--slurm-option", metavar="KEY=VALUE", action="append", default=None,
                   help="passed on (repeatable): a submitit parameter by name, anything else as #SBATCH --KEY=VALUE")
    g.add_argument("--detach", action="store_true",
                   help="submit the stage's jobs and return; run the same command again to re-attach")


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings of an --executor-config TOML file, checked for unknown keys."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            values = tomllib.load(f)
    except OSError as exc:
        raise SlurmOptionError(f"cannot read --executor-config {path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SlurmOptionError(f"--executor-config {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(values) - set(FILE_KEYS))
    if unknown:
        raise SlurmOptionError(f"--executor-config {path}: unknown key(s) {', '.join(unknown)}; "
                               f"accepted: {', '.join(FILE_KEYS)}")
    if OPTIONS_KEY in values and not isinstance(values[OPTIONS_KEY], dict):
        raise SlurmOptionError(f"--executor-config {path}: 'options' must be a table ([options]) of KEY = VALUE")
    return values


def parse_option(text: str) -> tuple[str, Any]:
    """'KEY=VALUE' of --slurm-option: integers and true/false are typed, anything else stays a string."""
    key, sep, value = text.partition("=")
    key = key.strip().lstrip("-").replace("-", "_")
    if not sep or not key:
        raise SlurmOptionError(f"invalid --slurm-option {text!r}: expected KEY=VALUE, e.g. constraint=a100")
    value = value.strip()
    if re.fullmatch(r"-?[0-9]+", value):
        return key, int(value)
    if value.lower() in ("true", "false"):
        return key, value.lower() == "true"
    return key, value


def options_from_args(args: argparse.Namespace) -> SlurmOptions:
    """Defaults < --executor-config FILE < flags; every value checked, named as where it came from."""
    values: dict[str, Any] = {}
    where: dict[str, str] = {}
    config = getattr(args, "executor_config", None)
    if config:
        values.update(read_config_file(config))
        where.update({key: f"{key} (in {config})" for key in values})
    for s in SETTINGS:
        if s.flag and getattr(args, s.dest, None) is not None:
            values[s.key], where[s.key] = getattr(args, s.dest), s.flag
    extra = dict(values.pop(OPTIONS_KEY, None) or {})
    for text in getattr(args, "slurm_option", None) or []:
        key, value = parse_option(text)
        extra[key] = value
    checked = {}
    for s in SETTINGS:
        value = values.get(s.key, s.default)
        try:
            checked[s.key] = value if value is None else s.check(value)
        except _Rejected as exc:
            raise SlurmOptionError(f"invalid {where.get(s.key, s.key)} {value!r}: expected {exc}") from None
    return _check_together(SlurmOptions(**checked, options=extra))


def _check_together(options: SlurmOptions) -> SlurmOptions:
    """What no single setting's check can see."""
    if options.cpus_per_run is not None and options.cpus_per_run < options.tasks_per_node:
        raise SlurmOptionError(f"--cpus-per-run {options.cpus_per_run} is fewer than the run's "
                               f"{options.tasks_per_node} processes per node (one per GPU); give at least "
                               f"{options.tasks_per_node}")
    owned = sorted(set(options.options) & set(OWNED_PARAMETERS))
    if owned:
        raise SlurmOptionError("--slurm-option " + ", ".join(f"{key} is set by {OWNED_PARAMETERS[key]}" for key in owned)
                               + "; use that instead")
    return options


def submitit_parameters(options: SlurmOptions, *, single_process: bool = False, threads: int = 1) -> dict[str, Any]:
    """The parameters of `submitit.SlurmExecutor.update_parameters` for one job array.

    single_process: the runs cannot use several processes (experiment suites): one task, one GPU at most.
    threads: the runs' torch threads (their `threads` setting): the cores of a task without --cpus-per-run."""
    tasks = 1 if single_process else options.tasks_per_node
    params: dict[str, Any] = {s.submitit: getattr(options, s.key) for s in SETTINGS
                              if s.submitit and getattr(options, s.key) is not None}
    params.update({
        "nodes": 1 if single_process else options.nodes_per_run,
        "ntasks_per_node": tasks,
        "signal_delay_s": options.signal_delay_s,
        "stderr_to_stdout": True,  # one log per job: the one a failed run is reported with
    })
    gpus = min(options.gpus_per_run, 1) if single_process else options.gpus_per_run
    if gpus:
        params["gpus_per_node"] = gpus
    if options.cpus_per_run is not None:
        params["cpus_per_task"] = max(1, options.cpus_per_run // tasks)
    elif threads > 1:
        params["cpus_per_task"] = threads
    taken = _submitit_parameter_names()
    sbatch_flags = {}
    for key, value in options.options.items():
        if key in taken:
            params[key] = value
        else:
            sbatch_flags[key.replace("_", "-")] = value
    if sbatch_flags:
        params["additional_parameters"] = {**params.get("additional_parameters", {}), **sbatch_flags}
    return params


def _submitit_parameter_names() -> set[str]:
    """The names `submitit.SlurmExecutor.update_parameters` takes, as the executor class itself reports them."""
    import submitit

    return set(submitit.SlurmExecutor._valid_parameters())
