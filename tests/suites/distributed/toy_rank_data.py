"""The suite toy_rank_data for the catalog (see rank_suites.py)."""

from .rank_suites import RankOneHasOtherData

SUITE = RankOneHasOtherData()
