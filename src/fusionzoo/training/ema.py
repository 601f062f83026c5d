"""An exponential moving average of the weights (``fit(ema=decay)``): what validation, the best
checkpoint and the returned model see, while the optimiser keeps stepping the live weights.

Why: late in a run each step moves the weights along the noise of one batch; their running average
sits nearer the middle of the minimum the steps wander around, and usually generalises better.

The average of each parameter is kept in the optimiser's own state for that parameter, under
``"ema"``, beside Adam's moments: the training state stores and restores it with them, so a
resumed run continues the very average of a run never stopped. At the end of every epoch the model
and its average trade places (``swap``): the model then holds the average for validation and the
run folder's files, and the live weights wait in the optimiser's state until the next epoch's first
step trades them back. A state file is written at that point, so its model tensors are the average
and its ``"ema"`` tensors the live weights; a resume starts swapped.

A parameter the optimiser holds no state for has never been stepped (frozen, or unused so far): it
equals its own average and is left alone. Buffers (``BatchNorm``'s running statistics) are the live
model's, not averaged.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

KEY = "ema"
#: The decay in force at step n is at most (1 + n) / (10 + n) (TensorFlow's ExponentialMovingAverage
#: with ``num_updates``), so the average is not held near the first steps' weights.
_RAMP = 10


def check_decay(decay: float) -> float:
    """``decay`` as a float in [0, 1) (0: off); ``ValueError`` naming ``ema`` otherwise."""
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 <= float(decay) < 1.0:
        raise ValueError(f"ema must be a decay in [0, 1), e.g. 0.999 (0: off, the course's protocol), got {decay!r}")
    return float(decay)


class WeightAverage:
    """The moving average of ``optimizer``'s parameters with ``decay`` per step; ``swapped``: whether
    the parameters hold the average now (and the live weights sit in the optimiser's state)."""

    def __init__(self, optimizer: torch.optim.Optimizer, decay: float, swapped: bool = False):
        self.optimizer = optimizer
        self.decay = decay
        self.swapped = swapped

    def _pairs(self) -> Iterator[tuple[torch.Tensor, dict[str, Any]]]:
        """``(parameter, its optimiser state)`` for every parameter that has a state."""
        for group in self.optimizer.param_groups:
            for p in group["params"]:
                state = self.optimizer.state.get(p)
                if state:
                    yield p, state

    @torch.no_grad()
    def update(self, step: int) -> None:
        """Fold the live weights after optimiser step ``step`` (0 for the run's first) into the
        average: ``average += (1 - d) (weights - average)``, ``d = min(decay, (1 + step) / (10 + step))``.
        A parameter's average starts as its weights after its first step."""
        if self.swapped:
            raise RuntimeError("the average is in the model; swap it back before training")
        d = min(self.decay, (1 + step) / (_RAMP + step))
        for p, state in self._pairs():
            average = state.get(KEY)
            if average is None:
                state[KEY] = p.detach().clone()
            else:
                average.lerp_(p.detach(), 1 - d)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange every parameter's values with its average's, in place (the model keeps its
        tensors and their memory layout). ``ValueError`` if the optimiser keeps no state in which
        the average could live (SGD without momentum), found at the first epoch's end."""
        swapped = 0
        for p, state in self._pairs():
            average = state.get(KEY)
            if average is not None:
                live = p.detach().clone()
                p.copy_(average)
                average.copy_(live)
                swapped += 1
        if not swapped:
            raise ValueError(
                f"ema: {type(self.optimizer).__name__} keeps no per-parameter state, where the average is kept; "
                "use fit's own optimiser (Adam or AdamW), one with state (SGD with momentum), or ema=0"
            )
        self.swapped = not self.swapped
