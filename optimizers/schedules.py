"""Learning-rate schedules, in one place: linear warmup, polynomial decay, step decay.

A schedule is a multiplier of each group's base lr as a function of the step index t (0-based,
the step about to be taken), applied with torch's LambdaLR so any torch optimizer follows it.

  warmup        t < W: (t + 1) / W
  poly decay    (1 - t / T) ** power       BERT's form: the decay runs over the whole run and
                                           warmup overrides it for t < W (Devlin et al. 2019)
  step decay    gamma ** (number of milestones <= t)   (ResNet SGD: /10 at epochs 30, 60, 80)
"""

from __future__ import annotations

import bisect
from dataclasses import asdict, dataclass, field

import torch

SCHEDULE_KINDS = ("constant", "poly", "step")


@dataclass(frozen=True)
class Schedule:
    kind: str = "constant"  # 'constant', 'poly' or 'step'
    total_steps: int = 1
    warmup_steps: int = 0
    power: float = 1.0  # poly: 1 (BERT) or 2 (the paper's ResNet-50 NIGT)
    milestones: tuple[int, ...] = field(default=())  # step: the steps at which lr is multiplied by gamma
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULE_KINDS:
            raise ValueError(f"invalid schedule kind {self.kind!r}: expected one of {SCHEDULE_KINDS}")
        if self.total_steps < 1 or self.warmup_steps < 0:
            raise ValueError(
                f"invalid schedule: total_steps={self.total_steps} (expected >= 1), "
                f"warmup_steps={self.warmup_steps} (expected >= 0)"
            )
        if self.power <= 0:
            raise ValueError(f"invalid schedule power={self.power}: expected > 0")
        if list(self.milestones) != sorted(self.milestones):
            raise ValueError(f"invalid schedule milestones={self.milestones}: expected increasing steps")

    def multiplier(self, t: int) -> float:
        if self.warmup_steps and t < self.warmup_steps:
            return (t + 1) / self.warmup_steps
        if self.kind == "poly":
            return max(0.0, 1.0 - t / self.total_steps) ** self.power
        if self.kind == "step":
            return self.gamma ** bisect.bisect_right(self.milestones, t)
        return 1.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["milestones"] = list(self.milestones)
        return d


def epochs_to_steps(epochs: float | list[float], steps_per_epoch: int) -> int | tuple[int, ...]:
    """Convert epoch counts (milestones, warmup) to optimizer steps at this run's batch size."""
    if isinstance(epochs, (list, tuple)):
        return tuple(int(round(e * steps_per_epoch)) for e in epochs)
    return int(round(epochs * steps_per_epoch))


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: Schedule) -> torch.optim.lr_scheduler.LambdaLR:
    """A LambdaLR that scales every param group's base lr by `schedule.multiplier(t)`."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule.multiplier)
