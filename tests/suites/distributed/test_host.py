"""A run under DeepSpeed (suites/distributed/host.py): 2 processes (gloo) give the 1-process answers;
kill and resume; what one rank's failure or other data does; refusals before starting.

Launches are few because each costs seconds of start-up: one `torchrun` launch runs every
(optimizer, ZeRO stage) of the comparison through the engine (tests/suites/distributed/driver.py);
the kill-and-resume tests add three more. The 1-process references run in this process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from nightbench.suites.cli import main
from nightbench.suites.distributed.checkpoints import latest_checkpoint_meta
from nightbench.suites.distributed.weights import checkpoint_weights
from nightbench.suites.engine import RunRequest, execute_run
from nightbench.suites.run_dir import read_metrics
from nightbench.suites.summary import read_summary

REPO = Path(__file__).resolve().parents[3]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
       "DS_ACCELERATOR": "cpu", "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
OPTIMIZERS = ("nigt", "lamb", "adam")
STAGES = (0, 2)
STEPS = 10
RESUME_STEPS = 40  # the killed run: long enough to be killed halfway
TOLERANCE = dict(rtol=1e-5, atol=2e-5)  # float32, sums taken in another order
# bf16 compute: a last-bit difference in an fp32 weight can round its bf16 copy the other way
# bf16 autocast rounds activations to 8 significant bits; a reduction taken in another order can flip
# one rounding and turn a normalized update slightly. Bound: a tenth of one step of size lr = 1e-2.
# (Observed 2e-7 .. 3e-4. The exactness claim is the fp32 tests above.)
BF16_TOLERANCE = dict(rtol=1e-3, atol=1e-3)


# --- refusals (no processes launched) ------------------------------------------------------------


@pytest.mark.parametrize("args,message", [
    (["--optimizer", "nigt", "--zero-stage", "3"], "ZeRO stage 3"),
    (["--optimizer", "nigt_adaptive", "--deepspeed"], "without --deepspeed"),
    (["--optimizer", "adam", "--deepspeed", "--set", "fail_at_step=1"], "unknown key"),
])
def test_cli_refuses_before_starting(tmp_path, capsys, args, message):
    code = main(["run", "--suite", "bert_mlm", "--preset", "ci", "--quiet", "--results", str(tmp_path), *args])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "bert_mlm").exists()



# --- 2 processes ---------------------------------------------------------------------------------


def _torchrun(*args: str) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]


def _cli(results: Path, optimizer: str, stage: int, steps: int) -> list[str]:
    return ["-m", "nightbench.suites.cli", "run", "--suite", "bert_mlm", "--preset", "ci", "--optimizer", optimizer,
            "--quiet", "--results", str(results), "--set", f"steps={steps}", "--deepspeed", "--zero-stage", str(stage)]


def _share_cache(root: Path, source: Path) -> None:
    """Runs compared must read the same corpus and tokenizer (built once, by the first run)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "_cache").symlink_to(source / "_cache", target_is_directory=True)


def _single(root: Path, optimizer: str, steps: int):
    return execute_run(RunRequest(suite="bert_mlm", optimizer=optimizer, preset="ci", overrides={"steps": steps},
                                  results_root=str(root), progress=False, device="cpu"))


def _plain_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoint.pt", weights_only=False)["model"]


def _comparable(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in ("time", "step_time", "data_wait")}
            for r in read_metrics(run_dir) if r["kind"] in ("train", "eval")]


def _largest_difference(expected: dict, got: dict) -> float:
    assert set(expected) == set(got)
    return max(float((expected[k].detach().float() - got[k].detach().float()).abs().max()) for k in expected)


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """1-process references here; every 2-process DeepSpeed run in one launch."""
    root = tmp_path_factory.mktemp("deepspeed")
    single = {name: _single(root / "single", name, STEPS) for name in OPTIMIZERS}
    for name, folder, overrides in (("adam-long", "single-long", {"steps": RESUME_STEPS}),
                                    ("nigt-bf16", "single-bf16", {"steps": STEPS, "precision": "bf16"})):
        _share_cache(root / folder, root / "single")
        single[name] = execute_run(RunRequest(suite="bert_mlm", optimizer=name.split("-")[0], preset="ci",
                                              overrides=overrides, results_root=str(root / folder),
                                              progress=False, device="cpu"))
    assert all(o.status == "completed" for o in single.values()), {k: o.summary for k, o in single.items()}
    runs = [{"suite": "bert_mlm", "optimizer": name, "zero_stage": stage, "results": str(root / f"zero{stage}"),
             "overrides": {"steps": STEPS}} for stage in STAGES for name in OPTIMIZERS]
    runs += [
        {"suite": "bert_mlm", "optimizer": "nigt", "zero_stage": 2, "results": str(root / "bf16"),
         "overrides": {"steps": STEPS, "precision": "bf16"}},
        {"suite": "bert_mlm", "optimizer": "adam", "zero_stage": 3, "results": str(root / "zero3"),
         "overrides": {"steps": STEPS}},
        {"suite": "bert_mlm", "optimizer": "nigt", "zero_stage": 2, "results": str(root / "uninterrupted"),
         "overrides": {"steps": RESUME_STEPS}},
    ]
    for folder in {Path(r["results"]) for r in runs}:
        _share_cache(folder, root / "single")
    runs.append({"suite": "toy_rank_data", "optimizer": "adam", "zero_stage": 0,
                 "results": str(root / "other-data"), "overrides": {}})
    runs.append({"suite": "toy_rank_failure", "optimizer": "adam", "zero_stage": 0,  # last: rank 1 dies
                 "results": str(root / "failure"), "overrides": {}})
    plan = root / "plan.json"
    plan.write_text(json.dumps({"runs": runs, "report": str(root / "report.json")}))
    started = time.monotonic()
    done = subprocess.run(_torchrun("-m", "tests.suites.distributed.driver", str(plan)), cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=300)
    print(f"\none 2-process launch of {len(runs)} runs: {time.monotonic() - started:.1f} s")
    report = json.loads((root / "report.json").read_text()) if (root / "report.json").exists() else []
    assert len(report) == len(runs), done.stdout[-3000:] + done.stderr[-3000:]
    assert done.returncode == 1  # the launcher reports the planned failure of rank 1
    return root, single, report


def _outcome(report: list[dict], optimizer: str, stage: int, **overrides) -> dict:
    wanted = {"steps": STEPS, **overrides}
    (outcome,) = [o for o in report if o["optimizer"] == optimizer and o["zero_stage"] == stage
                  and o["overrides"] == wanted]
    return outcome


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_two_processes_match_one_process(launched, optimizer, stage):
    root, single, report = launched
    outcome = _outcome(report, optimizer, stage)
    _assert_matches(outcome, single[optimizer], optimizer, stage)
    config = json.loads((Path(outcome["run_dir"]) / "config.json").read_text())
    assert config["world_size"] == 2 and config["distributed"]["zero_stage"] == stage
    assert config["distributed"]["deepspeed_config"]["gradient_accumulation_steps"] == 1  # ci: 8 = 4 x 1 x 2


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("optimizer,stage,overrides,reference", [
    ("nigt", 2, {"precision": "bf16"}, "nigt-bf16"),  # bf16 compute on fp32 weights, as in one process
    ("adam", 3, {}, "adam"),  # ZeRO 3 for an elementwise optimizer
])
def test_bf16_and_zero3_match_one_process(launched, optimizer, stage, overrides, reference):
    _, single, report = launched
    _assert_matches(_outcome(report, optimizer, stage, **overrides), single[reference], optimizer, stage)


def _assert_matches(outcome: dict, single, optimizer: str, stage: int) -> None:
    assert outcome["status"] == "completed", outcome["error"]
    run_dir = Path(outcome["run_dir"])
    reference = single.run_dir
    expected_weights, weights = _plain_weights(reference), checkpoint_weights(run_dir)
    difference = _largest_difference(expected_weights, weights)
    precision = outcome["overrides"].get("precision", "fp32")
    print(f"\n{optimizer} ZeRO {stage} {precision}: largest parameter difference after {STEPS} steps {difference:.3g}; "
          f"median step {outcome['step_time_median']:.4f} s (1 process: "
          f"{single.summary['step_time_median']:.4f} s)")
    tolerance = BF16_TOLERANCE if precision == "bf16" else TOLERANCE
    for key, expected in expected_weights.items():
        torch.testing.assert_close(weights[key].float(), expected.float(), **tolerance)
    # the logged loss is the global batch's and evaluation ran at the same weights (under bf16 an
    # argmax may flip, so only the losses are compared there)
    compared = ("loss", "mlm_loss") if precision == "bf16" else None
    for a, b in zip(_comparable(reference), _comparable(run_dir)):
        assert a.keys() == b.keys() and a["step"] == b["step"]
        for key in a:
            if isinstance(a[key], float) and (compared is None or key in compared):
                assert b[key] == pytest.approx(a[key], rel=tolerance["rtol"] * 10, abs=1e-5), (key, a, b)
    assert not (run_dir / "failures").exists()


@pytest.mark.slow
@pytest.mark.distributed
def test_ranks_with_other_training_data_are_refused(launched):
    _, _, report = launched
    (outcome,) = [o for o in report if o["suite"] == "toy_rank_data"]
    assert outcome["status"] == "refused"
    assert "ranks [1] built other training batches than rank 0" in outcome["error"]


@pytest.mark.slow
@pytest.mark.distributed
def test_a_failing_rank_is_reported_by_rank_0(launched):
    _, _, report = launched
    outcome = report[-1]
    assert outcome["suite"] == "toy_rank_failure" and outcome["status"] == "failed"
    summary = read_summary(Path(outcome["run_dir"]))
    assert summary.status == "failed"
    assert summary.error.startswith("rank 1: RuntimeError: rank 1 fails on purpose at step 2")
    assert summary.rank_failures[0]["rank"] == 1 and "Traceback" in summary.rank_failures[0]["traceback"]
    metrics = read_metrics(Path(outcome["run_dir"]))  # only rank 0 wrote them: each step once
    steps = [r["step"] for r in metrics if r["kind"] == "train"]
    assert steps == sorted(set(steps))


def _kill_when_checkpointed(command: list[str], run_parent: Path, step: int) -> Path:
    """Start a 2-process run, SIGKILL the whole launch once it has checkpointed `step`."""
    proc = subprocess.Popen(command, cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, run_dir = time.monotonic() + 120, None
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            dirs = list(run_parent.glob("*")) if run_parent.exists() else []
            meta = latest_checkpoint_meta(dirs[0]) if dirs else None
            if meta and meta["step"] >= step:
                run_dir = dirs[0]
                break
            time.sleep(0.02)
    finally:  # torchrun starts each worker in its own session: kill the whole tree
        processes = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGKILL)
        proc.wait()
        psutil.wait_procs(processes, timeout=10)
    assert run_dir is not None, "the run never checkpointed step %d" % step
    return run_dir


@pytest.mark.slow
@pytest.mark.distributed
def test_killed_run_resumes_under_two_processes(launched):
    root, _, report = launched
    reference = Path(_outcome(report, "nigt", 2, steps=RESUME_STEPS)["run_dir"])
    results = root / "killed"
    _share_cache(results, root / "single")
    command = _torchrun(*_cli(results, "nigt", 2, RESUME_STEPS))
    run_dir = _kill_when_checkpointed(command, results / "bert_mlm" / "ci" / "nigt", step=10)
    assert read_summary(run_dir) is None
    killed_at = max(r["step"] for r in read_metrics(run_dir) if r["kind"] == "train")
    assert killed_at < RESUME_STEPS

    resumed = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=180)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert read_summary(run_dir).status == "completed"
    assert any(r["kind"] == "resume" for r in read_metrics(run_dir))
    assert _comparable(run_dir) == _comparable(reference)  # each step logged once, the same values
    assert _largest_difference(checkpoint_weights(reference), checkpoint_weights(run_dir)) == 0.0


@pytest.mark.slow
@pytest.mark.distributed
def test_zero0_checkpoint_resumes_on_another_world_size(launched):
    """ZeRO 0 keeps whole optimizer state on every rank: a 2-process checkpoint resumes on 1 process."""
    root, single, _ = launched
    results = root / "regrouped"
    _share_cache(results, root / "single")
    run_dir = _kill_when_checkpointed(_torchrun(*_cli(results, "adam", 0, RESUME_STEPS)),
                                      results / "bert_mlm" / "ci" / "adam", step=10)
    assert read_summary(run_dir) is None
    alone = subprocess.run([sys.executable, *_cli(results, "adam", 0, RESUME_STEPS)], cwd=REPO, env=ENV,
                           capture_output=True, text=True, timeout=120)
    assert alone.returncode == 0, alone.stdout[-3000:] + alone.stderr[-3000:]
    assert read_summary(run_dir).status == "completed"
    weights = checkpoint_weights(run_dir)
    for key, expected in _plain_weights(single["adam-long"].run_dir).items():
        torch.testing.assert_close(weights[key].float(), expected.float(), **TOLERANCE)
