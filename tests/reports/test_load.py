"""Loading run directories: one row per run, curves, experiment records, damaged dirs never raise."""

from __future__ import annotations

import json
import math

import pytest

from nightbench.reports import find_run_dirs, load_results
from nightbench.suites.layout import tuning_record_path


def test_one_row_per_run_directory(synthetic, synthetic_results):
    runs = synthetic_results.runs
    assert len(runs) == len(synthetic.run_dirs)
    assert runs["run_id"].is_unique
    written = {p.relative_to(synthetic.root).as_posix() for p in synthetic.run_dirs}
    assert set(runs["run_dir"]) == written


def test_cache_folder_is_not_a_run(synthetic):
    assert not any("_cache" in p.parts for p in find_run_dirs(synthetic.root))


def test_names_come_from_config_not_directory(synthetic, synthetic_results):
    runs = synthetic_results.runs
    evil = runs[runs["optimizer"] == synthetic.evil]
    assert len(evil) == 3
    assert synthetic.evil_run in set(evil["run_name"])
    assert all(d.split("/")[2] == synthetic.dir_name(synthetic.evil) for d in evil["run_dir"])


def test_statuses_and_protocols(synthetic_results):
    runs = synthetic_results.runs.set_index("run_dir")
    assert runs.loc["resnet50_imagenet/ci/sgd/default-lr0.001-seed2", "status"] == "diverged"
    failed = runs.loc["resnet50_imagenet/ci/nigt/default-lr0.001-seed2"]
    assert failed["status"] == "failed" and "boom" in failed["error"]
    assert runs.loc["bert_mlm/ci/nigt/final-lr0.01-seed1", "protocol"] == "final"
    assert runs.loc["bert_mlm/ci/nigt/final-lr0.01-seed1", "lr"] == pytest.approx(1e-2)
    assert runs.loc["bert_mlm/ci/nigt/final-lr0.01-seed1", "final_value"] == pytest.approx(0.404)


def test_damaged_and_incomplete_dirs_are_listed_with_reasons(synthetic_results):
    problems = synthetic_results.problems.set_index("run_dir")
    expected = {
        "bert_mlm/ci/adam/broken_config": ("damaged", "config.json is not valid JSON"),
        "bert_mlm/ci/nigt/half_written": ("incomplete", "no summary.json"),
        "resnet50_imagenet/ci/sgd/bad_summary": ("damaged", "summary.json is not valid JSON"),
        "resnet50_imagenet/ci/adam/empty_dir": ("incomplete", "empty run directory"),
    }
    assert set(problems.index) == set(expected)
    for run_dir, (status, reason) in expected.items():
        assert problems.loc[run_dir, "status"] == status
        assert reason in problems.loc[run_dir, "reason"]
    # the truncated last line of the half-written run is skipped and named, its good line kept
    assert "line 2" in problems.loc["bert_mlm/ci/nigt/half_written", "reason"]
    curves = synthetic_results.curves
    assert len(curves[curves["run_id"] == "bert_mlm/ci/nigt/half_written"]) == 1


def test_curves_frame_has_every_record(synthetic, synthetic_results):
    curves = synthetic_results.curves
    written_train = synthetic.train_records + 1  # + the half-written run's one readable line
    assert (curves["kind"] == "train").sum() == written_train
    assert (curves["kind"] == "eval").sum() == synthetic.eval_records
    evals = curves[(curves["kind"] == "eval") & (curves["run_id"] == "bert_mlm/ci/adam/default-lr0.001-seed0")]
    assert list(evals["step"]) == [10, 20, 30, 40, 50]
    assert evals["mlm_accuracy"].iloc[-1] == pytest.approx(0.350)


def test_experiment_records(synthetic_results):
    sbv, memory = synthetic_results.sbv, synthetic_results.memory
    assert len(sbv) == 4 * 3 * 2 * 3  # optimizers x batch sizes x lrs x unit seeds
    assert set(sbv["batch_size"]) == {1, 4, 16}
    assert len(memory) == 4 * 2
    adam = memory[memory["optimizer"] == "adam"]
    assert set(adam["state_bytes_per_param"]) == {8.0}


def test_target_reached_is_read_from_the_summary_never_recomputed(synthetic_results):
    runs = synthetic_results.runs.set_index("run_dir")
    # adam's summaries omit steps_to_target (an older engine): unknown, although its eval records
    # show 0.35 * step/50 >= 0.3 at step 50; the report does not work it out again
    adam = runs.loc["bert_mlm/ci/adam/default-lr0.001-seed0"]
    assert adam["target_reached"] == "unknown"
    assert math.isnan(adam["steps_to_target"]) and math.isnan(adam["time_to_target"])
    nigt = runs.loc["bert_mlm/ci/nigt/final-lr0.01-seed0"]
    assert nigt["target_reached"] == "reached" and nigt["steps_to_target"] == 40
    diverged = runs.loc["resnet50_imagenet/ci/sgd/default-lr0.001-seed2"]
    assert diverged["target_reached"] == "not reached"  # the summary says null: it never got there
    sbv = runs[runs["suite"] == "small_batch_variance"]
    assert sbv["target_reached"].isna().all()  # no target: nothing to reach


def test_resumed_run_duplicates_are_dropped(tmp_path, run_writer):
    writer = run_writer(tmp_path)
    path = writer.training_run("bert_mlm", "adam", 0, 0.5, metric="mlm_accuracy", target=0.3)
    lines = (path / "metrics.jsonl").read_text().splitlines()
    # a resume re-logs the steps after the last checkpoint: the later copy wins
    replayed = [json.dumps({**json.loads(line), "loss": 123.0}) for line in lines[-3:] if '"train"' in line]
    (path / "metrics.jsonl").write_text("\n".join(lines + replayed) + "\n")
    curves = load_results(tmp_path).curves
    train = curves[curves["kind"] == "train"]
    assert train["step"].is_unique
    assert (train["loss"] == 123.0).sum() == len(replayed)


def test_summary_with_unknown_status_is_flagged(tmp_path, run_writer):
    path = run_writer(tmp_path).training_run("bert_mlm", "adam", 0, 0.5, metric="mlm_accuracy", target=0.3)
    summary = json.loads((path / "summary.json").read_text())
    (path / "summary.json").write_text(json.dumps({**summary, "status": "exploded"}))
    problems = load_results(tmp_path).problems
    assert "'exploded'" in problems["reason"].iloc[0]


def test_missing_results_dir_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_results(tmp_path / "nope")


def test_empty_results_dir_loads_empty_frames(tmp_path):
    results = load_results(tmp_path)
    assert results.runs.empty and results.curves.empty and results.problems.empty
    assert "final_value" in results.runs.columns


def test_non_finite_values_written_as_strings(synthetic_results):
    # the engine writes inf/nan as the strings "inf"/"nan" to keep strict JSON
    curves = synthetic_results.curves
    run_id = "resnet50_imagenet/ci/sgd/default-lr0.001-seed2"
    diverged = curves[(curves["run_id"] == run_id) & (curves["kind"] == "train")]
    assert diverged["loss"].iloc[-1] == float("inf")
    assert diverged["loss"].iloc[:-1].map(lambda v: 0 < v < 10).all()


def test_a_damaged_tuning_record_is_a_listed_problem(tmp_path, run_writer):
    writer = run_writer(tmp_path)
    writer.training_run("bert_mlm", "nigt", 0, 0.3, metric="mlm_accuracy", target=0.3, protocol="tuning")
    record = tuning_record_path(tmp_path, writer.preset, "bert_mlm", "nigt")
    record.parent.mkdir(parents=True)
    record.write_text('{"suite": "bert_mlm", "best_lr": ')
    r = load_results(tmp_path)
    assert r.tuning.empty
    problem = r.problems.set_index("run_dir").loc[record.relative_to(tmp_path).as_posix()]
    assert problem["status"] == "damaged" and "not valid JSON" in problem["reason"]


def test_layout_folders_hold_no_runs(tmp_path, run_writer):
    writer = run_writer(tmp_path)
    writer.training_run("bert_mlm", "adam", 0, 0.4, metric="mlm_accuracy", target=0.3)
    for folder in ("_logs/final", "_tuning/ci/bert_mlm"):
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "config.json").write_text("{}")
    assert [p.relative_to(tmp_path).parts[0] for p in find_run_dirs(tmp_path)] == ["bert_mlm"]
