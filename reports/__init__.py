"""nightbench.reports: run directories -> pandas tables -> seaborn figures -> one HTML page.

    from nightbench.reports import build_report
    build_report("results", "report.html")

Reads only the files that runs write (config.json, metrics.jsonl, summary.json); never imports
the suites.
"""

from .claims import Claim, paper_claims
from .html import build_context, build_report, render
from .load import Results, find_run_dirs, load_results
from .palette import PAPER_OPTIMIZERS, optimizer_colors
from .profiles import performance_ratios, profile_curve, target_costs
from .stats import Interval, floor_summary, memory_summary, reported_runs, t_interval
from .tables import Table

__all__ = [
    "Claim", "Interval", "PAPER_OPTIMIZERS", "Results", "Table", "build_context", "build_report",
    "find_run_dirs", "floor_summary", "load_results", "memory_summary", "optimizer_colors",
    "paper_claims", "performance_ratios", "profile_curve", "reported_runs", "render", "t_interval",
    "target_costs",
]
