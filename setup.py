"""Package discovery for pyproject.toml (which holds everything else).

optimizers/, suites/ and reports/ install as nightbench.optimizers, nightbench.suites and
nightbench.reports; every package folder below them is found here, so adding a suite folder
needs no list edit.
"""

from setuptools import find_packages, setup

ROOTS = ("optimizers", "suites", "reports")
setup(packages=[f"nightbench.{name}" for name in find_packages(include=[f"{root}*" for root in ROOTS])])
