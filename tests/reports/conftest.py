"""Synthetic results directories in the engine's documented run-directory format.

`synthetic_results` WRITES (does not mock) a results tree with four suites, several optimizers and
seeds, the tuning protocol with its tuning records, a diverged, a failed, an incomplete and several
damaged run directories, and a plugin optimizer whose name is an HTML injection. It returns the
directory and the values it wrote, so tests derive every expected number from what went into the
files. Runs carry the suite facts the engine writes, except the memory_overhead runs (an older
config with only "suite_kind") and adam's bert summaries (no steps_to_target: an older engine).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nightbench.suites.layout import tuning_record_path

EVIL = "<script>alert(1)</script>"
EVIL_RUN = "<img src=x onerror=alert(2)>"
PRESET = "ci"
ENVIRONMENT = {"python": "3.11.2", "torch": "2.14.1", "transformers": "5.24.0", "timm": "1.0.31",
               "deepspeed": "0.19.8", "nightbench": "0.1.0", "git_commit": "0123abcd4567", "hostname": "testbox",
               "cpu": "Synthetic CPU @ 2GHz", "cpu_count": 2, "gpu": None, "device": "cpu", "platform": "Linux"}


def dir_name(text: str) -> str:
    """The engine stores names that are not path-safe under a sanitized directory name."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


# Floors of the small-batch suite: nsgd stalls at ~0.5 at batch 1 whatever the lr; momentum does not.
FLOOR_BASE = {"nsgd": 0.5, "nsgd_momentum": 0.05, "nigt": 0.04, "sgd": 0.1}
MEMORY_COPIES = {"sgd": 1.0, "adam": 2.0, "nigt": 1.0, "nsgd": 0.0}
STEP_TIME = {"sgd": 0.010, "adam": 0.020, "nigt": 0.012, "nsgd": 0.008}
BERT_FINAL = {"adam": [0.350, 0.352, 0.349], "nigt": [0.401, 0.404, 0.399], EVIL: [0.300, 0.310, 0.305]}
NIGT_DEFAULT_BERT = [0.20, 0.21]  # superseded by the tuning protocol's 'final' runs
RESNET_FINAL = {"sgd": [0.61, 0.63], "nigt": [0.62, 0.66]}
SUITE_FACTS = {  # what config.json's "suite_facts" holds, per suite (memory_overhead: left out on purpose)
    "bert_mlm": {"kind": "training", "seed_independent": False, "title": "BERT masked-language-model pre-training",
                 "description": "NIGT against Adam on MLM accuracy.",
                 "report_sections": ["leaderboard", "learning_curves"],
                 "parity_margins": {"ci": {"margin": 0.01, "reason": "synthetic: one point of accuracy"}}},
    "resnet50_imagenet": {"kind": "training", "seed_independent": False, "title": "ResNet-50 image classification",
                          "description": "NIGT against SGD-momentum on top-1.",
                          "report_sections": ["leaderboard", "learning_curves"]},  # no margin: the fallback test
    "small_batch_variance": {"kind": "experiment", "seed_independent": False, "title": "Small-batch variance",
                             "description": "Gradient-norm floors at small batch sizes.",
                             "report_sections": ["small_batch_variance"]},
}
LEGACY_KIND = {"memory_overhead": "experiment"}  # configs written before suite_facts existed


@dataclass
class RunWriter:
    """Writes run directories under `root` and remembers what it wrote."""

    root: Path
    final_values: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)  # (suite, opt, protocol)
    run_dirs: list[Path] = field(default_factory=list)
    train_records: int = 0
    eval_records: int = 0
    # What was written, for tests to derive expectations from (tests do not import conftest).
    evil: str = EVIL
    evil_run: str = EVIL_RUN
    preset: str = PRESET
    environment: dict = field(default_factory=lambda: dict(ENVIRONMENT))
    floor_base: dict = field(default_factory=lambda: dict(FLOOR_BASE))
    memory_copies: dict = field(default_factory=lambda: dict(MEMORY_COPIES))
    step_time: dict = field(default_factory=lambda: dict(STEP_TIME))

    dir_name = staticmethod(dir_name)

    def run_dir(self, suite: str, optimizer: str, run_name: str) -> Path:
        path = self.root / suite / self.preset / dir_name(optimizer) / dir_name(run_name)
        path.mkdir(parents=True, exist_ok=True)
        self.run_dirs.append(path)
        return path

    def config(self, suite: str, optimizer: str, seed: int, run_name: str, *, protocol: str = "default",
               lr: float = 1e-3, target_metric: str | None = None, target_value: float | None = None,
               higher_is_better: bool = True, facts: dict | None = None) -> dict[str, Any]:
        """A config.json; `facts` (else SUITE_FACTS[suite]) becomes "suite_facts" when there is one."""
        facts = facts if facts is not None else SUITE_FACTS.get(suite)
        known = {"suite_facts": facts} if facts else {"suite_kind": LEGACY_KIND[suite]} if suite in LEGACY_KIND else {}
        return {**known,
            "suite": suite, "preset": self.preset, "optimizer": optimizer, "seed": seed, "run_name": run_name,
            "protocol": protocol, "hyperparameters": {"lr": lr, "beta": 0.9}, "policy": {"exclude_ndim_le": 1},
            "suite_config": {"steps": 50}, "overrides": {}, "optimizer_spec": {"name": optimizer, "paper": "",
                                                                               "state_slots": 1},
            "target_metric": target_metric, "higher_is_better": higher_is_better, "target_value": target_value,
            "environment": ENVIRONMENT, "world_size": 1, "created": f"2025-01-01T00:00:{seed:02d}",
        }

    def training_run(self, suite: str, optimizer: str, seed: int, final: float, *, metric: str, target: float,
                     protocol: str = "default", lr: float = 1e-3, status: str = "completed",
                     error: str | None = None, summary_has_target: bool = True, run_name: str | None = None,
                     steps: int = 50, facts: dict | None = None) -> Path:
        """A training run whose eval metric rises linearly to `final`; time = 0.1 s per step.
        `summary_has_target=False` leaves steps/time to target out of summary.json (an older engine)."""
        run_name = run_name or f"{protocol}-lr{lr:g}-seed{seed}"
        path = self.run_dir(suite, optimizer, run_name)
        config = self.config(suite, optimizer, seed, run_name, protocol=protocol, lr=lr,
                             target_metric=metric, target_value=target, facts=facts)
        (path / "config.json").write_text(json.dumps(config))
        lines, reach = [], None
        last = steps if status != "diverged" else steps // 2
        for step in range(1, last + 1):
            # the engine writes non-finite floats as strings to keep the log strict JSON
            loss = 5.0 * np.exp(-step * final / 8) + 0.05 * seed if status != "diverged" or step < last else "inf"
            lines.append({"kind": "train", "step": step, "loss": loss, "lr": lr, "step_time": 0.1,
                          "data_wait": 0.0, "time": 0.1 * step})
            self.train_records += 1
            if step % 10 == 0:
                value = final * step / steps
                lines.append({"kind": "eval", "step": step, metric: value, "time": 0.1 * step + 0.01})
                self.eval_records += 1
                if reach is None and value >= target:
                    reach = (step, 0.1 * step + 0.01)
        (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
        summary = {"status": status, "diverged_step": last if status == "diverged" else None, "error": error,
                   "final_metrics": {metric: final} if status == "completed" else {},
                   "target_metric": metric, "target_value": target,
                   "steps": last, "wall_time": 0.1 * last + 1.0, "step_time_median": 0.1,
                   "data_wait_fraction": 0.0, "finished": "2025-01-01T01:00:00"}
        if summary_has_target:  # the engine's own record of the first evaluation at the target
            summary["steps_to_target"], summary["time_to_target"] = reach if reach else (None, None)
        (path / "summary.json").write_text(json.dumps(summary))
        if status == "completed":
            self.final_values.setdefault((suite, optimizer, protocol), []).append(final)
        return path

    def tuning_record(self, suite: str, optimizer: str, tried: list[tuple[float, Path, str, float | None]], *,
                      metric: str, higher_is_better: bool = True, best_lr: float | None = None,
                      best_value: float | None = None, reason: str | None = None) -> Path:
        """The leaderboard's tuning record: `tried` holds (lr, run directory, status, value)."""
        path = tuning_record_path(self.root, self.preset, suite, optimizer)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "suite": suite, "preset": self.preset, "optimizer": optimizer, "metric": metric,
            "higher_is_better": higher_is_better, "tuning_seed": 0, "grid": "local",
            "tried": [{"lr": lr, "run_dir": run_dir.relative_to(self.root).as_posix(), "status": status,
                       "value": value} for lr, run_dir, status, value in tried],
            "best_lr": best_lr, "best_value": best_value, "reason": reason}))
        return path

    def experiment_run(self, suite: str, optimizer: str, records: list[dict], seed: int = 0) -> Path:
        path = self.run_dir(suite, optimizer, f"default-seed{seed}")
        (path / "config.json").write_text(json.dumps(self.config(suite, optimizer, seed, f"default-seed{seed}")))
        (path / "metrics.jsonl").write_text("".join(json.dumps({**r, "time": 1.0}) + "\n" for r in records))
        (path / "summary.json").write_text(json.dumps({
            "status": "completed", "final_metrics": {"units": len(records)}, "target_metric": None,
            "target_value": None, "steps": len(records), "wall_time": 2.0, "finished": "2025-01-01T01:00:00"}))
        return path


def write_synthetic_results(root: Path) -> RunWriter:
    writer = RunWriter(root)
    rng = np.random.default_rng(0)
    for optimizer in ("adam", EVIL):
        for seed, final in enumerate(BERT_FINAL[optimizer]):
            run_name = EVIL_RUN if optimizer == EVIL and seed == 0 else None
            writer.training_run("bert_mlm", optimizer, seed, final, metric="mlm_accuracy", target=0.3,
                                run_name=run_name, summary_has_target=optimizer != "adam")
    for seed, final in enumerate(NIGT_DEFAULT_BERT):
        writer.training_run("bert_mlm", "nigt", seed, final, metric="mlm_accuracy", target=0.3)
    for seed, final in enumerate(BERT_FINAL["nigt"]):
        writer.training_run("bert_mlm", "nigt", seed, final, metric="mlm_accuracy", target=0.3,
                            protocol="final", lr=1e-2)
    for optimizer, values in (("nigt", (0.30, 0.38, 0.40)), ("adam", (0.33, 0.35, 0.20))):
        tried = []
        for lr, value in zip((1e-4, 1e-3, 1e-2), values):
            path = writer.training_run("bert_mlm", optimizer, 0, value, metric="mlm_accuracy", target=0.3,
                                       protocol="tuning", lr=lr)
            tried.append((lr, path, "completed", value))
        path = writer.training_run("bert_mlm", optimizer, 0, 0.0, metric="mlm_accuracy", target=0.3,
                                   protocol="tuning", lr=1.0, status="diverged")
        tried.append((1.0, path, "diverged", None))
        best = max((t for t in tried if t[3] is not None), key=lambda t: t[3])  # as the leaderboard chooses
        writer.tuning_record("bert_mlm", optimizer, tried, metric="mlm_accuracy", best_lr=best[0],
                             best_value=best[3])
    for optimizer, values in RESNET_FINAL.items():
        for seed, final in enumerate(values):
            writer.training_run("resnet50_imagenet", optimizer, seed, final, metric="top1", target=0.6)
    writer.training_run("resnet50_imagenet", "sgd", 2, 0.0, metric="top1", target=0.6, status="diverged")
    writer.training_run("resnet50_imagenet", "nigt", 2, 0.0, metric="top1", target=0.6, status="failed",
                        error="RuntimeError: <b>boom</b>")

    for optimizer, base in FLOOR_BASE.items():
        records = []
        for batch in (1, 4, 16):
            for lr in (0.01, 0.1):
                for unit_seed in range(3):
                    shrink = 1.0 if optimizer == "nsgd" and batch == 1 else batch ** -0.5
                    floor = base * shrink * (1.0 + (lr == 0.1)) * (1 + 0.05 * rng.standard_normal())
                    records.append({"kind": "sbv_unit", "unit": f"skewed_noise/b{batch}/lr{lr}/s{unit_seed}",
                                    "problem": "skewed_noise", "batch_size": batch, "lr": lr,
                                    "unit_seed": unit_seed, "floor": floor, "final_grad_norm": floor,
                                    "curve": [[0, 1.0], [10, floor]], "slope": -0.25, "slope_ci": [-0.3, -0.2],
                                    "grad_variance": None})
        writer.experiment_run("small_batch_variance", optimizer, records)

    for optimizer, copies in MEMORY_COPIES.items():
        records = [{"kind": "memory", "unit": family, "family": family, "model": f"{family} model <tiny>",
                    "params": 1000, "param_bytes": 4000, "state_bytes": int(copies * 4000),
                    "state_bytes_per_param": copies * 4.0, "param_copies": copies,
                    "peak_step_bytes": 50_000 + int(copies * 4000), "peak_step_increment_bytes": int(copies * 4000),
                    "optimizer_step_time": STEP_TIME[optimizer] * scale, "train_step_time": 0.5 * scale,
                    "step_time": 0.5 * scale, "dtype": "float32", "device": "cpu"}
                   for family, scale in (("resnet", 1.0), ("bert", 2.0))]
        writer.experiment_run("memory_overhead", optimizer, records)

    # Damaged and half-written run directories.
    broken = writer.run_dir("bert_mlm", "adam", "broken_config")
    (broken / "config.json").write_text("{not json")
    half = writer.run_dir("bert_mlm", "nigt", "half_written")
    (half / "config.json").write_text(json.dumps(writer.config("bert_mlm", "nigt", 7, "half_written",
                                                               target_metric="mlm_accuracy", target_value=0.3)))
    (half / "metrics.jsonl").write_text(json.dumps({"kind": "train", "step": 1, "loss": 3.0, "time": 0.1})
                                        + "\n" + '{"kind": "train", "step": 2, "lo')
    bad_summary = writer.run_dir("resnet50_imagenet", "sgd", "bad_summary")
    (bad_summary / "config.json").write_text(json.dumps(writer.config("resnet50_imagenet", "sgd", 9, "bad_summary")))
    (bad_summary / "summary.json").write_text('{"status": "compl')
    writer.run_dir("resnet50_imagenet", "adam", "empty_dir")
    (root / "_cache" / "tokenizer").mkdir(parents=True)
    (root / "_cache" / "tokenizer" / "config.json").write_text("{}")  # must not be taken for a run
    return writer


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory) -> RunWriter:
    """A written results tree (shared read-only by the tests; do not modify it)."""
    return write_synthetic_results(tmp_path_factory.mktemp("results"))


@pytest.fixture(scope="session")
def synthetic_results(synthetic):
    from nightbench.reports import load_results

    return load_results(synthetic.root)


@pytest.fixture(scope="session")
def synthetic_report(synthetic, tmp_path_factory) -> Path:
    """The HTML report built from the synthetic results."""
    from nightbench.reports import build_report

    return build_report(synthetic.root, tmp_path_factory.mktemp("report") / "report.html")


@pytest.fixture
def run_writer():
    """Make a RunWriter for a test's own results tree: `run_writer(tmp_path)`."""
    return RunWriter
