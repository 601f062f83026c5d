"""The optimiser and learning-rate scheduler of a run, built from ``fit``'s arguments: Adam over the
trainable parameters unless told otherwise (AdamW with ``weight_decay``), and a scheduler stepped
once per epoch.

Weight decay is decoupled (AdamW: each step shrinks a weight by ``lr * weight_decay`` of itself,
apart from the gradient's adaptive step) and spares tensors of fewer than two dimensions, the
biases and the normalisations' scales and shifts, as nanoGPT and timm do: shrinking those limits no
product of weights, it only shifts or rescales features the next layer would re-learn.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Union

import torch
from torch import nn

from .history import EpochRecord, score

SCHEDULERS = (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
OptimizerArg = Union[torch.optim.Optimizer, Callable[[Any], torch.optim.Optimizer], None]


def build_optimizer(
    model: nn.Module, optimizer: OptimizerArg, params: Iterable[Any] | None, lr: float, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """``optimizer`` itself when an instance; else ``optimizer(trainable)``, or Adam with ``lr``
    (AdamW when ``weight_decay`` > 0, which then applies to the optimiser ``fit`` builds only)."""
    if weight_decay and optimizer is not None:
        raise ValueError("weight_decay: applies to the optimizer fit builds (AdamW); give your own optimizer its "
                         "weight decay instead, or leave weight_decay at 0")
    if isinstance(optimizer, torch.optim.Optimizer):
        if params is not None:
            raise ValueError("params: an optimizer instance already holds its parameters; pass params or an instance, not both")
        return optimizer
    trainable = _trainable(model, params)
    if optimizer is None:
        if weight_decay:
            return torch.optim.AdamW(_decay_groups(trainable, weight_decay), lr=lr, weight_decay=weight_decay)
        return torch.optim.Adam(trainable, lr=lr)
    return optimizer(trainable)


def check_weight_decay(weight_decay: float) -> float:
    """``weight_decay`` as a float of at least 0 (0: off); ``ValueError`` naming it otherwise."""
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float)) or not 0.0 <= float(weight_decay) < float("inf"):
        raise ValueError(f"weight_decay must be a finite number of at least 0 (0: off, the course's Adam), got {weight_decay!r}")
    return float(weight_decay)


def _decay_groups(trainable: list[Any], weight_decay: float) -> list[dict[str, Any]]:
    """``trainable`` (parameters, or parameter groups) as groups that decay the tensors of two or
    more dimensions and spare the rest; a group that sets its own ``weight_decay`` keeps it whole."""
    groups = trainable if isinstance(trainable[0], Mapping) else [{"params": trainable}]
    split: list[dict[str, Any]] = []
    for group in groups:
        if "weight_decay" in group:
            split.append(dict(group))
            continue
        decayed = [p for p in group["params"] if p.dim() >= 2]
        spared = [p for p in group["params"] if p.dim() < 2]
        split += [{**group, "params": ps, "weight_decay": wd} for ps, wd in ((decayed, weight_decay), (spared, 0.0)) if ps]
    return split


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
