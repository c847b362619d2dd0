"""The `leaderboard` command (suites/leaderboard/__init__.py) end to end on the toy suite: planning,
skipping finished runs, failures, the tuning protocol, and a board that did not finish its runs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from nightbench.optimizers import registry as optimizer_registry
from nightbench.suites import leaderboard
from nightbench.suites.cli import main
from nightbench.suites.leaderboard.executor import Executor
from nightbench.suites.leaderboard.slurm_queue import SqueueError


@pytest.fixture
def toy_board(toy_suite, monkeypatch):
    """Runs of the leaderboard execute the toy-aware CLI in their own processes."""
    monkeypatch.setattr(leaderboard, "RUN_MODULE", "tests.suites.toy_cli")


def summaries(root):
    out = {}
    for path in root.glob("toy/ci/*/*/summary.json"):
        config = json.loads((path.parent / "config.json").read_text())
        out[path.parent] = (config, json.loads(path.read_text()))
    return out


def board(tmp_path, *extra):
    return main(["leaderboard", "--suites", "toy", "--preset", "ci", "--results", str(tmp_path), "--no-report",
                 "--jobs", "2", *extra])


@pytest.mark.slow
def test_board_runs_every_optimizer_and_seed_then_skips_them(toy_board, tmp_path, capsys):
    assert board(tmp_path, "--optimizers", "sgd", "adam", "--seeds", "2") == 0
    runs = summaries(tmp_path)
    assert sorted((c["optimizer"], c["seed"]) for c, _ in runs.values()) == [("adam", 0), ("adam", 1), ("sgd", 0), ("sgd", 1)]
    assert all(s["status"] == "completed" and c["protocol"] == "default" for c, s in runs.values())
    capsys.readouterr()
    assert board(tmp_path, "--optimizers", "sgd", "adam", "--seeds", "2") == 0
    assert "0 to run, 4 already finished" in capsys.readouterr().out


@pytest.mark.slow
def test_failed_runs_are_recorded_and_the_board_goes_on(toy_board, tmp_path, capsys):
    assert board(tmp_path, "--optimizers", "sgd", "adam", "--seeds", "1", "--set", "fail_at_step=2") == 1
    runs = summaries(tmp_path)
    assert len(runs) == 2 and all(s["status"] == "failed" for _, s in runs.values())
    out = capsys.readouterr().out  # each failed run's line is followed by why, and where its output is
    why = [line for line in out.splitlines() if line.startswith("    RuntimeError: toy failure requested; log: ")]
    assert len(why) == 2, out
    assert all(Path(line.split("; log: ")[1]).is_file() for line in why)


@pytest.mark.slow
def test_tuning_picks_the_best_lr_and_reruns_it_with_seeds(toy_board, tmp_path, monkeypatch):
    spec = optimizer_registry.get_spec("sgd")
    monkeypatch.setitem(optimizer_registry.REGISTRY.entries, "sgd", type(spec)(**{**spec.__dict__, "lr_grid": (1e-3, 0.05, 10.0)}))
    assert board(tmp_path, "--optimizers", "sgd", "--tune", "--tune-grid", "full", "--seeds", "2") == 0
    runs = summaries(tmp_path)
    tuning = {c["hyperparameters"]["lr"]: s for c, s in runs.values() if c["protocol"] == "tuning"}
    finals = [(c, s) for c, s in runs.values() if c["protocol"] == "final"]
    assert sorted(tuning) == [1e-3, 0.05, 10.0]
    assert tuning[10.0]["status"] == "diverged"
    scores = {lr: s["final_metrics"]["neg_mse"] for lr, s in tuning.items() if s["status"] == "completed"}
    best = max(scores, key=scores.get)
    assert sorted(c["seed"] for c, _ in finals) == [0, 1]
    assert all(c["hyperparameters"]["lr"] == best and c["seed"] != leaderboard.TUNING_SEED for c, _ in finals)


@pytest.mark.slow
def test_local_tuning_grid_keeps_the_points_near_the_default_lr(toy_board, tmp_path, monkeypatch):
    spec = optimizer_registry.get_spec("sgd")
    grid = (1e-4, 1e-3, 1e-2, 0.1, 1.0)
    monkeypatch.setitem(optimizer_registry.REGISTRY.entries, "sgd", type(spec)(**{**spec.__dict__, "lr_grid": grid}))
    assert board(tmp_path, "--optimizers", "sgd", "--tune", "--tune-grid", "local", "--seeds", "1") == 0
    tried = sorted(c["hyperparameters"]["lr"] for c, _ in summaries(tmp_path).values() if c["protocol"] == "tuning")
    assert tried == [1e-2, 0.05, 0.1]  # the toy suite's default sgd lr is 0.05


def test_tune_grid_without_tune_is_refused(toy_board, tmp_path, capsys):
    assert board(tmp_path, "--optimizers", "sgd", "--tune-grid", "full") == 2
    assert "--tune-grid full applies only with --tune" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_optimizer_file_puts_a_plugin_on_the_board(toy_board, tmp_path):
    plugin = tmp_path / "plugin.py"
    plugin.write_text(textwrap.dedent('''
        import torch
        from nightbench.optimizers import register_optimizer

        @register_optimizer("board_test_plain_sgd")
        class PlainSGD(torch.optim.SGD):
            def __init__(self, params, lr=0.05):
                super().__init__(params, lr=lr)
    '''))
    try:
        assert board(tmp_path / "results", "--optimizers", "board_test_plain_sgd", "--seeds", "1",
                     "--optimizer-file", str(plugin)) == 0
    finally:
        optimizer_registry.REGISTRY.entries.pop("board_test_plain_sgd", None)
    (config, summary), = summaries(tmp_path / "results").values()
    assert config["optimizer"] == "board_test_plain_sgd" and summary["status"] == "completed"
    assert config["optimizer_spec"]["source"].startswith("file ")


@pytest.mark.slow
def test_a_failed_tuning_run_ranks_last_and_the_final_stage_still_runs(toy_board, tmp_path):
    plugin = tmp_path / "flaky.py"
    plugin.write_text(textwrap.dedent('''
        import torch
        from nightbench.optimizers import register_optimizer

        @register_optimizer("board_test_flaky_sgd", lr_grid=(0.01, 0.05, 0.5))
        class FlakySGD(torch.optim.SGD):
            """SGD that raises (a failed run, not a diverged one) at its largest lr."""

            def __init__(self, params, lr=0.05):
                super().__init__(params, lr=lr)

            def step(self, closure=None):
                if self.param_groups[0]["lr"] > 0.1:
                    raise RuntimeError("flaky at a large lr")
                return super().step(closure)
    '''))
    try:
        assert board(tmp_path / "results", "--optimizers", "board_test_flaky_sgd", "--tune", "--tune-grid", "full",
                     "--seeds", "1", "--optimizer-file", str(plugin)) == 1  # a run failed: exit 1, board done
    finally:
        optimizer_registry.REGISTRY.entries.pop("board_test_flaky_sgd", None)
    runs = summaries(tmp_path / "results")
    tuning = {c["hyperparameters"]["lr"]: s["status"] for c, s in runs.values() if c["protocol"] == "tuning"}
    assert tuning[0.5] == "failed"
    finals = [s for c, s in runs.values() if c["protocol"] == "final"]
    assert len(finals) == 1 and finals[0]["status"] == "completed"


# --- classes 3 and 5: a board whose scheduler stops answering, or whose runs end without a result -------------------
class _StubExecutor(Executor):
    """Stands in for the SLURM executor: the runs' jobs vanish (or squeue fails) without running anything."""

    name = "stub"

    def __init__(self, squeue_fails: bool):
        self.squeue_fails, self.plans = squeue_fails, []

    def submit(self, plans, stage):
        self.plans += plans

    def status(self, plan):
        return "pending"

    def wait(self, on_end):
        if self.squeue_fails:
            raise SqueueError("squeue failed 3 times: slurm_load_jobs error: Unable to contact slurm controller")
        for plan in self.plans:
            on_end(plan, "interrupted")  # gone from the queue, no summary: what SLURM's executor reports
        self.plans = []


BOARD_ENDINGS = {
    "a job vanishes without a result": (False, 130, "interrupted: 1"),
    "squeue fails during the board": (True, 1, "nightbench: the SLURM scheduler does not answer (squeue failed"),
}


@pytest.mark.parametrize("squeue_fails, code, line", BOARD_ENDINGS.values(), ids=BOARD_ENDINGS.keys())
def test_a_board_that_did_not_finish_its_runs_does_not_exit_0(clean_catalog, toy_suite, tmp_path, capsys,
                                                              monkeypatch, squeue_fails, code, line):
    import nightbench.suites.leaderboard as board

    monkeypatch.setattr(board, "executor_from_args", lambda args: _StubExecutor(squeue_fails))
    assert main(["leaderboard", "--suites", "toy", "--optimizers", "sgd", "--preset", "ci", "--seeds", "1",
                 "--results", str(tmp_path), "--no-report"]) == code
    out, err = capsys.readouterr()
    assert line in out + err and "internal error" not in err, out + err
