"""A model's figures on a data set: ``evaluate`` for callers, ``validate`` for the trainer's pass
after each epoch (split over the processes of a torchrun group, every sample counted once)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..data.samples import Samples, TensorSamples
from ..devices import autocast_dtype, channels_last_for, eval_batch_for, resolve_device
from . import distributed
from .history import Evaluation
from .placement import Placement, Source, as_source, place

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def validate(
    model: Callable[..., torch.Tensor],
    source: Source,
    loss_fn: LossFn,
    batch_size: int,
    placement: Placement,
    group: distributed.Group = distributed.Group(),
) -> Evaluation:
    """The figures over ``source``; each process of ``group`` takes its own share of the samples
    and the sums are added over the processes, so every sample counts once."""
    device = placement.device
    index = group.shard_samples(len(source)).to(source.device)
    # Sums over many batches in float64, except on MPS, which has no float64.
    total = torch.float32 if device.type == "mps" else torch.float64
    loss_sum = torch.zeros((), dtype=total, device=device)
    distance_sum = torch.zeros((), dtype=total, device=device)
    objects = 0
    points = source.targets.shape[1] % 3 == 0
    with torch.inference_mode(), placement.autocast():
        for rgb, xyza, target in placement.batches(source, list(index.split(batch_size))):
            output = model(rgb, xyza).float()
            # Batch losses are means over their samples; weighting by size gives the mean over all.
            loss_sum += loss_fn(output, target).to(total) * len(target)
            if points:
                diff = (output - target).reshape(len(target), -1, 3)
                distance_sum += torch.linalg.vector_norm(diff, dim=-1).sum(dtype=total)
                objects += diff.shape[0] * diff.shape[1]
    counts = torch.tensor([objects, len(index)], dtype=total, device=device)
    sums = group.all_reduce_sum(torch.cat((torch.stack((loss_sum, distance_sum)), counts)))
    loss, distance, objects, samples = sums.tolist()  # the one host synchronisation
    return Evaluation(loss / samples, distance / objects if points else None, int(samples))


def evaluate(
    model: nn.Module,
    data: Samples | TensorSamples | torch.utils.data.Dataset,
    *,
    loss_fn: LossFn | None = None,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    channels_last: bool | None = None,
) -> Evaluation:
    """The mean loss (MSE by default) over every sample of ``data`` and the mean position error.

    The position error is the distance between predicted and true centre of each object (targets
    read as ``(B, K, 3)``), averaged over objects and samples; ``None`` when the target size is not
    a multiple of 3. ``device``: where to run (``None``: where the model is). ``batch_size`` and
    ``channels_last`` default to what measured fastest on that device (32 and on for the CPU, 256
    and off elsewhere). Leaves the model in eval mode.
    """
    if len(data) == 0:  # type: ignore[arg-type]
        raise ValueError("data: no samples to evaluate")
    device = _model_device(model) if device is None else resolve_device(device)
    dtype = autocast_dtype(device, precision)
    source = place(as_source(data, "data"), device, "data")
    model.to(device).eval()
    batch_size = eval_batch_for(device, batch_size, 32)  # 32: the course's training batch
    placement = Placement(device, dtype, channels_last_for(device, channels_last))
    return validate(model, source, loss_fn or nn.functional.mse_loss, batch_size, placement)


def _model_device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))
