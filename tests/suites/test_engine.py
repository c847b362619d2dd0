"""The run engine on the toy suite: run directories, determinism, skip, divergence, failure, bad input."""

from __future__ import annotations

import importlib.metadata
import json

import pytest
import torch

from nightbench.optimizers import register_optimizer
from nightbench.optimizers import registry as optimizer_registry
from nightbench.suites.config import ConfigError
from nightbench.suites.engine import RunRequest, SuiteInputError, execute_run, plan_run
from nightbench.suites.run_dir import read_metrics
from tests.plugin_files import sign_sgd_plugin


def run(tmp_path, optimizer="sgd", **kwargs):
    overrides = kwargs.pop("overrides", {})
    return execute_run(RunRequest(suite="toy", optimizer=optimizer, preset="ci", results_root=str(tmp_path),
                                  overrides=overrides, progress=False, **kwargs))


def test_completed_run_writes_its_directory(toy_suite, tmp_path):
    outcome = run(tmp_path)
    assert outcome.status == "completed"
    files = {p.name for p in outcome.run_dir.iterdir()}
    assert {"config.json", "metrics.jsonl", "summary.json", "checkpoint.pt"} <= files
    config = json.loads((outcome.run_dir / "config.json").read_text())
    assert config["hyperparameters"]["lr"] == 0.05  # the suite's default for sgd
    assert config["policy"]["exclude"] == "ndim<=1"
    assert config["environment"]["torch"] == importlib.metadata.version("torch")
    assert config["protocol"] == "default" and config["seed"] == 0
    records = read_metrics(outcome.run_dir)
    assert [r["step"] for r in records if r["kind"] == "eval"] == [10, 20, 30]
    assert [r["step"] for r in records if r["kind"] == "train"] == [10, 20, 30]
    summary = outcome.summary
    assert summary["steps"] == 30 and summary["final_metrics"]["mse"] < 0.5
    # the target (neg_mse >= -0.5) is reached at one of the evaluations
    assert summary["steps_to_target"] in (10, 20, 30)


def test_same_run_twice_gives_identical_metrics(toy_suite, tmp_path):
    a = run(tmp_path / "a")
    b = run(tmp_path / "b")
    strip = lambda rs: [{k: v for k, v in r.items() if k not in ("time", "step_time", "data_wait")} for r in rs]
    assert strip(read_metrics(a.run_dir)) == strip(read_metrics(b.run_dir))
    assert a.summary["final_metrics"] == b.summary["final_metrics"]


def test_finished_run_is_skipped_and_untouched(toy_suite, tmp_path):
    first = run(tmp_path)
    before = (first.run_dir / "summary.json").read_bytes()
    second = run(tmp_path)
    assert second.skipped and second.status == "completed"
    assert (first.run_dir / "summary.json").read_bytes() == before


def test_different_hyperparameters_get_different_run_dirs(toy_suite, tmp_path):
    a = run(tmp_path, overrides={"lr": "0.01"})
    b = run(tmp_path, overrides={"lr": "0.02"})
    assert a.run_dir != b.run_dir and a.run_dir.parent == b.run_dir.parent


def test_nan_loss_ends_run_as_diverged(toy_suite, tmp_path):
    outcome = run(tmp_path, overrides={"lr": "1e6"})
    assert outcome.status == "diverged"
    assert isinstance(outcome.summary["diverged_step"], int) and outcome.summary["diverged_step"] <= 30


def test_exception_is_recorded_as_failed_and_retried(toy_suite, tmp_path):
    outcome = run(tmp_path, overrides={"fail_at_step": "5"})
    assert outcome.status == "failed"
    assert "toy failure requested" in outcome.summary["error"]
    again = run(tmp_path, overrides={"fail_at_step": "5"})
    assert not again.skipped  # a failed run is not finished: it is tried again


@pytest.mark.parametrize("overrides, message", [
    ({"nope": "1"}, "unknown key 'nope'"),
    ({"lr": "-1"}, "'lr'"),
    ({"steps": "ten"}, "suite key 'steps'"),
    ({"policy.exclude": "everything"}, "exclude"),
])
def test_bad_overrides_fail_before_anything_is_written(toy_suite, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        run(tmp_path, overrides=overrides)
    assert not any(tmp_path.iterdir())


def test_suite_input_error_leaves_no_run_directory(toy_suite, tmp_path):
    with pytest.raises(SuiteInputError, match="dim must be >= 1"):
        run(tmp_path, overrides={"dim": "0"})
    assert not list(tmp_path.glob("toy/ci/sgd/*"))


@pytest.mark.parametrize("error", [ValueError("a bug"), FileNotFoundError("a bug"), KeyError("a bug")])
def test_anything_but_an_input_error_from_build_is_a_bug_recorded_as_failed(toy_suite, tmp_path, monkeypatch, error):
    """Only InputError (SuiteConfigError, SuiteDataError, ...) is bad input; a plain ValueError is a bug."""
    def broken_build(ctx):
        raise error

    monkeypatch.setattr(toy_suite, "build", broken_build)
    outcome = run(tmp_path)
    assert outcome.status == "failed" and "a bug" in outcome.summary["error"]
    assert outcome.run_dir.is_dir() and "Traceback" in outcome.summary["traceback"]


def test_gradient_accumulation_equals_one_large_batch(toy_suite, tmp_path):
    whole = run(tmp_path / "whole", overrides={"micro_batch_size": "16"})
    accumulated = run(tmp_path / "acc", overrides={"micro_batch_size": "4"})  # 4 micro-batches of 4
    w = torch.load(whole.run_dir / "checkpoint.pt", weights_only=False)["model"]
    a = torch.load(accumulated.run_dir / "checkpoint.pt", weights_only=False)["model"]
    for key in w:
        torch.testing.assert_close(a[key], w[key], rtol=1e-5, atol=1e-6)
    assert whole.run_dir != accumulated.run_dir


class _Recorder:
    halves: list[int] = []
    swaps: list[str] = []


@pytest.fixture
def fake_capability_optimizers():
    """Register a two-gradient optimizer and a swap-needing one for one test, then remove them."""

    @register_optimizer("test_two_gradients", gradients_per_step=2, state_slots=0)
    class TwoGradients(torch.optim.SGD):
        def __init__(self, params, lr=0.01):
            super().__init__(params, lr=lr)

        def step(self, closure=None):
            assert closure is not None, "two-gradient optimizers receive a closure"
            first = closure()
            g1 = [p.grad.clone() for g in self.param_groups for p in g["params"]]
            closure()
            g2 = [p.grad.clone() for g in self.param_groups for p in g["params"]]
            _Recorder.halves.append(int(any(not torch.equal(a, b) for a, b in zip(g1, g2))))
            return first

    @register_optimizer("test_swap", needs_eval_swap=True, state_slots=0)
    class Swap(torch.optim.SGD):
        def __init__(self, params, lr=0.01):
            super().__init__(params, lr=lr)

        def eval(self):
            _Recorder.swaps.append("eval")

        def train(self):
            _Recorder.swaps.append("train")

    yield
    for name in ("test_two_gradients", "test_swap"):
        optimizer_registry.REGISTRY.entries.pop(name, None)
    _Recorder.halves.clear()
    _Recorder.swaps.clear()


def test_two_gradient_optimizer_gets_two_different_halves(toy_suite, tmp_path, fake_capability_optimizers):
    outcome = run(tmp_path, optimizer="test_two_gradients")
    assert outcome.status == "completed", outcome.summary.get("error")
    assert len(_Recorder.halves) == 30 and all(_Recorder.halves)


def test_swap_optimizer_is_evaluated_between_eval_and_train(toy_suite, tmp_path, fake_capability_optimizers):
    outcome = run(tmp_path, optimizer="test_swap")
    assert outcome.status == "completed", outcome.summary.get("error")
    assert _Recorder.swaps == ["eval", "train"] * 3  # three evaluations, each swapped and restored


def test_an_unfinished_deepspeed_run_is_not_resumed_without_deepspeed(toy_suite, tmp_path):
    request = RunRequest(suite="toy", optimizer="sgd", preset="ci", results_root=str(tmp_path), progress=False)
    run_dir = plan_run(request).run_dir
    (run_dir / "deepspeed").mkdir(parents=True)
    with pytest.raises(ConfigError, match="resume it with --deepspeed"):
        execute_run(request)


def test_an_edited_optimizer_file_runs_anew_instead_of_reusing_the_old_result(toy_suite, tmp_path, fresh_registry,
                                                                               monkeypatch):
    from nightbench.suites.verify import verify_run_dir

    plugin, results = tmp_path / "my_opt.py", tmp_path / "results"
    untouched = optimizer_registry.REGISTRY.copy()

    def run_plugin(scale: int):  # as a new command would: a registry without the file, which it then loads
        source = sign_sgd_plugin("nbtest_edited_sgd", 0.05)  # the edit changes its step, not its hyperparameters
        plugin.write_text(source.replace('alpha=-group["lr"]', f'alpha=-group["lr"] * {scale}'))
        monkeypatch.setattr(optimizer_registry, "REGISTRY", untouched.copy())
        return run(results, optimizer="nbtest_edited_sgd", optimizer_files=(str(plugin),))

    first, edited, again = run_plugin(1), run_plugin(2), run_plugin(2)
    assert not first.skipped and not edited.skipped and again.skipped  # the unchanged file's run is reused
    assert edited.run_dir != first.run_dir and again.run_dir == edited.run_dir
    assert edited.summary["final_metrics"] != first.summary["final_metrics"]  # the edit took effect
    configs = [json.loads((o.run_dir / "config.json").read_text()) for o in (first, edited)]
    digests = [c["optimizer_source"] for c in configs]
    assert digests[0] != digests[1] and all(d.startswith("sha256:") for d in digests)
    assert [c["optimizer_spec"]["implementation"]["version"] for c in configs] == digests
    assert [verify_run_dir(o.run_dir) for o in (first, edited)] == [[], []]  # names re-derived with the digest
    builtin = run(tmp_path / "builtin")
    assert "optimizer_source" not in json.loads((builtin.run_dir / "config.json").read_text())
