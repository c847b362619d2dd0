"""The suite toy_rank_failure for the catalog (see rank_suites.py)."""

from .rank_suites import RankOneFails

SUITE = RankOneFails()
