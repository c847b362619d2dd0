"""A run's DeepSpeed checkpoints (suites/distributed/checkpoints.py): which ones DeepSpeed can resume;
their files never run code, and a damaged tag never blocks its run (2 processes).

One `torchrun` launch of this file (as a script) does everything under ZeRO 2 on gloo: an
uninterrupted run, a run interrupted at step 25 (tags step10 and step20 kept), then for each case a
copy of the interrupted run with files of its tags damaged, resumed. Rank 0 writes what each case
ended with to a report the test reads. DeepSpeed unpickles its own files with weights_only=False,
so the malicious file's code would run unless nightbench's check refused it first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nightbench.suites.config import ConfigError
from nightbench.suites.distributed.checkpoints import check_resumable

REPO = Path(__file__).resolve().parents[3]
STAGE = 2
# (damage, file in the latest tag, damage to the previous tag's file or None, step resumed from: None = start again)
CASES = [
    ("malicious pickle", "zero_pp_rank_1_mp_rank_00_optim_states.pt", None, 10),
    ("malicious pickle", "mp_rank_00_model_states.pt", None, 10),
    ("truncated", "mp_rank_00_model_states.pt", None, 10),
    ("emptied", "rng_rank1.pt", None, 10),
    ("random bytes", "zero_pp_rank_0_mp_rank_00_optim_states.pt", None, 10),
    ("removed", "zero_pp_rank_1_mp_rank_00_optim_states.pt", None, 10),
    ("truncated", "rng_rank0.pt", "malicious pickle", None),
]


@pytest.mark.parametrize("meta,stage,world,message", [
    ({"zero_stage": 2, "world_size": 2}, 2, 1, "cannot re-partition"),
    ({"zero_stage": 0, "world_size": 2}, 2, 2, "resume it with --zero-stage 0"),
    ({"zero_stage": 1, "world_size": 4}, 1, 2, "resume it with 4 processes"),
])
def test_resuming_where_deepspeed_cannot_is_refused(meta, stage, world, message):
    with pytest.raises(ConfigError, match=message):
        check_resumable(meta, stage, world)


@pytest.mark.parametrize("meta, stage, world_size, refusal", [
    ({"zero_stage": 0, "world_size": 2}, 0, 1, None),  # ZeRO 0 resumes at any world size
    ({"zero_stage": 2, "world_size": 2}, 2, 2, None),  # same stage, same world size
    (None, 2, 8, None),  # nothing to resume
    ({"zero_stage": 2, "world_size": 2}, 2, 1, "resume it with 2 processes"),
    ({"zero_stage": 0, "world_size": 2}, 2, 2, "resume it with --zero-stage 0"),
])
def test_resuming_a_zero0_checkpoint_on_any_world_size(meta, stage, world_size, refusal):
    if refusal is None:
        assert check_resumable(meta, stage, world_size) is None
    else:
        with pytest.raises(ConfigError, match=refusal):
            check_resumable(meta, stage, world_size)


# --- damaged tags (2 processes) ------------------------------------------------------------------


def _case_id(case) -> str:
    damage, name, previous, _ = case
    return f"{damage} {name}" + (f" + previous {previous}" if previous else "")


def _launch_main(out: Path) -> int:
    """Every rank runs this; rank 0 damages the copies and writes out/report.json."""
    import torch.distributed as dist

    from nightbench.suites import catalog
    from nightbench.suites.distributed import DeepSpeedOptions
    from nightbench.suites.distributed.weights import checkpoint_weights
    from nightbench.suites.engine import RunRequest, execute_run
    from nightbench.suites.run_dir import read_metrics
    from nightbench.suites.summary import read_summary
    from tests.suites import test_checkpoint_safety as single

    catalog.CATALOG.entries["noisy_toy"] = single.__name__
    main = os.environ.get("RANK") == "0"

    def execute(root: Path):
        return execute_run(RunRequest(suite="noisy_toy", optimizer="adam", preset="ci", results_root=str(root),
                                      progress=False, device="cpu", deepspeed=DeepSpeedOptions(zero_stage=STAGE)))

    reference = execute(out / "reference").run_dir
    single.STOP_AT_STEP["step"] = 25
    try:
        execute(out / "interrupted")
    except KeyboardInterrupt:
        pass
    single.STOP_AT_STEP["step"] = None
    (relative,) = [p.relative_to(out / "interrupted") for p in (out / "interrupted").glob("*/*/*/*")]
    report = []
    for index, (damage, name, previous, _) in enumerate(CASES):
        root, marker = out / f"case{index}", out / f"case{index}-payload-ran"
        run_dir = root / relative
        if main:
            shutil.copytree(out / "interrupted", root)
            _damage(damage, run_dir / "deepspeed" / "step20" / name, marker)
            if previous:
                _damage(previous, run_dir / "deepspeed" / "step10" / name, marker)
        dist.barrier()
        outcome = execute(root)
        if main:
            weights, expected = checkpoint_weights(run_dir), checkpoint_weights(reference)
            report.append({
                "status": outcome.status, "marker": marker.exists(),
                "resumes": [r["step"] for r in read_metrics(run_dir) if r["kind"] == "resume"],
                "same_log": single._comparable(run_dir) == single._comparable(reference),
                "same_final": outcome.summary["final_metrics"] == read_summary(reference).final_metrics,
                "same_weights": weights.keys() == expected.keys() and all(torch.equal(weights[k], expected[k])
                                                                          for k in expected),
                "set_aside": sorted(p.name for p in (run_dir / "deepspeed").glob("*.damaged-*")),
                "latest": (run_dir / "deepspeed" / "latest").read_text(),
                "tags": sorted(p.name for p in (run_dir / "deepspeed").glob("step*") if ".damaged-" not in p.name),
                "run_dir": str(run_dir),
            })
    if main:
        (out / "report.json").write_text(json.dumps(report, indent=2))
    return 0


def _damage(kind: str, path: Path, marker: Path) -> None:
    from tests.suites.test_checkpoint_safety import DAMAGE

    if kind == "removed":
        path.unlink()
    else:
        DAMAGE[kind](path, marker)


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    out = tmp_path_factory.mktemp("ds_checkpoints")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "DS_ACCELERATOR": "cpu"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "tests.suites.distributed.test_checkpoints", str(out)]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads((out / "report.json").read_text()), result.stderr


@pytest.mark.slow
@pytest.mark.distributed
@pytest.mark.parametrize("index", range(len(CASES)), ids=[_case_id(case) for case in CASES])
def test_damaged_deepspeed_tag_is_set_aside_and_the_run_ends_as_uninterrupted(launched, index):
    report, stderr = launched
    damage, name, previous, resumed_from = CASES[index]
    case = report[index]
    assert not case["marker"], "a checkpoint file's code ran"
    assert case["status"] == "completed"
    set_aside = [aside.split(".damaged-")[0] for aside in case["set_aside"]]
    assert set_aside == (["step10", "step20"] if previous else ["step20"])  # renamed, not deleted
    lines = [line for line in stderr.splitlines() if case["run_dir"] in line and "kept the checkpoint as" in line]
    assert len(lines) == 1 + bool(previous), lines  # one line per damaged tag, naming the file
    assert name in lines[0]
    assert case["resumes"] == ([resumed_from] if resumed_from else [])
    assert case["same_log"] and case["same_final"] and case["same_weights"]
    assert case["latest"] == "step30"  # the final checkpoint, as in an uninterrupted run
    assert case["tags"] == ["step30"]  # the finished run keeps no fallback (step20 went when it finished)


if __name__ == "__main__":
    sys.exit(_launch_main(Path(sys.argv[1])))
