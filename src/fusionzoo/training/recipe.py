"""The record a run's files carry: what the weights scored, how they were trained, what they take.

``RunRecipe`` is what ``fit`` knows before the first epoch and no state file needs for resuming:
where the data came from (the ``source`` that ``ReplicatorDataset`` and ``course_splits`` give
their samples; ``"unrecorded"`` for data without one), the epochs asked for, the device kind, the
loss and the input contract the data imply. ``record_at`` joins it with the run's progress into
the ``Record`` that ``last``, ``best`` and ``state.safetensors`` store (``fusionzoo.weights.record``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from .._version import __version__
from ..data.samples import Samples, TensorSamples
from ..weights.record import RECORD_FORMAT, Record, data_config
from .progress import Progress

UNRECORDED = "unrecorded"


@dataclass(frozen=True)
class RunRecipe:
    """What a run's record says beyond its state's ``Recipe`` (see the module)."""

    data: Any
    split: Any
    epochs: int
    device: str
    loss: str
    optimizer: str
    data_config: dict[str, Any] | None

    @classmethod
    def of(cls, train: Any, valid: Any, *, epochs: int, device: torch.device, loss_fn: Any, optimizer: Any,
           weight_decay: float = 0.0) -> RunRecipe:
        """The recipe of a run of ``epochs`` epochs on ``train``/``valid`` (``fit``'s arguments) on ``device``."""
        train_source, valid_source = _source(train), _source(valid)
        if train_source is None:
            data: Any = UNRECORDED
        elif valid_source is None or valid_source.get("dataset") == train_source.get("dataset"):
            data = train_source.get("dataset", UNRECORDED)
        else:
            data = {"train": train_source.get("dataset", UNRECORDED), "valid": valid_source.get("dataset", UNRECORDED)}
        split = {"train": _part(train_source), "valid": _part(valid_source) if valid is not None else None}
        loss = "mse" if loss_fn is None else getattr(loss_fn, "__name__", type(loss_fn).__name__)
        return cls(data, split, epochs, device.type, loss, _optimizer_name(optimizer, weight_decay), _contract(train))

    def record_at(self, progress: Progress) -> Record:
        """The record of the weights after ``progress.epoch``: that epoch's figures, and the recipe."""
        history, recipe = progress.history, progress.recipe
        epoch = history.epochs[progress.epoch - 1]
        valid_key = "valid_mse" if self.loss in ("mse", "mse_loss") else "valid_loss"
        metrics = {"epoch": epoch.epoch, "best_epoch": history.best_epoch, "train_loss": epoch.train_loss,
                   valid_key: epoch.valid_loss, "position_error": epoch.position_error}
        metrics = {k: v for k, v in metrics.items() if v is not None and not (isinstance(v, float) and not math.isfinite(v))}
        return Record(
            metrics=metrics,
            recipe={
                "format": RECORD_FORMAT, "data": self.data, "split": self.split, "epochs": self.epochs,
                "lr": recipe.lr, "batch_size": recipe.batch_size, "precision": recipe.precision,
                "device": self.device, "world_size": recipe.world_size, "seed": recipe.seed, "loss": self.loss,
                "optimizer": self.optimizer, "modality_dropout": recipe.modality_dropout,
                "weight_decay": recipe.weight_decay, "mirror": recipe.mirror, "schedule": recipe.schedule,
                "warmup": recipe.warmup, "ema": recipe.ema,
                "torch": torch.__version__, "fusionzoo": __version__,
            },
            data_config=self.data_config,
        )


def _optimizer_name(optimizer: Any, weight_decay: float) -> str:
    """``"adam"`` (the course's), ``"adamw"`` (``fit``'s with weight decay) or ``"given"``."""
    if optimizer is not None:
        return "given"
    return "adamw" if weight_decay else "adam"


def _source(samples: Any) -> dict[str, Any] | None:
    source = getattr(samples, "source", None)
    return source if isinstance(source, dict) else None


def _part(source: dict[str, Any] | None) -> Any:
    """One split part in the recipe: which rows of the dataset (and of those, how many a subset took)."""
    if source is None:
        return UNRECORDED
    part = dict(source.get("split") or {"name": "whole dataset"})
    if source.get("subset"):
        part["subset"] = source["subset"]
    return part


def _contract(train: Any) -> dict[str, Any] | None:
    """The input contract ``train`` implies: its shapes, and for ``Samples`` the LiDAR grid's angles."""
    if isinstance(train, Samples):
        degrees = [(math.degrees(float(a[0])), math.degrees(float(a[-1]))) for a in (train.azimuth, train.zenith)]
        return data_config(tuple(train.rgb.shape[1:]), (4, *train.depth.shape[1:]), int(train.targets.shape[1]),
                           azimuth_deg=degrees[0], zenith_deg=degrees[1])
    if isinstance(train, TensorSamples):
        return data_config(tuple(train.rgb.shape[1:]), tuple(train.xyza.shape[1:]), int(train.targets.shape[1]),
                           rgb_from="given as float tensors")
    try:
        rgb, xyza, target = train[0]
        return data_config(tuple(rgb.shape), tuple(xyza.shape), int(torch.as_tensor(target).numel()),
                           rgb_from="given by the dataset")
    except Exception:  # noqa: BLE001  (a dataset of another form: fit's own checks report it)
        return None
