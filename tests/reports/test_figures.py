"""Figures: drawn from the right data, one color per optimizer, None when there is nothing to draw."""

from __future__ import annotations

import base64

import matplotlib
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex

from nightbench.reports import figures, load_results, optimizer_colors
from nightbench.reports.palette import plot_label


@pytest.fixture(scope="module")
def colors(synthetic_results):
    return optimizer_colors(synthetic_results.optimizers)


def _line_colors(ax) -> dict[str, str]:
    return {line.get_label(): to_hex(line.get_color()) for line in ax.get_lines()
            if not line.get_label().startswith("_")}


def test_palette_is_fixed_by_sorted_name():
    first = optimizer_colors(["sgd", "adam", "nigt"])
    assert optimizer_colors(["nigt", "sgd", "adam"]) == first
    assert len(set(first.values())) == 3
    assert first["adam"] == optimizer_colors(["adam"])["adam"]  # first in sorted order either way


def test_learning_curves_draw_every_reported_optimizer(synthetic, synthetic_results, colors):
    fig = figures.learning_curves(synthetic_results.curves, synthetic_results.runs, "bert_mlm", colors)
    eval_ax, loss_ax = fig.axes[:2]
    drawn = _line_colors(eval_ax)
    expected = {"adam", "nigt (paper)", plot_label(synthetic.evil)}
    assert expected <= set(drawn)
    assert drawn["adam"] == colors["adam"].lower()
    assert _line_colors(loss_ax)["nigt (paper)"] == colors["nigt"].lower()
    # the eval line ends at the mean of nigt's final-protocol runs, not its superseded default runs
    nigt_line = next(line for line in eval_ax.get_lines() if line.get_label() == "nigt (paper)")
    assert nigt_line.get_ydata()[-1] == pytest.approx(np.mean(synthetic.final_values[("bert_mlm", "nigt", "final")]))


def test_failed_runs_stay_out_of_the_curves(synthetic_results, colors):
    fig = figures.learning_curves(synthetic_results.curves, synthetic_results.runs, "resnet50_imagenet", colors)
    nigt = next(line for line in fig.axes[0].get_lines() if line.get_label() == "nigt (paper)")
    assert nigt.get_ydata()[-1] == pytest.approx(np.mean([0.62, 0.66]))  # not dragged down by the failed seed


def test_lr_sensitivity_from_tuning_runs(synthetic_results, colors):
    fig = figures.lr_sensitivity(synthetic_results.runs, "bert_mlm", colors)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    assert list(lines["adam"].get_xdata()) == pytest.approx([1e-4, 1e-3, 1e-2])
    assert list(lines["adam"].get_ydata()) == pytest.approx([0.33, 0.35, 0.20])
    # both optimizers diverged at lr 1: an x marker there, inside the visible range
    crosses = [c for c in fig.axes[0].collections if len(c.get_offsets()) and c.get_offsets()[0][0] == 1.0]
    assert len(crosses) == 2
    assert fig.axes[0].get_xlim()[1] > 1.0
    assert figures.lr_sensitivity(synthetic_results.runs, "resnet50_imagenet", colors) is None


def test_floor_figure_is_log_log_per_problem(synthetic_results, colors):
    fig = figures.floor_vs_batch(synthetic_results.sbv, synthetic_results.runs, colors)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert ax.get_title() == "skewed_noise"
    assert {"nsgd (paper)", "nsgd_momentum (paper)", "nigt (paper)", "sgd"} == set(ax.get_legend_handles_labels()[1])


def test_memory_bars_heights(synthetic, synthetic_results, colors):
    fig = figures.memory_bars(synthetic_results.memory, synthetic_results.runs, colors)
    heights = sorted({round(p.get_height(), 6) for p in fig.axes[0].patches if p.get_height() == p.get_height()})
    assert heights == sorted({4.0 * c for c in synthetic.memory_copies.values()})


def test_performance_profile_panels(synthetic_results, colors):
    fig = figures.performance_profile(synthetic_results.runs, colors)
    time_ax, steps_ax = fig.axes[:2]
    assert time_ax.get_xscale() == "log"
    assert "2 suite(s)" in time_ax.get_title()
    nigt = next(line for line in steps_ax.get_lines() if line.get_label() == "nigt (paper)")
    assert nigt.get_ydata()[0] == 1.0  # fewest steps to target on both suites


def test_nothing_to_draw_gives_none(tmp_path, colors):
    empty = load_results(tmp_path)
    assert figures.learning_curves(empty.curves, empty.runs, "bert_mlm", colors) is None
    assert figures.floor_vs_batch(empty.sbv, empty.runs, colors) is None
    assert figures.memory_bars(empty.memory, empty.runs, colors) is None
    assert figures.performance_profile(empty.runs, colors) is None


def test_png_data_uri_and_no_global_state(synthetic_results, colors):
    backend, rc_before = matplotlib.get_backend(), dict(matplotlib.rcParams)
    fig = figures.memory_bars(synthetic_results.memory, synthetic_results.runs, colors)
    uri = figures.to_data_uri(fig)
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend() == backend
    assert dict(matplotlib.rcParams) == rc_before


def test_dollar_signs_in_names_render(tmp_path, run_writer):
    writer = run_writer(tmp_path)
    for seed in range(2):
        writer.training_run("bert_mlm", "$\\frac{1}{", seed, 0.4, metric="mlm_accuracy", target=0.3)
    r = load_results(tmp_path)
    fig = figures.learning_curves(r.curves, r.runs, "bert_mlm", optimizer_colors(r.optimizers))
    assert figures.to_data_uri(fig).startswith("data:image/png")  # unescaped '$' would fail in mathtext


def test_binning_keeps_long_runs_small():
    frame = pd.DataFrame({"optimizer": "a", "run_id": "r", "step": np.arange(5000), "loss": np.ones(5000)})
    binned = figures._bin_steps(frame, "loss")
    assert len(binned) == figures.MAX_POINTS_PER_RUN and (binned["loss"] == 1).all()
