"""One color per optimizer for every figure, and which optimizers come from the paper.

Colors are assigned by the optimizer's position in the sorted list of ALL optimizers in the results,
so an optimizer has the same color in every figure of a report.
"""

from __future__ import annotations

from typing import Iterable

# The optimizers of "Momentum Improves Normalized SGD" (Cutkosky & Mehta, ICML 2020).
PAPER_OPTIMIZERS = frozenset({"nsgd", "nsgd_momentum", "nigt", "nigt_adaptive"})

# Okabe-Ito-like colorblind-safe colors first, then seaborn's 'dark' set for larger boards.
_BASE_COLORS = (
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#8C564B", "#F0E442",
    "#332288", "#882255", "#117733", "#999933", "#44AA99", "#AA4499", "#6B6B6B", "#000000",
)


def is_paper_optimizer(name: str, paper: str = "") -> bool:
    """True for the paper's own optimizers (by name, or by a recorded citation of the paper)."""
    return name in PAPER_OPTIMIZERS or "cutkosky" in (paper or "").lower()


def optimizer_colors(names: Iterable[str]) -> dict[str, str]:
    """A fixed color per optimizer name, keyed by sorted name (cycling past 16 optimizers)."""
    ordered = sorted({str(n) for n in names})
    return {name: _BASE_COLORS[i % len(_BASE_COLORS)] for i, name in enumerate(ordered)}


def plot_label(name: str) -> str:
    """A name made safe for matplotlib text: '$' would start mathtext and can fail to render."""
    return str(name).replace("$", r"\$")
