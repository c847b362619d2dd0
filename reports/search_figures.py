"""Figures of the budgeted search: the budget curve with the rank at each budget, and sensitivity."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import ticker
from matplotlib.figure import Figure

from nightbench.suites.outcomes import RunState

from .budget import budget_curves, trial_frame
from .figures import _figure, _label, _legend, _plain_log_ticks, _styled, _width
from .palette import plot_label

BUDGET_CAPTION = ("Left: the expected best validation metric after k trials in a random order of the trials that "
                  "ran (exact, without replacement). Right: each optimizer's rank at that budget (1 = best): where "
                  "lines cross, the ranking depends on the tuning budget.")
SENSITIVITY_CAPTION = ("Each tuning trial's validation metric against its learning rate; the number by a point is "
                       "the trial (0 = the default; the trials table lists every other value it drew). "
                       "× marks a diverged or failed trial.")


@_styled
def budget_curve(records: list[dict], suite: str, colors: dict[str, str]) -> Figure | None:
    curves = budget_curves([r for r in records if r.get("suite") == suite])
    if curves.empty:
        return None
    fig = _figure(10, 3.8)
    left, right = fig.subplots(1, 2)
    for optimizer, group in sorted(curves.groupby("optimizer"), key=lambda item: str(item[0])):
        color, width = colors.get(str(optimizer)), _width(str(optimizer))
        finite = group[np.isfinite(group["expected_best"])]
        left.plot(finite["k"], finite["expected_best"], marker="o", color=color, linewidth=width,
                  label=_label(str(optimizer)))
        right.plot(group["k"], group["rank"], marker="o", color=color, linewidth=width)
    metric = next((r.get("metric") for r in records if r.get("suite") == suite and r.get("metric")), "metric")
    left.set(title=f"Budget curve ({plot_label(suite)})", xlabel="trials (k)",
             ylabel=f"expected best {plot_label(str(metric))}")
    right.set(title="Rank at each budget", xlabel="trials (k)", ylabel="rank (1 = best)")
    right.invert_yaxis()
    for ax in (left, right):
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    right.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    _legend(fig, left)
    return fig


@_styled
def sensitivity(records: list[dict], suite: str, colors: dict[str, str]) -> Figure | None:
    trials = trial_frame([r for r in records if r.get("suite") == suite])
    trials = trials[pd.to_numeric(trials["lr"], errors="coerce") > 0] if len(trials) else trials
    if trials.empty:
        return None
    fig = _figure(8, 3.8)
    ax = fig.subplots()
    ax.set_xscale("log")
    broken_any = False
    for optimizer, group in sorted(trials.groupby("optimizer"), key=lambda item: str(item[0])):
        color = colors.get(str(optimizer))
        ok = group[group["value"].map(math.isfinite) & (group["status"] == RunState.COMPLETED)]
        if len(ok):
            sns.scatterplot(data=ok, x="lr", y="value", ax=ax, color=color, s=40, label=_label(str(optimizer)))
            for lr, value, trial in zip(ok["lr"], ok["value"], ok["trial"]):
                ax.annotate(str(trial), (lr, value), xytext=(3, 3), textcoords="offset points", fontsize="x-small",
                            color=color)
        broken = group.drop(ok.index)
        if len(broken):
            broken_any = True
            ax.scatter(broken["lr"], np.full(len(broken), 0.03), transform=ax.get_xaxis_transform(), marker="x",
                       color=color, s=50, label=None if len(ok) else _label(str(optimizer)))
    metric = str(trials["metric"].dropna().iloc[0]) if trials["metric"].notna().any() else "metric"
    ax.set(title=f"Sensitivity: each trial's metric against its lr ({plot_label(suite)})",
           xlabel="learning rate", ylabel=f"final {plot_label(metric)}")
    _plain_log_ticks(ax.xaxis)
    if broken_any:
        ax.annotate("× diverged or failed", (0.99, 0.08), xycoords="axes fraction", ha="right", fontsize="small")
    _legend(fig, ax)
    return fig
