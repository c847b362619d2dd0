"""Damaged, concurrent and unusable input loses or falsifies nothing (issue: reliability and security).

One test per class of failure; a class with several cases holds them in a table. (Checkpoints that
are damaged or carry a malicious pickle are tested in test_checkpoint_safety.py.)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nightbench.optimizers import registry as optimizer_registry
from nightbench.suites.cli import main
from nightbench.suites.engine import RunRequest, execute_run
from nightbench.suites.run_dir import read_metrics
from nightbench.suites.summary import read_summary

from tests.plugin_files import always_nan_plugin

REPO = Path(__file__).resolve().parents[2]
TOY = ["--suite", "toy", "--optimizer", "sgd", "--preset", "ci"]


def _summaries(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in root.glob("toy/ci/*/*/summary.json")]


def _board_command(results: Path, *extra: str) -> list[str]:
    """A board of the toy suite, which every child process loads from its file."""
    return [sys.executable, "-m", "nightbench.suites.cli", "leaderboard", "--suites", "toy", "--preset", "ci",
            "--suite-file", str(REPO / "tests" / "suites" / "toy_suite.py"),
            "--optimizers", "sgd", "adam", "nsgd", "--seeds", "2", "--jobs", "2", "--no-report",
            "--results", str(results), *extra]


def _slow_env(sleep: str) -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO), "NIGHTBENCH_TOY_SLEEP": sleep}


# --- class 2: the thread count is part of what a run is ----------------------------------------------------
def test_runs_at_different_thread_counts_are_different_runs(toy_suite, tmp_path):
    one = execute_run(RunRequest(suite="toy", optimizer="sgd", preset="ci", results_root=str(tmp_path),
                                 overrides={"threads": 1}, progress=False))
    two = execute_run(RunRequest(suite="toy", optimizer="sgd", preset="ci", results_root=str(tmp_path),
                                 overrides={"threads": 2}, progress=False))
    assert one.run_dir != two.run_dir and not two.skipped  # never taken for the other's result
    recorded = [json.loads((o.run_dir / "config.json").read_text())["suite_config"]["threads"] for o in (one, two)]
    assert recorded == [1, 2]
    default = execute_run(RunRequest(suite="toy", optimizer="sgd", preset="ci", results_root=str(tmp_path),
                                     progress=False))
    assert default.skipped and default.run_dir == one.run_dir  # one default, for run and leaderboard alike


# --- class 3: two boards on one results root; Ctrl-C ------------------------------------------------------
@pytest.mark.slow
def test_two_boards_on_one_results_root_record_no_false_failure_and_keep_every_log(tmp_path):
    results = tmp_path / "results"
    env = _slow_env("0.05")
    boards = [subprocess.Popen(_board_command(results), cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [board.communicate(timeout=600)[0] for board in boards]
    assert [board.returncode for board in boards] == [0, 0], outputs
    summaries = _summaries(results)
    assert len(summaries) == 6 and all(s["status"] == "completed" for s in summaries), summaries
    children = sum(line.startswith("[board] ") and "/6 " in line for out in outputs for line in out.splitlines())
    logs = list((results / "_logs").rglob("*.log"))
    assert len(logs) == children  # one log per child process: none overwritten
    assert all("Traceback" not in log.read_text() for log in logs)


@pytest.mark.slow
def test_ctrl_c_leaves_in_flight_runs_resumable_not_failed(tmp_path):
    results = tmp_path / "results"
    # A shell that starts a job in the background makes it ignore SIGINT, and children inherit that (CI may run
    # so); a terminal's foreground job does not: give the board the terminal's default disposition.
    board = subprocess.Popen(_board_command(results), cwd=REPO, env=_slow_env("0.2"), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until two runs are training and one has a checkpoint to resume
        started = [d for d in results.glob("toy/ci/*/*") if d.is_dir() and read_metrics(d)]
        if len(started) >= 2 and any((d / "checkpoint.pt").exists() and read_summary(d) is None for d in started):
            break
        time.sleep(0.1)
    os.killpg(board.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole foreground group
    output = board.communicate(timeout=120)[0]
    assert board.returncode == 130, output
    assert not any(s["status"] == "failed" for s in _summaries(results)), output
    unfinished = [d for d in results.glob("toy/ci/*/*") if d.is_dir() and read_summary(d) is None]
    assert unfinished, "the interrupt came after every run had finished"
    # which of them had reached a checkpoint when interrupted: those must resume from it. (Asked after the
    # rerun, every run has one, since the last step checkpoints too: a run interrupted before its first
    # checkpoint rightly starts again from step 0, with no resume record.)
    checkpointed = [d for d in unfinished if (d / "checkpoint.pt").exists()]
    assert checkpointed, "no interrupted run had reached a checkpoint: the resume path was not exercised"
    rerun = subprocess.run(_board_command(results), cwd=REPO, env=_slow_env("0"), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert all(read_summary(d).status == "completed" for d in unfinished)
    assert all(any(r["kind"] == "resume" for r in read_metrics(d)) for d in checkpointed)


# --- class 5: a distributed launcher without --deepspeed ------------------------------------------------------
def test_a_launcher_without_deepspeed_is_refused_naming_the_flag(toy_suite, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert main(["run", *TOY, "--results", str(tmp_path)]) == 2
    assert "--deepspeed" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


# --- class 6 and 7: tracebacks where a message belongs; values that cannot be used ------------------------------
def _bad_inputs(tmp_path: Path) -> list[tuple[list[str], str]]:
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    return [
        (["run", *TOY, "--results", str(a_file)], "is a file"),
        (["run", *TOY, "--results", str(a_file / "below")], "lies under the file"),
        (["leaderboard", "--suites", "toy", "--preset", "ci", "--results", str(a_file)], "is a file"),
        (["run", *TOY, "--set", "steps=inf"], "expected a finite int"),
        (["run", *TOY, "--set", "micro_batch_size=64"], "larger than global_batch_size"),
        (["run", *TOY, "--seed", str(2**63)], "expected an integer from 0 to 2**63 - 1"),
        (["run", *TOY, "--set", "threads=0"], "invalid threads 0"),
        (["run", *TOY, "--device", "tpu"], "invalid --device 'tpu'"),
        (["run", *TOY, "--device", "garbage"], "expected auto, cpu, cuda or cuda:N"),
    ] + ([] if os.geteuid() == 0 else [(["run", *TOY, "--results", str(locked / "r")], "is not writable")])


def test_bad_values_exit_2_with_one_line_before_anything_is_written(toy_suite, tmp_path, capsys):
    results = tmp_path / "results"
    for argv, message in _bad_inputs(tmp_path):
        argv = argv if "--results" in argv else [*argv, "--results", str(results)]
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, (argv, err)
    assert not results.exists()


def test_a_bad_device_is_refused_also_when_the_run_has_finished(toy_suite, tmp_path, capsys):
    assert main(["run", *TOY, "--results", str(tmp_path), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["run", *TOY, "--results", str(tmp_path), "--device", "tpu"]) == 2
    assert "invalid --device" in capsys.readouterr().err


def test_a_long_optimizer_name_gets_a_short_directory(toy_suite, tmp_path):
    name = "long_" + "x" * 295
    plugin = tmp_path / "long_name.py"
    plugin.write_text(f'import torch\nfrom nightbench.optimizers import register_optimizer\n\n'
                      f'@register_optimizer("{name}")\nclass LongSGD(torch.optim.SGD):\n'
                      f'    def __init__(self, params, lr=0.05):\n        super().__init__(params, lr=lr)\n')
    try:
        for command in (["run", "--suite", "toy", "--optimizer", name, "--preset", "ci", "--quiet"],
                        ["leaderboard", "--suites", "toy", "--optimizers", name, "--preset", "ci", "--seeds", "1",
                         "--no-report"]):
            assert main([*command, "--optimizer-file", str(plugin), "--results", str(tmp_path / "r")]) == 0, command
    finally:
        optimizer_registry.REGISTRY.entries.pop(name, None)
    (run_dir,) = (tmp_path / "r" / "toy" / "ci").glob("*/*/")
    assert len(run_dir.parent.name) <= 80
    assert json.loads((run_dir / "config.json").read_text())["optimizer"] == name  # the real name is kept


def test_a_bug_exits_1_with_one_line_and_a_traceback_file(toy_suite, tmp_path, capsys, monkeypatch):
    from nightbench.suites import engine

    def broken(plan):
        raise ZeroDivisionError("a deliberate bug")

    monkeypatch.setattr(engine, "run_lifecycle", lambda plan, host: broken(plan))
    assert main(["run", *TOY, "--results", str(tmp_path)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "a bug" in err and "ZeroDivisionError" in err
    trace = Path(err.rsplit("traceback written to ", 1)[1])
    assert "a deliberate bug" in trace.read_text()
    trace.unlink()


# --- class 8: an experiment whose every unit diverged; the first record after a resume ----------------------------


def test_an_experiment_whose_every_unit_diverged_is_recorded_as_diverged(tmp_path):
    plugin = tmp_path / "nan_opt.py"
    plugin.write_text(always_nan_plugin("always_nan"))
    try:
        outcome = execute_run(RunRequest(suite="small_batch_variance", optimizer="always_nan", preset="ci",
                                         results_root=str(tmp_path), optimizer_files=[str(plugin)], progress=False))
    finally:
        optimizer_registry.REGISTRY.entries.pop("always_nan", None)
    metrics = outcome.summary["final_metrics"]
    assert metrics["units"] > 0 and metrics["diverged_units"] == metrics["units"]
    assert outcome.status == "diverged"


def test_after_a_resume_the_first_train_record_averages_the_whole_interval(toy_suite, tmp_path, monkeypatch):
    from nightbench.suites.trainer import Trainer

    overrides = {"steps": 20, "eval_every": 4, "log_every": 10}  # a checkpoint at step 4, inside an interval

    def run(root):
        return execute_run(RunRequest(suite="toy", optimizer="sgd", preset="ci", results_root=str(root),
                                      overrides=overrides, progress=False))

    reference = run(tmp_path / "reference")
    real_save = Trainer.save_checkpoint

    def save_then_interrupt(self):
        real_save(self)
        if self.state.step == 8:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "save_checkpoint", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "resumed")
    monkeypatch.setattr(Trainer, "save_checkpoint", real_save)
    resumed = run(tmp_path / "resumed")

    def train_losses(run_dir):
        return [(r["step"], r["loss"]) for r in read_metrics(run_dir) if r["kind"] == "train"]

    assert any(r["kind"] == "resume" for r in read_metrics(resumed.run_dir))
    assert train_losses(resumed.run_dir) == train_losses(reference.run_dir)
    assert resumed.summary["final_metrics"] == reference.summary["final_metrics"]
