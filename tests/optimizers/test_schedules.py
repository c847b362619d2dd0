"""Schedules: linear warmup, polynomial decay (power 1 and 2), step decay, and the ResNet SGD baseline.

Expected values are written from the definitions in the paper's recipes, not from the module.
"""

from __future__ import annotations

import pytest
import torch

from nightbench.optimizers import Schedule, build_scheduler, create, epochs_to_steps


def lrs_seen_by_steps(schedule: Schedule, base_lr: float, steps: int) -> list[float]:
    """The lr each optimizer step uses, driving torch's scheduler the usual way (step, then sched)."""
    p = torch.nn.Parameter(torch.zeros(2, 2))
    optimizer = torch.optim.SGD([p], lr=base_lr)
    scheduler = build_scheduler(optimizer, schedule)
    seen = []
    for _ in range(steps):
        seen.append(optimizer.param_groups[0]["lr"])
        p.grad = torch.zeros(2, 2)
        optimizer.step()
        scheduler.step()
    return seen


def test_linear_warmup_reaches_the_base_lr_at_the_last_warmup_step():
    seen = lrs_seen_by_steps(Schedule("constant", total_steps=10, warmup_steps=4), 2.0, 10)
    assert seen == pytest.approx([0.5, 1.0, 1.5, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0])


@pytest.mark.parametrize("power", [1.0, 2.0])
def test_polynomial_decay_without_warmup(power):
    seen = lrs_seen_by_steps(Schedule("poly", total_steps=8, power=power), 1.0, 8)
    # BERT: eta_0 (1 - t/T);  the paper's ResNet-50 NIGT: eta_0 (1 - t/T)^2
    expected = [(1 - t / 8) ** power for t in range(8)]
    assert seen == pytest.approx(expected)
    assert seen[4] == pytest.approx(0.5 if power == 1 else 0.25)


def test_polynomial_decay_after_warmup_and_past_the_end():
    schedule = Schedule("poly", total_steps=10, warmup_steps=2, power=2.0)
    assert [schedule.multiplier(t) for t in (0, 1)] == pytest.approx([0.5, 1.0])  # warmup overrides
    assert schedule.multiplier(2) == pytest.approx(0.64)  # (1 - 2/10)^2: decay counts from step 0
    assert schedule.multiplier(10) == 0.0 and schedule.multiplier(15) == 0.0  # clamped, never negative


def test_step_decay_multiplies_by_gamma_at_each_milestone():
    schedule = Schedule("step", total_steps=100, milestones=(3, 6), gamma=0.5)
    assert [schedule.multiplier(t) for t in range(8)] == pytest.approx(
        [1, 1, 1, 0.5, 0.5, 0.5, 0.25, 0.25])


def test_the_resnet_sgd_baseline_schedule():
    """SGD momentum 0.9: 5 warmup epochs up to 0.4, divided by 10 at epochs 30, 60 and 80 (of 90)."""
    steps_per_epoch = 7
    schedule = Schedule(
        "step",
        total_steps=epochs_to_steps(90, steps_per_epoch),
        warmup_steps=epochs_to_steps(5, steps_per_epoch),
        milestones=epochs_to_steps([30, 60, 80], steps_per_epoch),
        gamma=0.1,
    )
    assert schedule.warmup_steps == 35 and schedule.milestones == (210, 420, 560)
    model = torch.nn.Linear(3, 2)
    optimizer = create("sgd", model, lr=0.4, momentum=0.9)
    scheduler = build_scheduler(optimizer, schedule)
    seen = []
    for _ in range(90 * steps_per_epoch):
        seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()

    def at(epoch: int, step_in_epoch: int = 0) -> float:
        lr, other = seen[epoch * steps_per_epoch + step_in_epoch]
        assert lr == other  # excluded tensors follow the same schedule
        return lr

    assert at(0) == pytest.approx(0.4 / 35)
    assert at(2, 3) == pytest.approx(0.4 * 18 / 35)
    assert at(4, 6) == pytest.approx(0.4)  # the last warmup step reaches the peak
    assert at(5) == pytest.approx(0.4)
    assert at(29, 6) == pytest.approx(0.4)
    assert at(30) == pytest.approx(0.04)
    assert at(59, 6) == pytest.approx(0.04)
    assert at(60) == pytest.approx(0.004)
    assert at(80) == pytest.approx(0.0004)
    assert at(89, 6) == pytest.approx(0.0004)


def test_epochs_to_steps_rounds_fractions_and_keeps_lists():
    assert epochs_to_steps(2.5, 10) == 25
    assert epochs_to_steps(0.3333, 3) == 1
    assert epochs_to_steps([1, 2.5], 4) == (4, 10)


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        (dict(kind="cosine"), "kind 'cosine'.*'constant', 'poly', 'step'"),
        (dict(total_steps=0), "total_steps=0 \\(expected >= 1\\)"),
        (dict(warmup_steps=-1), "warmup_steps=-1 \\(expected >= 0\\)"),
        (dict(power=0.0), "power=0.0: expected > 0"),
        (dict(kind="step", milestones=(5, 3)), "milestones=\\(5, 3\\): expected increasing"),
    ],
)
def test_invalid_schedules_fail_clearly(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        Schedule(**kwargs)


def test_to_dict_is_json_friendly():
    d = Schedule("step", total_steps=9, milestones=(3,)).to_dict()
    assert d["milestones"] == [3] and d["kind"] == "step"
