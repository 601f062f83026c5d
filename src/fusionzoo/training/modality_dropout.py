"""Modality dropout: during training, a sample loses one whole input (the camera or the LiDAR, never
both) with probability ``p``, replaced by what the model reads for an absent sensor.

Why: a fusion model trained only on complete pairs may lean on one sensor so hard that it fails
when that sensor does; dropping a whole input now and then teaches it to answer from either alone.

Which samples lose what is decided per sample from a generator keyed by (seed, epoch) over the
training set's sample indices, not over a process's slice of a batch: the decision for sample ``i``
in epoch ``e`` is the same on one process or on several, and on a resumed run. ``p = 0`` draws
nothing and touches no batch, so the course's protocol is unchanged bit for bit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import torch
from torch import nn


def check_probability(p: float) -> float:
    """``p`` as a float in [0, 1]; ``ValueError`` naming ``modality_dropout`` otherwise."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"modality_dropout must be a probability in [0, 1] (0: off, the course's protocol), got {p!r}")
    return float(p)


@dataclass(frozen=True)
class DropoutPlan:
    """One epoch's decisions: ``rgb``/``lidar`` ``(N,)`` bool over the training set's sample indices,
    True where that sample loses that input; never both for one sample."""

    rgb: torch.Tensor
    lidar: torch.Tensor

    @classmethod
    def draw(cls, seed: int, epoch: int, count: int, p: float) -> DropoutPlan:
        """The plan of epoch ``epoch`` for ``count`` samples: each loses an input with probability
        ``p``, the camera or the LiDAR with equal odds. A function of (seed, epoch, p, count) only.
        Kept on the host, where the batches' indices are: see ``apply``."""
        digest = hashlib.sha256(f"fusionzoo-modality-dropout:{seed}:{epoch}".encode()).digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
        dropped = torch.rand(count, generator=generator) < p
        camera = torch.rand(count, generator=generator) < 0.5
        return cls(dropped & camera, dropped & ~camera)

    def apply(self, model: nn.Module, index: torch.Tensor, rgb: torch.Tensor, xyza: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch of samples ``index`` ``(B,)`` with each dropped input replaced by the model's
        fill for it (``model.fill_missing``: its ``missing_fill`` policy; zeros for a module without
        one). ``rgb`` ``(B, C, S, S)`` and ``xyza`` ``(B, 4, H, W)`` are not modified."""
        index = index.cpu()
        return (_replace(model, "rgb", rgb, self.rgb[index]), _replace(model, "xyza", xyza, self.lidar[index]))


def _replace(model: nn.Module, arg: str, x: torch.Tensor, dropped: torch.Tensor) -> torch.Tensor:
    # ``dropped`` is on the host: asking it, and copying it without waiting, keeps the host from
    # waiting for the device every step.
    if not dropped.any():
        return x
    dropped = dropped.to(x.device, non_blocking=True)
    fill_missing = getattr(model, "fill_missing", None)
    reads = arg in getattr(model, "input_shapes", {arg: None})
    if fill_missing is not None and reads:
        fill = fill_missing(arg, len(x), device=x.device, dtype=x.dtype)
    else:  # an input the model ignores, or a module without a policy: zeros
        fill = torch.zeros_like(x)
    return torch.where(dropped.view(-1, 1, 1, 1), fill, x)
