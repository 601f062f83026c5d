"""The optimiser and learning-rate scheduler of a run, built from ``fit``'s arguments: Adam over the
trainable parameters unless told otherwise, and a scheduler stepped once per epoch."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Union

import torch
from torch import nn

from .history import EpochRecord, score

SCHEDULERS = (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
OptimizerArg = Union[torch.optim.Optimizer, Callable[[Any], torch.optim.Optimizer], None]


def build_optimizer(model: nn.Module, optimizer: OptimizerArg, params: Iterable[Any] | None, lr: float) -> torch.optim.Optimizer:
    """``optimizer`` itself when an instance; else ``optimizer(trainable)``, or Adam with ``lr``."""
    if isinstance(optimizer, torch.optim.Optimizer):
        if params is not None:
            raise ValueError("params: an optimizer instance already holds its parameters; pass params or an instance, not both")
        return optimizer
    trainable = _trainable(model, params)
    if optimizer is None:
        return torch.optim.Adam(trainable, lr=lr)
    return optimizer(trainable)


def build_scheduler(scheduler: Any, optimizer: torch.optim.Optimizer) -> Any:
    """``scheduler`` itself when an instance (or ``None``); else the factory's ``scheduler(optimizer)``."""
    return scheduler if scheduler is None or isinstance(scheduler, SCHEDULERS) else scheduler(optimizer)


def step_scheduler(scheduler: Any, record: EpochRecord) -> None:
    """Step an epoch-wise scheduler; ``ReduceLROnPlateau`` watches the epoch's score."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(score(record))
    else:
        scheduler.step()


def _trainable(model: nn.Module, params: Iterable[Any] | None) -> list[Any]:
    """Parameters (or parameter groups) that require grad; frozen ones are left out."""
    if params is None:
        chosen: list[Any] = [p for p in model.parameters() if p.requires_grad]
    else:
        chosen = []
        for item in params:
            if isinstance(item, Mapping):
                group = {**item, "params": [p for p in _as_list(item["params"]) if p.requires_grad]}
                if group["params"]:
                    chosen.append(group)
            elif item.requires_grad:
                chosen.append(item)
    if not chosen:
        raise ValueError("nothing to train: every parameter given has requires_grad=False")
    return chosen


def _as_list(params: Any) -> list[torch.Tensor]:
    return [params] if isinstance(params, torch.Tensor) else list(params)
