"""The findings (Cutkosky & Mehta 2020, Sections 2-4), and the criteria on hand-made floors.

On the skewed quadratic at batch 1, ci preset, seed 0: nsgd parks at a floor near p whatever the lr;
nsgd_momentum and nigt end well below p and lower still at a 10x smaller lr. nsgd_momentum/nigt with
beta = 0 ARE nsgd, so they must fail the momentum check: that is how we know the check can fail.
"""

from __future__ import annotations

import math

import pytest

from nightbench.suites.small_batch_variance import findings
from nightbench.suites.small_batch_variance.presets import PRESETS

from .helpers import run


P = PRESETS["ci"]["skew_p"]

BATCH1_SWEEP = {"problems": ["skewed_quadratic"], "batch_sizes": [1]}  # ci lrs: run lr x {1, 0.1}


@pytest.mark.slow
def test_nsgd_stalls_near_p_at_batch_1_whatever_the_lr_and_drifts_on_the_flat_problem(tmp_path):
    _, records = run(tmp_path, "nsgd", problems=["skewed_flat", "skewed_quadratic"], batch_sizes=[1, 256])
    floors = findings.floors_by_lr(records, "skewed_quadratic", 1)
    assert sorted(floors) == pytest.approx([1e-3, 1e-2])
    assert findings.stalls_at_skew_floor(floors, P), floors
    assert not findings.keeps_shrinking(floors, P), floors
    # A large batch is the paper's remedy without momentum: the floor falls far below p.
    assert min(findings.floors_by_lr(records, "skewed_quadratic", 256).values()) < 0.25 * P
    # On the flat problem nsgd drifts at E[g/|g|] = 1 - 2p lr per step (the paper's Section 2 argument).
    for lr, drift in findings.floors_by_lr(records, "skewed_flat", 1).items():
        assert drift == pytest.approx(1 - 2 * P, abs=0.1), (lr, drift)


@pytest.mark.parametrize("optimizer", ["nsgd_momentum", "nigt"])
def test_momentum_keeps_shrinking_at_batch_1(tmp_path, optimizer):
    _, records = run(tmp_path, optimizer, **BATCH1_SWEEP)
    floors = findings.floors_by_lr(records, "skewed_quadratic", 1)
    assert findings.keeps_shrinking(floors, P), floors
    assert not findings.stalls_at_skew_floor(floors, P), floors


@pytest.mark.parametrize("optimizer", ["nsgd_momentum", "nigt"])
def test_momentum_check_fails_without_momentum(tmp_path, optimizer):
    """beta = 0 turns both into nsgd: the check that passes above must flag it."""
    _, records = run(tmp_path, optimizer, beta=0.0, **BATCH1_SWEEP)
    floors = findings.floors_by_lr(records, "skewed_quadratic", 1)
    verdict = findings.keeps_shrinking(floors, P)
    assert not verdict, floors
    assert "not below" in verdict.reason
    assert findings.stalls_at_skew_floor(floors, P), floors


def test_criteria_on_hand_made_floors():
    assert findings.stalls_at_skew_floor({1e-2: 0.19, 1e-3: 0.2}, 0.2)
    assert not findings.stalls_at_skew_floor({1e-2: 0.19, 1e-3: 0.05}, 0.2)  # shrank: not a stall
    assert not findings.stalls_at_skew_floor({1e-2: 0.19}, 0.2)  # one lr proves nothing
    assert findings.keeps_shrinking({1e-2: 0.08, 1e-3: 0.03}, 0.2)
    assert not findings.keeps_shrinking({1e-2: 0.03, 1e-3: 0.029}, 0.2)  # low but not falling with the lr
    assert not findings.keeps_shrinking({1e-2: 0.08, 1e-3: math.inf}, 0.2)  # a diverged unit


@pytest.mark.parametrize("per_problem, expected", [
    ({"skewed_noise": ["lower", "lower"]}, (True, ["skewed_noise"])),
    ({"skewed_noise": ["lower", "unclear"]}, (None, ["skewed_noise"])),
    ({"skewed_noise": ["lower", "higher"]}, (False, ["skewed_noise"])),
    ({"skewed_noise": []}, (None, ["skewed_noise"])),
    ({"skewed_noise": ["lower"], "mlp": ["higher"]}, (True, ["skewed_noise"])),  # the paper's example decides
    ({"mlp": ["lower"], "nonconvex": ["lower"]}, (True, ["mlp", "nonconvex"])),
    ({"mlp": ["lower"], "nonconvex": ["unclear"]}, (None, ["mlp", "nonconvex"])),
])
def test_momentum_rescue_rule(per_problem, expected):
    assert findings.momentum_rescue(per_problem) == expected
