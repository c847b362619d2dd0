"""The SLURM executor's settings: command-line flags, a lab's config file, and the submitit parameters they become.

A lab writes its cluster settings once in a TOML file and passes `--executor-config FILE`; flags
given on the command line win over the file. Every key of the file is one of `FILE_KEYS`:

    partition = "gpu"
    time = 1440               # minutes per job; a longer run is requeued and resumes (default 60)
    gpus_per_run = 8          # one node, 8 processes, DeepSpeed inside the job
    nodes_per_run = 1
    cpus_per_run = 64         # per node of a run, shared by its processes
    mem_per_run = "256G"      # per node of a run, as sbatch --mem reads it
    account = "mylab"
    qos = "normal"
    max_parallel = 32         # jobs of one stage running at once (the job array's throttle)
    max_requeues = 20         # time-limit requeues before a run is given up
    poll_seconds = 30         # how often the leaderboard asks squeue while it waits
    zero_stage = 2            # DeepSpeed ZeRO stage for multi-GPU runs
    deepspeed_config = "ds.json"
    [options]                 # passed on: submitit's parameters by name, anything else as #SBATCH --KEY=VALUE
    constraint = "a100"
    setup = ["module load cuda/12.4"]
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from nightbench.optimizers.errors import InputError

DEFAULT_TIME_MIN = 60
DEFAULT_MAX_REQUEUES = 10
DEFAULT_POLL_SECONDS = 10.0
# submitit asks SLURM for its checkpoint signal this many seconds before the limit. SLURM looks at
# time limits every 30 s or so and may send it that much earlier, so a short limit asks for a sixth
# of its length instead (at least 10 s: the job needs a moment to requeue itself and exit).
SUBMITIT_SIGNAL_DELAY_S = 90
MEMORY = re.compile(r"^[0-9]+[KMGT]?$", re.IGNORECASE)
# Parameters the flags own: a passed-through option must not set them behind the flags' back.
OWNED_PARAMETERS = ("time", "partition", "account", "qos", "nodes", "ntasks_per_node", "gpus_per_node",
                    "cpus_per_task", "mem", "array_parallelism", "job_name", "map_count")


class SlurmOptionError(InputError):
    """A SLURM setting nightbench cannot use (flag, config file or passed-through option)."""


@dataclass(frozen=True)
class SlurmOptions:
    partition: str | None = None
    time: int = DEFAULT_TIME_MIN
    gpus_per_run: int = 0
    nodes_per_run: int = 1
    cpus_per_run: int | None = None
    mem_per_run: str | None = None
    account: str | None = None
    qos: str | None = None
    max_parallel: int | None = None
    max_requeues: int = DEFAULT_MAX_REQUEUES
    poll_seconds: float = DEFAULT_POLL_SECONDS
    zero_stage: int | None = None
    deepspeed_config: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

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


FILE_KEYS = tuple(f.name for f in fields(SlurmOptions))

# flag dest -> SlurmOptions field
FLAG_FIELDS = {
    "slurm_partition": "partition", "slurm_time": "time", "gpus_per_run": "gpus_per_run",
    "nodes_per_run": "nodes_per_run", "cpus_per_run": "cpus_per_run", "mem_per_run": "mem_per_run",
    "slurm_account": "account", "slurm_qos": "qos", "max_parallel": "max_parallel",
    "slurm_max_requeues": "max_requeues", "zero_stage": "zero_stage", "deepspeed_config": "deepspeed_config",
}


def add_slurm_arguments(parser: argparse.ArgumentParser) -> None:
    """The leaderboard's flags for `--executor slurm` (all default to None: unset means 'the config file's')."""
    g = parser.add_argument_group("SLURM (--executor slurm; see the README's 'On a SLURM cluster')")
    g.add_argument("--executor-config", metavar="FILE", default=None,
                   help="a TOML file of SLURM settings (keys: " + ", ".join(FILE_KEYS) + "); flags win over it")
    g.add_argument("--slurm-partition", metavar="NAME", default=None)
    g.add_argument("--slurm-time", metavar="MINUTES", type=int, default=None,
                   help=f"time limit of each job (default {DEFAULT_TIME_MIN}); a run that needs longer is "
                        "requeued and resumes from its checkpoint")
    g.add_argument("--gpus-per-run", metavar="N", type=int, default=None,
                   help="GPUs per node of a run; N > 1 runs DeepSpeed with one process per GPU (default 0: CPU)")
    g.add_argument("--nodes-per-run", metavar="M", type=int, default=None,
                   help="nodes per run (default 1); M > 1 spreads a run over M nodes under DeepSpeed")
    g.add_argument("--cpus-per-run", metavar="C", type=int, default=None,
                   help="CPU cores per node of a run, shared by its processes (default: the runs' "
                        "'threads' setting per process)")
    g.add_argument("--mem-per-run", metavar="MEM", default=None,
                   help="memory per node of a run, as sbatch --mem reads it (e.g. 64G; default: the cluster's)")
    g.add_argument("--slurm-account", metavar="NAME", default=None)
    g.add_argument("--slurm-qos", metavar="NAME", default=None)
    g.add_argument("--slurm-option", metavar="KEY=VALUE", action="append", default=None,
                   help="passed on (repeatable): a submitit parameter by name, anything else as #SBATCH --KEY=VALUE")
    g.add_argument("--slurm-max-requeues", metavar="N", type=int, default=None,
                   help=f"time-limit requeues of one job before its run is given up (default {DEFAULT_MAX_REQUEUES})")
    g.add_argument("--max-parallel", metavar="N", type=int, default=None,
                   help="jobs of one stage running at once: the job array's throttle (default: no limit)")
    g.add_argument("--zero-stage", type=int, choices=[0, 1, 2, 3], default=None,
                   help="DeepSpeed ZeRO stage of multi-GPU runs (default 0)")
    g.add_argument("--deepspeed-config", metavar="JSON", default=None,
                   help="a DeepSpeed config to start multi-GPU runs from (no optimizer/scheduler/batch sections)")
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
    if "options" in values and not isinstance(values["options"], dict):
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
    """Defaults < --executor-config FILE < flags; every value checked."""
    values: dict[str, Any] = {}
    if getattr(args, "executor_config", None):
        values.update(read_config_file(args.executor_config))
    for dest, name in FLAG_FIELDS.items():
        value = getattr(args, dest, None)
        if value is not None:
            values[name] = value
    extra = dict(values.pop("options", None) or {})
    for text in getattr(args, "slurm_option", None) or []:
        key, value = parse_option(text)
        extra[key] = value
    return check_options(replace(SlurmOptions(), **values, options=extra))


def _positive_int(name: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SlurmOptionError(f"invalid {name} {value!r}: expected an integer >= {minimum}")


def check_options(options: SlurmOptions) -> SlurmOptions:
    _positive_int("--slurm-time (minutes)", options.time)
    _positive_int("--gpus-per-run", options.gpus_per_run, minimum=0)
    _positive_int("--nodes-per-run", options.nodes_per_run)
    _positive_int("--slurm-max-requeues", options.max_requeues, minimum=0)
    if options.cpus_per_run is not None:
        _positive_int("--cpus-per-run", options.cpus_per_run)
        if options.cpus_per_run < options.tasks_per_node:
            raise SlurmOptionError(f"--cpus-per-run {options.cpus_per_run} is fewer than the run's "
                                   f"{options.tasks_per_node} processes per node (one per GPU); give at least "
                                   f"{options.tasks_per_node}")
    if options.max_parallel is not None:
        _positive_int("--max-parallel", options.max_parallel)
    if options.mem_per_run is not None and not MEMORY.match(str(options.mem_per_run)):
        raise SlurmOptionError(f"invalid --mem-per-run {options.mem_per_run!r}: expected a number with an "
                               "optional unit K, M, G or T, as sbatch --mem reads it (e.g. 64G)")
    if isinstance(options.poll_seconds, bool) or not isinstance(options.poll_seconds, (int, float)) \
            or options.poll_seconds <= 0:
        raise SlurmOptionError(f"invalid poll_seconds {options.poll_seconds!r}: expected a number of seconds > 0")
    if options.zero_stage is not None and options.zero_stage not in (0, 1, 2, 3):
        raise SlurmOptionError(f"invalid zero_stage {options.zero_stage!r}: expected 0, 1, 2 or 3")
    if options.deepspeed_config is not None:
        if not Path(options.deepspeed_config).is_file():
            raise SlurmOptionError(f"--deepspeed-config {options.deepspeed_config}: no such file")
        options = replace(options, deepspeed_config=str(Path(options.deepspeed_config).resolve()))  # jobs start elsewhere
    for text in ("partition", "account", "qos"):
        value = getattr(options, text)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise SlurmOptionError(f"invalid {text} {value!r}: expected a non-empty name")
    owned = sorted(set(options.options) & set(OWNED_PARAMETERS))
    if owned:
        raise SlurmOptionError(f"--slurm-option {', '.join(owned)}: set by nightbench's own flags "
                               "(--slurm-time, --slurm-partition, --gpus-per-run, ...); use those instead")
    return options


def submitit_parameters(options: SlurmOptions, *, single_process: bool = False, threads: int = 1) -> dict[str, Any]:
    """The parameters of `submitit.SlurmExecutor.update_parameters` for one job array.

    single_process: the runs cannot use several processes (experiment suites): one task, one GPU at most.
    threads: the runs' torch threads (their `threads` setting): the cores of a task without --cpus-per-run."""
    from submitit.slurm.slurm import _get_default_parameters  # the names submitit accepts

    tasks = 1 if single_process else options.tasks_per_node
    nodes = 1 if single_process else options.nodes_per_run
    params: dict[str, Any] = {
        "time": options.time,
        "nodes": nodes,
        "ntasks_per_node": tasks,
        "signal_delay_s": options.signal_delay_s,
        "stderr_to_stdout": True,  # one log per job: the one a failed run is reported with
    }
    gpus = min(options.gpus_per_run, 1) if single_process else options.gpus_per_run
    if gpus:
        params["gpus_per_node"] = gpus
    if options.cpus_per_run is not None:
        params["cpus_per_task"] = max(1, options.cpus_per_run // tasks)
    elif threads > 1:
        params["cpus_per_task"] = threads
    if options.mem_per_run is not None:
        params["mem"] = str(options.mem_per_run).upper()
    for name in ("partition", "account", "qos"):
        if getattr(options, name) is not None:
            params[name] = getattr(options, name)
    if options.max_parallel is not None:
        params["array_parallelism"] = options.max_parallel
    known = set(_get_default_parameters())
    sbatch_flags = {}
    for key, value in options.options.items():
        if key in known:
            params[key] = value
        else:
            sbatch_flags[key.replace("_", "-")] = value
    if sbatch_flags:
        params["additional_parameters"] = {**params.get("additional_parameters", {}), **sbatch_flags}
    return params
