"""A run directory's checkpoints never run code, and a damaged checkpoint never blocks its run.

The suite here trains on noise drawn from torch's, numpy's and Python's random streams, so a resume
is exact only if all three are restored. A run is interrupted at step 25 (checkpoints at steps 10
and 20), its checkpoint files are damaged in one way per case, and the run is executed again: it
must set the damaged files aside (renamed, same bytes), say so in one line per file, resume from
the newest good checkpoint (or start again), and end exactly as an uninterrupted run, without the
malicious pickle's code ever running.
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from nightbench.suites import catalog
from nightbench.suites.checkpoint_store import load_weights_only
from nightbench.suites.engine import RunRequest, execute_run
from nightbench.suites.run_dir import read_metrics
from nightbench.suites.summary import read_summary
from tests.suites.toy_suite import ToySuite

REPO = Path(__file__).resolve().parents[2]
# set by a test: training stops before this step, as if by Ctrl-C (or by another error: a failed run)
STOP_AT_STEP = {"step": None, "error": KeyboardInterrupt}


class NoisyToySuite(ToySuite):
    """The toy regression with a loss scaled by noise from all three global random streams."""

    name = "noisy_toy"

    def build(self, ctx):
        task = super().build(ctx)
        plain_loss, plain_batches = task.loss, task.train_batches

        def loss(model, batch):
            loss_sum, metrics = plain_loss(model, batch)
            noise = float(torch.randn(())) + np.random.normal() + random.gauss(0.0, 1.0)
            return loss_sum * (1.0 + 0.05 * noise), metrics

        def train_batches(start_step):
            for step, batch in enumerate(plain_batches(start_step), start_step):
                if step == STOP_AT_STEP["step"]:
                    raise STOP_AT_STEP["error"]
                yield batch

        return dataclasses.replace(task, loss=loss, train_batches=train_batches)


SUITE = NoisyToySuite()


class RunsCode:
    """Unpickling this calls exec(code): what a hostile checkpoint would carry."""

    def __init__(self, code: str):
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


def _execute(results: Path):
    return execute_run(RunRequest(suite="noisy_toy", optimizer="nigt", preset="ci", results_root=str(results),
                                  progress=False))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(uninterrupted run dir, interrupted run's results root, run dir relative to that root)."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(catalog.CATALOG.entries, "noisy_toy", __name__)
        reference = _execute(root / "reference")
        patch.setitem(STOP_AT_STEP, "step", 25)
        with pytest.raises(KeyboardInterrupt):
            _execute(root / "interrupted")
    (run_dir,) = (root / "interrupted" / "noisy_toy" / "ci" / "nigt").iterdir()
    return reference.run_dir, root / "interrupted", run_dir.relative_to(root / "interrupted")


def _comparable(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("time", "step_time", "data_wait")}
            for r in read_metrics(run_dir) if r["kind"] in ("train", "eval")]


def _truncated(path: Path, marker: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _emptied(path: Path, marker: Path) -> None:
    path.write_bytes(b"")


def _random_bytes(path: Path, marker: Path) -> None:
    path.write_bytes(np.random.default_rng(7).bytes(path.stat().st_size))


def _malicious_pickle(path: Path, marker: Path) -> None:
    """The real checkpoint plus one entry whose unpickling writes `marker`: loads fine where code may run."""
    payload = torch.load(path, weights_only=False)  # our own file, written by the engine
    payload["note"] = RunsCode(f"open({str(marker)!r}, 'w').write('the payload ran')")
    torch.save(payload, path)


def _numpy_rng_state(path: Path, marker: Path) -> None:
    """The format of earlier nightbench versions: numpy's RNG state as an ndarray (needs numpy globals)."""
    payload = torch.load(path, weights_only=False)
    payload["rng"]["numpy"] = np.random.get_state()
    torch.save(payload, path)


def _not_a_checkpoint(path: Path, marker: Path) -> None:
    torch.save({"model": {}}, path)  # loads safely, but lacks what a checkpoint holds


DAMAGE = {"truncated": _truncated, "emptied": _emptied, "random bytes": _random_bytes,
          "malicious pickle": _malicious_pickle, "numpy RNG state": _numpy_rng_state,
          "not a checkpoint": _not_a_checkpoint}

# (damage to checkpoint.pt, damage to checkpoint.prev.pt, step the run must resume from: None = start again)
CASES = [(kind, None, 10) for kind in DAMAGE] + [("truncated", "malicious pickle", None),
                                                   ("malicious pickle", "emptied", None)]


@pytest.mark.parametrize("latest_damage,previous_damage,resumed_from", CASES)
def test_damaged_checkpoint_is_set_aside_and_the_run_ends_as_uninterrupted(
        runs, tmp_path, monkeypatch, capfd, latest_damage, previous_damage, resumed_from):
    reference, interrupted_root, relative = runs
    results = tmp_path / "results"
    shutil.copytree(interrupted_root, results)
    run_dir = results / relative
    assert read_summary(run_dir) is None  # unfinished
    marker = tmp_path / "payload-ran"
    damaged = {}
    for name, kind in (("checkpoint.pt", latest_damage), ("checkpoint.prev.pt", previous_damage)):
        if kind is not None:
            DAMAGE[kind](run_dir / name, marker)
            damaged[name] = (run_dir / name).read_bytes()
    monkeypatch.setitem(catalog.CATALOG.entries, "noisy_toy", __name__)
    capfd.readouterr()

    outcome = _execute(results)

    assert not marker.exists(), "the checkpoint's code ran"
    lines = capfd.readouterr().err.strip().splitlines()
    assert len(lines) == len(damaged), lines  # one line per damaged file
    for (name, data), line in zip(damaged.items(), lines):
        (aside,) = run_dir.glob(f"{name}.damaged-*")
        assert aside.read_bytes() == data  # kept as it was, never deleted
        assert str(run_dir / name) in line and aside.name in line
    assert outcome.status == "completed"
    resumes = [r["step"] for r in read_metrics(run_dir) if r["kind"] == "resume"]
    assert resumes == ([resumed_from] if resumed_from else [])
    assert _comparable(run_dir) == _comparable(reference)  # the log offset was the used checkpoint's
    assert outcome.summary["final_metrics"] == read_summary(reference).final_metrics
    final, expected = (load_weights_only(d / "checkpoint.pt")["model"] for d in (run_dir, reference))
    assert final.keys() == expected.keys()
    assert all(torch.equal(final[k], expected[k]) for k in expected)


def _checkpoint_steps(run_dir: Path) -> dict[str, int]:
    return {path.name: load_weights_only(path)["state"]["step"] for path in run_dir.glob("checkpoint*")}


def test_interrupted_run_keeps_its_two_latest_checkpoints(runs):
    _, interrupted_root, relative = runs
    assert _checkpoint_steps(interrupted_root / relative) == {"checkpoint.pt": 20, "checkpoint.prev.pt": 10}


def test_a_finished_run_keeps_only_its_final_checkpoint(runs):
    reference, _, _ = runs  # it never resumes again: the fallback would only take disk
    assert _checkpoint_steps(reference) == {"checkpoint.pt": read_summary(reference).steps}


def test_a_failed_run_keeps_its_fallback_checkpoint_and_resumes_when_run_again(tmp_path, monkeypatch, runs):
    reference, _, _ = runs
    monkeypatch.setitem(catalog.CATALOG.entries, "noisy_toy", __name__)
    monkeypatch.setitem(STOP_AT_STEP, "step", 25)
    monkeypatch.setitem(STOP_AT_STEP, "error", OSError)  # say, a full disk
    failed = _execute(tmp_path)
    assert failed.status == "failed"
    assert _checkpoint_steps(failed.run_dir) == {"checkpoint.pt": 20, "checkpoint.prev.pt": 10}
    monkeypatch.setitem(STOP_AT_STEP, "step", None)
    again = _execute(tmp_path)  # the same command, once the machine is fixed
    assert again.status == "completed" and again.run_dir == failed.run_dir
    assert [r["step"] for r in read_metrics(again.run_dir) if r["kind"] == "resume"] == [20]
    assert again.summary["final_metrics"] == read_summary(reference).final_metrics
    assert _checkpoint_steps(again.run_dir) == {"checkpoint.pt": read_summary(reference).steps}


@pytest.mark.slow
def test_cli_resumes_past_a_malicious_checkpoint(tmp_path):
    """`nightbench run` on an unfinished run whose checkpoint carries code: exit 0, one line first, same result."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "tests.suites.toy_cli", "run", "--suite", "toy", "--optimizer", "sgd",
               "--preset", "ci", "--quiet", "--results", str(tmp_path / "results")]
    first = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    (run_dir,) = (tmp_path / "results" / "toy" / "ci" / "sgd").iterdir()
    finished = read_summary(run_dir)
    (run_dir / "summary.json").unlink()  # unfinished again: the rerun resumes from a checkpoint
    marker = tmp_path / "payload-ran"
    _malicious_pickle(run_dir / "checkpoint.pt", marker)

    rerun = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)

    assert not marker.exists(), "the checkpoint's code ran"
    assert rerun.returncode == 0, rerun.stderr
    first_line = rerun.stderr.splitlines()[0]
    assert first_line.startswith(f"checkpoint {run_dir / 'checkpoint.pt'} needs exec"), first_line
    assert read_summary(run_dir).status == "completed"
    assert read_summary(run_dir).final_metrics == finished.final_metrics
