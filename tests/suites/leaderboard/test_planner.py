"""The planner's tuning grid: the window around the default lr, and which presets tune over the whole grid."""

from __future__ import annotations

import pytest

from nightbench.suites import leaderboard


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
