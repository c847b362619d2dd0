"""nightbench.reports: run directories -> pandas tables -> seaborn figures -> one HTML page.

    from nightbench.reports import build_report
    build_report("results", "report.html")

Reads only the files a board writes (each run's config.json, metrics.jsonl, summary.json and the
tuning records), at the paths `nightbench.suites.layout` gives; of the suites it imports only that
leaf module and, for the momentum-rescue verdict, small_batch_variance.findings.
"""

from .claims import Claim, paper_claims
from .differences import Difference, compare_seeds
from .html import build_context, build_report, render
from .load import Results, ResultsNotFoundError, find_run_dirs, load_results
from .output import ReportOutputError, check_output_path
from .palette import PAPER_OPTIMIZERS, optimizer_colors
from .profiles import benchmark_scores, performance_ratios, profile_curve, target_costs
from .stats import Interval, floor_summary, memory_summary, reported_runs, seed_interval, t_interval
from .tables import Table

__all__ = [
    "Claim", "Difference", "Interval", "PAPER_OPTIMIZERS", "ReportOutputError", "Results", "ResultsNotFoundError",
    "Table", "benchmark_scores", "build_context", "build_report", "check_output_path", "compare_seeds",
    "find_run_dirs", "floor_summary", "load_results", "memory_summary", "optimizer_colors", "paper_claims",
    "performance_ratios", "profile_curve", "reported_runs", "render", "seed_interval", "t_interval",
    "target_costs",
]
