"""The planner: the tuning grid's window around the default lr, which presets tune over the whole grid,
and the default board (the paper's set; optimizer sets are accepted)."""

from __future__ import annotations

import pytest

from nightbench.suites import leaderboard
from nightbench.suites.leaderboard.planner import BoardSettings
from tests.optimizers.builtins import MODERN, PAPER


def test_tuning_grid_window():
    grid = (1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    assert leaderboard.tuning_grid(grid, 1e-3, None) == list(grid)
    assert leaderboard.tuning_grid(grid, 1e-3, 10.0) == [1e-4, 1e-3, 1e-2]
    assert leaderboard.tuning_grid(grid, 2.0, 10.0) == [1.0, 2.0]  # off-grid default joins its neighbours
    assert leaderboard.tuning_grid(grid, 1e3, 10.0) == [1e3]  # nothing near: the default alone


@pytest.mark.parametrize("preset, expected", [("paper", None), ("small", leaderboard.LOCAL_TUNING_WINDOW),
                                              ("ci", leaderboard.LOCAL_TUNING_WINDOW)])
def test_paper_preset_tunes_over_the_whole_grid(preset, expected):
    assert leaderboard.tuning_window(preset, None) == expected
    assert leaderboard.tuning_window(preset, "full") is None


PAPER_SET, MODERN_SET = set(PAPER), set(MODERN)


def test_the_default_board_is_the_paper_set_and_sets_are_accepted():
    assert set(BoardSettings.create(suites=["bert_mlm"], preset="ci").optimizers) == PAPER_SET
    assert set(BoardSettings.create(suites=["bert_mlm"], optimizers=["modern"], preset="ci").optimizers) == MODERN_SET
