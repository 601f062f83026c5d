"""Learning-rate schedules by name (``fit(schedule=..., warmup=...)``): each optimiser step's rate as a
function of the step alone, so a resumed run computes the very rates of one never stopped.

The rate is set before every optimiser step, not once per epoch: a cosine decay over 20 epochs
stepped per epoch would hold each rate for hundreds of steps. Each parameter group keeps its own
rate as the peak (``initial_lr``, the key torch's schedulers use), so parameter groups trained at
different rates keep their ratios. ``"constant"`` without warm-up sets nothing: the course's
protocol is untouched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .._names import unknown_name

SCHEDULES = ("constant", "cosine", "onecycle")
#: OneCycleLR's defaults: it starts at peak / 25, rises for 30% of the run, ends at start / 1e4.
ONECYCLE_START, ONECYCLE_END, ONECYCLE_RISE = 1 / 25, 1 / 25 / 1e4, 0.3


def check_schedule(schedule: str, warmup: float) -> tuple[str, float]:
    """``(schedule, warmup)`` checked: a name of ``SCHEDULES`` (``KeyError`` listing them) and a
    warm-up of at least 0 epochs (``ValueError`` naming ``warmup``)."""
    if schedule not in SCHEDULES:
        raise unknown_name("schedule", schedule, SCHEDULES)
    if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or not math.isfinite(warmup) or warmup < 0:
        raise ValueError(f"warmup must be a number of epochs of at least 0 (0: none), got {warmup!r}")
    return schedule, float(warmup)


@dataclass(frozen=True)
class Schedule:
    """The rate of every step of a run of ``total`` optimiser steps, as a factor of the peak rate.

    - ``constant``: 1 after a linear warm-up of ``warmup`` steps (from ``1 / warmup`` at step 0);
    - ``cosine``: the same warm-up, then half a cosine from 1 down towards 0 at step ``total``;
    - ``onecycle``: OneCycleLR's shape without its momentum cycle: from 1/25 up to 1 over
      ``warmup`` steps (30% of the run when 0) by half a cosine, then down to 1/25/1e4 at the last.
    """

    kind: str
    warmup: int
    total: int

    @classmethod
    def of(cls, kind: str, warmup_epochs: float, epochs: int, steps_per_epoch: int) -> Schedule | None:
        """The schedule of a run of ``epochs`` epochs of ``steps_per_epoch`` steps; ``None`` for a
        constant rate without warm-up (nothing to set)."""
        total = epochs * steps_per_epoch
        warmup = min(round(warmup_epochs * steps_per_epoch), total)
        if kind == "constant" and warmup == 0:
            return None
        if kind == "onecycle" and warmup == 0:
            warmup = max(1, round(ONECYCLE_RISE * total))
        return cls(kind, warmup, total)

    def factor(self, step: int) -> float:
        """The factor of the peak rate for optimiser step ``step`` (0 for the run's first)."""
        if self.kind == "onecycle":
            if step < self.warmup:
                return _cosine(ONECYCLE_START, 1.0, step / self.warmup)
            return _cosine(1.0, ONECYCLE_END, (step - self.warmup) / max(1, self.total - 1 - self.warmup))
        if step < self.warmup:
            return (step + 1) / self.warmup
        if self.kind == "cosine":
            return _cosine(1.0, 0.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return 1.0

    def apply(self, optimizer: torch.optim.Optimizer, step: int) -> None:
        """Set every parameter group's rate for optimiser step ``step``: its peak times ``factor``."""
        factor = self.factor(step)
        for group in optimizer.param_groups:
            group["lr"] = group["initial_lr"] * factor


def remember_peaks(optimizer: torch.optim.Optimizer) -> None:
    """Record each parameter group's rate as its peak (``initial_lr``) unless it holds one already
    (torch's schedulers write the same key; a resumed state brings its own)."""
    for group in optimizer.param_groups:
        group.setdefault("initial_lr", group["lr"])


def _cosine(start: float, end: float, progress: float) -> float:
    """Half a cosine from ``start`` (``progress`` 0) to ``end`` (``progress`` 1)."""
    return end + (start - end) * (1 + math.cos(math.pi * min(progress, 1.0))) / 2
