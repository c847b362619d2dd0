"""nightbench.reports."""
