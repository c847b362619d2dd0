"""nightbench.suites."""
