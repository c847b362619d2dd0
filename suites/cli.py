"""The `nightbench` command line: list, run, leaderboard, status, verify, report.

Exit status (outcomes.ExitCode): 0 success; 1 a run failed (or diverged, for `run`), or nightbench
hit a bug (it says so, and writes the traceback to a file); 2 bad input (the message says what would
be accepted); 75 the run is being run by another live process; 130 interrupted (run the same command
again).
"""

from __future__ import annotations

import argparse
import datetime
import errno
import os
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

from nightbench.optimizers import get_spec, load_optimizer_file
from nightbench.optimizers import names as optimizer_names
from nightbench.optimizers import plugin_errors
from nightbench.optimizers.errors import InputError
from nightbench.optimizers.search_space import describe as describe_space
from nightbench.optimizers.spec import FAMILIES, FAMILY_HELP

from . import layout
from .arguments import plugin_options, run_options
from .base import DEFAULT_PRESET
from .catalog import get_suite, load_suite_file, suite_names
from .config import ConfigError, parse_set_arguments, preset_config
from .outcomes import ExitCode, RunState
from .plan import PROTOCOLS
from .run_dir import RunLockedError


def _format_value(value) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def list_optimizers(show_all: bool) -> None:
    shown_set = None
    for name in sorted(optimizer_names(), key=lambda n: FAMILIES.index(get_spec(n).family)):  # grouped by set
        spec = get_spec(name)
        if spec.family != shown_set:
            shown_set = spec.family
            print(f"== {spec.family} set ({FAMILY_HELP[spec.family]}; --optimizers {spec.family}) ==")
        flags = [f"state slots: {spec.state_slots if spec.state_slots is not None else '?'}"]
        if spec.needs_eval_swap:
            flags.append("evaluates at w_t (train/eval swap)")
        if spec.gradients_per_step > 1:
            flags.append(f"{spec.gradients_per_step} gradients per step")
        if spec.source != "builtin":
            flags.append(f"from {spec.source}")
        print(f"{name:<16} {spec.description}")
        print(f"{'':<16} paper: {spec.paper or '-'}")
        print(f"{'':<16} {'; '.join(flags)}")
        for h in spec.hyperparameters:
            setting = f"{h.name} = {_format_value(h.default)}"
            print(f"{'':<18}{setting:<32} {h.accepted()}" + (f"  ({h.help})" if h.help else ""))
        origin = "tuned over" if spec.search_space is not None else "tuned over (declares no space: lr alone)"
        print(f"{'':<18}{origin}: " + "; ".join(f"{k} {v}" for k, v in describe_space(spec.tuning_space).items()))
        print()
    for source, error in plugin_errors().items():
        print(f"could not load {source}: {error}", file=sys.stderr)
    if show_all:
        timm = [n for n in optimizer_names(include_timm=True) if n.startswith("timm:")]
        print(f"timm's optimizers ({len(timm)}), usable as --optimizer timm:<name> with lr, weight_decay, momentum:")
        for i in range(0, len(timm), 6):
            print("  " + "  ".join(timm[i:i + 6]))
    else:
        print("(timm's optimizers are available as timm:<name>; `nightbench list optimizers --all` shows them)")


def list_suites(show_presets: bool) -> None:
    for name in suite_names():
        suite = get_suite(name)
        target = suite.target_metric or "-"
        print(f"{name:<22} {suite.description}")
        print(f"{'':<22} target metric: {target}; presets: {', '.join(suite.presets)} (default {DEFAULT_PRESET})")
        if show_presets:
            for preset in suite.presets:  # with the engine's keys every run reads (threads, log_every, ...)
                shown = ", ".join(f"{k}={_format_value(v)}" for k, v in preset_config(suite, preset).items())
                print(f"{'':<24}{preset}: {shown}")
        print()


def cmd_list(args: argparse.Namespace) -> int:
    for path in args.optimizer_file or []:
        load_optimizer_file(path)
    for path in args.suite_file or []:
        load_suite_file(path)
    if args.what == "optimizers":
        list_optimizers(args.all)
    else:
        list_suites(show_presets=args.what == "presets")
    return ExitCode.OK


def _deepspeed_options(args: argparse.Namespace):
    """DeepSpeedOptions when --deepspeed (or a DeepSpeed-only flag) was given, else None."""
    if not (args.deepspeed or args.zero_stage is not None or args.deepspeed_config):
        return None
    from .distributed import DeepSpeedOptions

    return DeepSpeedOptions(zero_stage=args.zero_stage, config_path=args.deepspeed_config)


def check_results_root(path: str) -> None:
    """--results must be a folder this process can write (created if missing)."""
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--results {path} is a file: expected a folder (it is created if missing)")
    parent = next((p for p in [root, *root.parents] if p.exists()), Path("."))
    if not parent.is_dir():
        raise ConfigError(f"--results {path} lies under the file {parent}: expected a folder path")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--results {path}: {parent} is not writable; choose a folder you can write")


# `run` flags that describe the run itself: a request file already does, so they cannot go with --request.
REQUEST_EXCLUSIVE = ("--suite", "--optimizer", "--preset", "--seed", "--set", "--optimizer-file", "--suite-file",
                     "--results", "--device", "--protocol", "--precision")


def _flags_given(args: argparse.Namespace, flags: tuple[str, ...]) -> list[str]:
    """Those of `flags` whose value differs from the parser's default (i.e. that the user gave)."""
    defaults = {action.dest: action.default for action in args.parser._actions}
    return [flag for flag in flags
            if getattr(args, flag.lstrip("-").replace("-", "_")) != defaults[flag.lstrip("-").replace("-", "_")]]


def _run_request(args: argparse.Namespace):
    """The RunRequest of `nightbench run`: from --request FILE, or from the flags."""
    from .plan import RunRequest, read_request

    if args.request:
        given = _flags_given(args, REQUEST_EXCLUSIVE)
        if given:
            raise ConfigError(f"--request FILE names the whole run; {', '.join(given)} would be ignored: drop "
                              f"{'it' if len(given) == 1 else 'them'} (with --request only --quiet and the "
                              "DeepSpeed flags apply), or run from the flags without --request")
        return read_request(args.request, progress=not args.quiet, deepspeed=_deepspeed_options(args))
    if not args.suite or not args.optimizer:
        raise ConfigError("nightbench run needs --suite and --optimizer (or --request FILE)")
    overrides = parse_set_arguments(args.set)
    if args.precision is not None:
        overrides["precision"] = args.precision
    return RunRequest(
        suite=args.suite, optimizer=args.optimizer, preset=args.preset, seed=args.seed,
        overrides=overrides, results_root=args.results, device=args.device,
        optimizer_files=args.optimizer_file or [], suite_files=args.suite_file or [], progress=not args.quiet,
        protocol=args.protocol, deepspeed=_deepspeed_options(args),
    )


def cmd_run(args: argparse.Namespace) -> int:
    from .engine import execute_run

    request = _run_request(args)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and request.deepspeed is None:
        raise ConfigError(f"this process is one of {os.environ['WORLD_SIZE']} started by a distributed launcher "
                          "(WORLD_SIZE is set), but the run is not distributed: add --deepspeed to train with "
                          "every process, or start one process without the launcher")
    check_results_root(request.results_root)
    outcome = execute_run(request)
    if os.environ.get("RANK", "0") != "0":
        return ExitCode.OK if outcome.status == RunState.COMPLETED else ExitCode.FAILED  # rank 0 reports the run
    summary = outcome.summary
    if outcome.skipped:
        print(f"already finished ({outcome.status}): {outcome.run_dir}")
    else:
        print(f"{outcome.status}: {outcome.run_dir}")
    metrics = summary.get("final_metrics") or {}
    if metrics:
        print("  " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()))
    if summary.get("wall_time") is not None:
        print(f"  wall time {summary['wall_time']:.1f} s" + (
            f", median step {summary['step_time_median']:.3f} s" if summary.get("step_time_median") else ""))
    if outcome.status != RunState.COMPLETED:
        if summary.get("error"):  # a diverged run has none to show
            print(f"  {summary['error']}", file=sys.stderr)
        return ExitCode.FAILED
    return ExitCode.OK


def cmd_report(args: argparse.Namespace) -> int:
    results = layout.results_root(args.results_dir)
    from nightbench.reports import build_report

    path = build_report(results, args.output)
    print(f"report: {Path(path).resolve()}")
    return ExitCode.OK


def check_slurm_flags(args: argparse.Namespace) -> None:
    """SLURM settings without --executor slurm would be dropped, and the board would run on this machine."""
    if args.executor == "slurm":
        return
    from .leaderboard.slurm_options import add_slurm_arguments

    slurm = argparse.ArgumentParser(add_help=False)
    add_slurm_arguments(slurm)
    given = [action.option_strings[0] for action in slurm._actions
             if getattr(args, action.dest) != action.default]
    if given:
        raise ConfigError(f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} only to --executor slurm: "
                          f"add --executor slurm to run on the cluster, or drop {'it' if len(given) == 1 else 'them'} "
                          f"to run on this machine (--executor {args.executor})")


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from nightbench.reports.output import check_output_path

    from .leaderboard import run_leaderboard_from_args

    check_slurm_flags(args)
    check_results_root(args.results)
    if args.no_report and args.report:
        raise ConfigError(f"--report {args.report} and --no-report contradict each other: drop one")
    output = None if args.no_report else args.report or str(Path(args.results) / f"report-{args.preset}.html")
    if output is not None:  # found now, not after the whole board has run
        check_output_path(output)

    def write_report() -> None:
        from nightbench.reports import build_report

        print(f"report: {Path(build_report(Path(args.results), output)).resolve()}", flush=True)

    return run_leaderboard_from_args(args, None if output is None else write_report)


def cmd_status(args: argparse.Namespace) -> int:
    from .status import status_report

    print(status_report(args.results_dir))
    return ExitCode.OK


def cmd_verify(args: argparse.Namespace) -> int:
    """Each finished run whose files disagree or cannot be read, and why; exit 1 when there is one."""
    from .status import find_runs
    from .verify import DAMAGED, verify_runs

    results = layout.results_root(args.results_dir)
    found = verify_runs(find_runs(results))
    for bad in found.problems:
        print(f"{bad.state:<12}  {bad.run_dir.relative_to(results)}: {bad}")
    inconsistent, damaged = found.count(RunState.INCONSISTENT), found.count(DAMAGED)
    line = f"{results}: {found.checked} finished run(s) checked, {inconsistent} inconsistent"
    if damaged:
        line += f"; {damaged} damaged (a file cannot be read, so the run cannot be checked)"
    if found.not_checked:  # runs without a result to check: said, so that the count above is not misread
        line += "; not checked: " + ", ".join(f"{n} {why}" for why, n in sorted(found.not_checked.items()))
    print(line)
    if inconsistent:  # what the other readers do with them (status.py, reports/load.py)
        print("inconsistent runs are left out of every table, figure and claim of the report, and "
              "`nightbench status` counts them as inconsistent, not as completed or diverged")
    if damaged:
        print("damaged runs have no result: the report and `nightbench status` count them as damaged")
    return ExitCode.FAILED if found.problems else ExitCode.OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nightbench", description="A benchmark suite for deep-learning optimizers.")
    # The deepspeed launcher passes --local_rank=N first; the rank is read from LOCAL_RANK instead.
    parser.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="list optimizers, suites or presets", parents=[plugin_options()])
    p.add_argument("what", nargs="?", default="optimizers", choices=["optimizers", "suites", "presets"])
    p.add_argument("--all", action="store_true", help="also list timm's optimizers (timm:<name>)")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("run", help="run one (suite, preset, optimizer, seed)", parents=run_options(
        "override an optimizer hyperparameter, policy.<field> or a suite preset key (repeatable)"))
    p.add_argument("--suite", help=f"one of: {', '.join(suite_names())} (or one from --suite-file)")
    p.add_argument("--optimizer", help="a registered optimizer (`nightbench list optimizers`)")
    p.add_argument("--request", metavar="FILE", help="run the request file a leaderboard wrote (instead of the flags)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="auto (default: cuda when available), cpu, cuda, cuda:N")
    p.add_argument("--quiet", action="store_true", help="no progress display")
    p.add_argument("--protocol", default=PROTOCOLS[0], choices=PROTOCOLS,
                   help="which leaderboard protocol this run belongs to (recorded in its config)")
    p.add_argument("--precision", choices=["fp32", "bf16"], default=None,
                   help="fp32, or bf16 compute on fp32 weights (autocast); the same as --set precision=...")
    g = p.add_argument_group("DeepSpeed (start with `deepspeed` or `torchrun` for several processes)")
    g.add_argument("--deepspeed", action="store_true",
                   help="run under DeepSpeed; the global batch stays the suite's at any world size")
    g.add_argument("--zero-stage", type=int, choices=[0, 1, 2, 3], default=None,
                   help="ZeRO stage (default: the --deepspeed-config's, else 0); implies --deepspeed")
    g.add_argument("--deepspeed-config", metavar="JSON", default=None,
                   help="a DeepSpeed config to start from (no optimizer/scheduler/batch sections); implies --deepspeed")
    p.set_defaults(func=cmd_run, parser=p)

    p = sub.add_parser("report", help="write the HTML comparison report for a results directory")
    p.add_argument("results_dir")
    p.add_argument("-o", "--output", default="report.html", help="the report's path (default ./report.html)")
    p.set_defaults(func=cmd_report)

    from .leaderboard import add_leaderboard_arguments

    p = sub.add_parser("leaderboard", help="run every suite x optimizer x seed (resumable), then write the report",
                       parents=run_options("for every run: an optimizer hyperparameter, policy.<field> or a "
                                           "suite preset key (repeatable; a hyperparameter one of the "
                                           "optimizers lacks is refused: run that one on its own)"))
    add_leaderboard_arguments(p)
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("status", help="where the runs of a results folder stand: counts per suite and stage, SLURM jobs")
    p.add_argument("results_dir")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("verify", help="check every finished run against its own log and directory name; "
                                      "exit 1 if one disagrees")
    p.add_argument("results_dir")
    p.set_defaults(func=cmd_verify)
    return parser


def report_bug(exc: BaseException) -> None:
    """One line saying nightbench hit a bug, and where the whole traceback was written."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    fd, path = tempfile.mkstemp(prefix=f"nightbench-traceback-{stamp}-", suffix=".txt")
    with os.fdopen(fd, "w") as handle:
        handle.write("".join(traceback.format_exception(exc)))
    print(f"nightbench: internal error (a bug, not your input): {type(exc).__name__}: {exc}; "
          f"traceback written to {path}", file=sys.stderr)


# Failures of the machine, not of nightbench or of the input: one line names the cause and the path.
ENVIRONMENT_ERRNOS = {errno.ENOSPC: "free some space", errno.EDQUOT: "free some space or raise the quota",
                      errno.EROFS: "choose a writable --results folder", errno.EACCES: "check the folder's permissions",
                      errno.EPERM: "check the folder's permissions", errno.EIO: "check the disk"}


def environment_failure(exc: BaseException) -> str | None:
    """The one line for a failure of the machine (a full disk, a read-only folder, the scheduler not
    answering), found anywhere in the exception's chain; None for anything else."""
    from .leaderboard.slurm_queue import SqueueError

    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, SqueueError):
            return (f"the SLURM scheduler does not answer ({exc}); submitted jobs keep running: run the same "
                    "command again to re-attach (`nightbench status RESULTS` shows them)")
        if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
            where = f": {exc.filename}" if exc.filename else ""
            return (f"{exc.strerror or os.strerror(exc.errno)}{where} ({ENVIRONMENT_ERRNOS[exc.errno]}, then run the "
                    "same command again; finished runs are kept)")
        exc = exc.__cause__ or exc.__context__
    return None


def main(argv: list[str] | None = None) -> int:
    warnings.filterwarnings("ignore", message=".*Setting accelerator to CPU.*")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as exc:
        print(f"nightbench: error: {exc}", file=sys.stderr)
        return ExitCode.BAD_INPUT
    except RunLockedError as exc:
        print(f"nightbench: {exc}", file=sys.stderr)
        return ExitCode.RUNNING_ELSEWHERE
    except KeyboardInterrupt:
        print("nightbench: interrupted; run the same command again to resume", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - anything else is a bug in nightbench
        cause = environment_failure(exc)
        if cause:
            print(f"nightbench: {cause}", file=sys.stderr)
            return ExitCode.FAILED
        report_bug(exc)
        return ExitCode.FAILED


if __name__ == "__main__":
    sys.exit(main())
