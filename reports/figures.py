"""The report's figures (seaborn on matplotlib's object API with the Agg renderer, no pyplot state).

Each function returns a matplotlib Figure, or None when the results hold nothing to draw; the
caller turns it into an embedded PNG with `to_data_uri`. Every optimizer keeps one color (see
palette.py); the paper's optimizers are drawn with thicker lines, the modern set (the registry's
`family`) with dashed ones and '(modern)' in the legend.
"""

from __future__ import annotations

import base64
import functools
import io
import math
from typing import Callable

import matplotlib
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import ticker
from matplotlib.figure import Figure

from nightbench.suites.outcomes import FINISHED_STATES, RunState

from .load import BROKEN_STATES
from .palette import is_paper_optimizer, plot_label
from .profiles import R_MAX, performance_ratios, profile_curve, target_costs, tau_grid
from .stats import floor_summary, memory_summary, reported_records, reported_runs

MAX_POINTS_PER_RUN = 200  # long runs are binned by step so the figure stays readable and small
_STYLE = {**sns.axes_style("whitegrid"), **sns.plotting_context("notebook", font_scale=0.9)}


def _styled(draw: Callable[..., Figure | None]) -> Callable[..., Figure | None]:
    """Run a drawing function under the report's style without touching global rcParams."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        with matplotlib.rc_context(_STYLE):
            return draw(*args, **kwargs)

    return wrapper


def _figure(width: float, height: float) -> Figure:
    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def _label(optimizer: str) -> str:
    tag = " (paper)" if is_paper_optimizer(optimizer) else " (modern)" if _is_modern(optimizer) else ""
    return plot_label(optimizer) + tag


@functools.lru_cache(maxsize=None)
def _is_modern(optimizer: str) -> bool:
    """In the registry's modern set; False for names it does not know (plugins of another session)."""
    from nightbench.optimizers import get_spec

    try:
        return get_spec(optimizer).family == "modern"
    except (KeyError, ValueError):
        return False


def _dashes(optimizer: str) -> str:
    return "--" if _is_modern(optimizer) else "-"


def _width(optimizer: str) -> float:
    return 2.4 if is_paper_optimizer(optimizer) else 1.4


def _legend(fig: Figure, ax) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if ax.get_legend() is not None:
        ax.get_legend().remove()
    if handles:
        fig.legend(handles, labels, loc="outside right upper", frameon=False, fontsize="small")


def legend_entries(fig: Figure) -> list[str]:
    """The labels of a figure's legends as drawn (each optimizer once), with plot_label's escaping undone."""
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    labels = [text.get_text().replace(r"\$", "$") for legend in legends for text in legend.get_texts()]
    return list(dict.fromkeys(labels))


def _plain_log_ticks(axis) -> None:
    """Label a log axis 0.01, 0.1, 1 rather than 10^-2 ... (easier to read next to the tables)."""
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(ticker.NullFormatter())


def to_data_uri(fig: Figure) -> str:
    """The figure as a base64 PNG data URI, for an <img> in a self-contained page."""
    buffer = io.BytesIO()
    with matplotlib.rc_context(_STYLE):
        fig.savefig(buffer, format="png", dpi=110)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _bin_steps(frame: pd.DataFrame, value: str) -> pd.DataFrame:
    """Average each run's records into at most MAX_POINTS_PER_RUN common step bins."""
    frame = frame[["optimizer", "run_id", "step", value]].replace([np.inf, -np.inf], np.nan)
    if frame.groupby("run_id").size().max() <= MAX_POINTS_PER_RUN:
        return frame
    edges = np.linspace(frame["step"].min(), frame["step"].max() + 1e-9, MAX_POINTS_PER_RUN + 1)
    centers = (edges[:-1] + edges[1:]) / 2
    binned = frame.assign(step=centers[np.clip(np.digitize(frame["step"], edges) - 1, 0, len(centers) - 1)])
    return binned.groupby(["optimizer", "run_id", "step"], as_index=False)[value].mean()


def _draw_lines(ax, frame: pd.DataFrame, value: str, colors: dict[str, str]) -> None:
    for optimizer, group in sorted(frame.groupby("optimizer"), key=lambda item: str(item[0])):
        few = group["step"].nunique() <= 25  # short runs: mark the points, a lone point has no line
        sns.lineplot(data=group, x="step", y=value, ax=ax, color=colors.get(str(optimizer)), estimator="mean",
                     errorbar="sd", linewidth=_width(str(optimizer)), label=_label(str(optimizer)),
                     linestyle=_dashes(str(optimizer)), marker="o" if few else None, markersize=4, markeredgewidth=0)
    ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))


@_styled
def learning_curves(curves: pd.DataFrame, runs: pd.DataFrame, suite: str, colors: dict[str, str]) -> Figure | None:
    """Eval target metric and train loss against step, mean over seeds with a +-1 s.d. band."""
    chosen = reported_runs(runs[runs["suite"] == suite]) if len(runs) else runs
    if chosen.empty or curves.empty:
        return None
    # failed, incomplete and damaged runs stop early for reasons outside the optimizer: leave them out
    drawn = chosen[chosen["status"].isin(FINISHED_STATES)]
    data = curves[curves["run_id"].isin(set(drawn["run_id"]))]
    metric = next((m for m in chosen["target_metric"] if isinstance(m, str)), None)
    evals = data[(data["kind"] == "eval")] if metric and metric in data.columns else data.iloc[0:0]
    evals = evals.dropna(subset=[metric]) if metric else evals
    train = data[data["kind"] == "train"] if "loss" in data.columns else data.iloc[0:0]
    train = train.dropna(subset=["loss"]) if "loss" in train.columns else train
    if evals.empty and train.empty:
        return None
    fig = _figure(11, 3.8)
    ax_eval, ax_loss = fig.subplots(1, 2)
    if not evals.empty:
        _draw_lines(ax_eval, _bin_steps(evals, metric), metric, colors)
        targets = chosen["target_value"].dropna().unique()
        for target in targets:
            ax_eval.axhline(target, color="0.35", linestyle="--", linewidth=1)
        if len(targets):
            ax_eval.annotate("target", (0.01, targets[0]), xycoords=("axes fraction", "data"),
                             textcoords="offset points", xytext=(0, 3), fontsize="small", color="0.35")
        ax_eval.set(title=f"Eval {plot_label(metric)}", xlabel="step", ylabel=plot_label(metric))
    else:
        ax_eval.text(0.5, 0.5, "no eval records", ha="center", va="center", transform=ax_eval.transAxes)
    if not train.empty:
        binned = _bin_steps(train, "loss")
        _draw_lines(ax_loss, binned, "loss", colors)
        finite = binned["loss"].dropna()
        if len(finite):
            # a diverging run's last losses would squash every other curve: cap the axis
            top = min(finite.max(), np.percentile(finite, 99.5) * 1.5)
            if finite.min() > 0 and top / finite.min() > 30:
                ax_loss.set_yscale("log")
                _plain_log_ticks(ax_loss.yaxis)
            ax_loss.set_ylim(finite.min() * 0.9 if finite.min() > 0 else None, top * 1.05)
        ax_loss.set(title="Train loss", xlabel="step", ylabel="loss")
    else:
        ax_loss.text(0.5, 0.5, "no train records", ha="center", va="center", transform=ax_loss.transAxes)
    _legend(fig, ax_eval if ax_eval.get_legend_handles_labels()[0] else ax_loss)
    if ax_loss.get_legend() is not None:
        ax_loss.get_legend().remove()
    return fig


@_styled
def lr_sensitivity(runs: pd.DataFrame, suite: str, colors: dict[str, str]) -> Figure | None:
    """Final target metric against learning rate from the tuning runs (x marks diverged/failed lrs)."""
    tuning = runs[(runs["suite"] == suite) & (runs["protocol"] == "tuning")] if len(runs) else runs
    tuning = tuning[tuning["lr"].notna() & (tuning["lr"] > 0)] if len(tuning) else tuning
    if tuning.empty:
        return None
    metric = next((m for m in tuning["target_metric"] if isinstance(m, str)), "final metric")
    fig = _figure(8, 3.8)
    ax = fig.subplots()
    ax.set_xscale("log")
    lrs = sorted(tuning["lr"].unique())
    ax.set_xticks(lrs, [f"{lr:g}" for lr in lrs])
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    broken_any = False
    for optimizer, group in sorted(tuning.groupby("optimizer"), key=lambda item: str(item[0])):
        ok = group[(group["status"] == RunState.COMPLETED) & group["final_value"].notna()]
        color = colors.get(str(optimizer))
        if len(ok):
            sns.lineplot(data=ok, x="lr", y="final_value", ax=ax, color=color, marker="o", estimator="mean",
                         errorbar="sd", linewidth=_width(str(optimizer)), label=_label(str(optimizer)),
                         linestyle=_dashes(str(optimizer)))
        broken = group[group["status"].isin(BROKEN_STATES)]
        if len(broken):
            broken_any = True
            ax.scatter(broken["lr"], np.full(len(broken), 0.03), transform=ax.get_xaxis_transform(),
                       marker="x", color=color, s=50, label=None if len(ok) else _label(str(optimizer)))
    ax.set(title=f"Learning-rate sensitivity ({plot_label(suite)})", xlabel="learning rate (η₀)",
           ylabel=f"final {plot_label(metric)}")
    ax.set_xlim(lrs[0] / 2, lrs[-1] * 2)  # markers placed in axes coordinates do not widen the limits
    if broken_any:
        ax.annotate("× diverged or failed", (0.99, 0.08), xycoords="axes fraction", ha="right", fontsize="small")
    _legend(fig, ax)
    return fig


@_styled
def floor_vs_batch(sbv: pd.DataFrame, runs: pd.DataFrame, colors: dict[str, str]) -> Figure | None:
    """Gradient-norm floor at the best lr against batch size, log-log, one panel per problem."""
    summary = floor_summary(reported_records(sbv, runs))
    summary = summary[(summary["floor_mean"] > 0) & (summary["batch_size"] > 0)]
    if summary.empty:
        return None
    problems = sorted(summary["problem"].astype(str).unique())
    ncols = min(3, len(problems))
    nrows = math.ceil(len(problems) / ncols)
    fig = _figure(3.9 * ncols + 1.8, 3.4 * nrows)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    for ax, problem in zip(axes, problems):
        for optimizer, group in sorted(summary[summary["problem"].astype(str) == problem].groupby("optimizer"),
                                       key=lambda item: str(item[0])):
            group = group.sort_values("batch_size")
            mean = group["floor_mean"].to_numpy(float)
            # the range over unit seeds: a t-interval from two or three seeds would swamp a log axis
            low = np.where(np.isnan(group["floor_min"]), mean, group["floor_min"])
            high = np.where(np.isnan(group["floor_max"]), mean, group["floor_max"])
            ax.errorbar(group["batch_size"], mean, yerr=[mean - low, high - mean], marker="o",
                        color=colors.get(str(optimizer)), linewidth=_width(str(optimizer)), capsize=3,
                        linestyle=_dashes(str(optimizer)), label=_label(str(optimizer)))
        here = summary[summary["problem"].astype(str) == problem]
        measure = plot_label(here["measure"].iloc[0]).replace("_", " ")
        ax.set(xscale="log", yscale="log", title=plot_label(problem), xlabel="batch size", ylabel=f"floor of {measure}")
        batches = sorted(here["batch_size"].unique())
        ax.set_xticks(batches, [f"{b:g}" for b in batches])
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
        _plain_log_ticks(ax.yaxis)
    for ax in axes[len(problems):]:
        ax.set_visible(False)
    _legend(fig, axes[0])
    return fig


@_styled
def memory_bars(memory: pd.DataFrame, runs: pd.DataFrame, colors: dict[str, str]) -> Figure | None:
    """Optimizer state in bytes per parameter, per model, with the one- and two-slot fp32 levels."""
    summary = memory_summary(reported_records(memory, runs)).dropna(subset=["state_bytes_per_param"])
    if summary.empty:
        return None
    summary = summary.assign(family=summary["family"].astype(str).map(plot_label),
                             optimizer=summary["optimizer"].astype(str))
    order = sorted(summary["optimizer"].unique())
    fig = _figure(max(6.5, 1.2 + 0.55 * len(order) * summary["family"].nunique()), 3.8)
    ax = fig.subplots()
    sns.barplot(data=summary.assign(label=summary["optimizer"].map(_label)), x="family",
                y="state_bytes_per_param", hue="label", hue_order=[_label(o) for o in order],
                palette={_label(o): colors.get(o) for o in order}, ax=ax, errorbar=None, saturation=1)
    for level, text in ((4, "1 fp32 slot"), (8, "2 fp32 slots")):
        ax.axhline(level, color="0.4", linestyle=":", linewidth=1)
        ax.annotate(text, (1.0, level), xycoords=("axes fraction", "data"), ha="right", va="bottom",
                    fontsize="small", color="0.35")
    ax.set(title="Optimizer state per parameter", xlabel="model", ylabel="bytes per parameter")
    _legend(fig, ax)
    return fig


@_styled
def performance_profile(runs: pd.DataFrame, colors: dict[str, str]) -> Figure | None:
    """rho(tau): the fraction of suites on which each optimizer reaches the target within a factor
    tau of the best, by wall time and by steps; never reaching counts as infinitely slow."""
    panels = [(measure, target_costs(runs, measure)) for measure in ("time", "steps")]
    panels = [(m, c) for m, c in panels if not c.empty]
    if not panels:
        return None
    fig = _figure(11, 3.8)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (measure, costs) in zip(axes, panels):
        ratios = performance_ratios(costs)
        curve = profile_curve(ratios, tau_grid(ratios))
        for optimizer, group in sorted(curve.groupby("optimizer"), key=lambda item: str(item[0])):
            ax.step(group["tau"], group["fraction"], where="post", color=colors.get(str(optimizer)),
                    linewidth=_width(str(optimizer)), linestyle=_dashes(str(optimizer)), label=_label(str(optimizer)))
        ax.axvline(R_MAX, color="0.45", linestyle=":", linewidth=1)  # where the benchmark score's area ends
        ax.set(xscale="log", ylim=(-0.03, 1.03), xlabel="τ (factor of the best)",
               ylabel="fraction of suites",
               title=f"{'Wall time' if measure == 'time' else 'Steps'} to target ({len(costs)} suite(s))")
        _plain_log_ticks(ax.xaxis)
    _legend(fig, axes[0])
    return fig
