"""Per-channel means of a training set's inputs: the fill a model can record for an absent sensor
(``missing_fill``), so that a missing input reads as an average one rather than as zeros."""

from __future__ import annotations

import torch

from .placement import Source, as_source


def input_means(data: Source | torch.utils.data.Dataset, *, batch_size: int = 256) -> dict[str, list[float]]:
    """``{"rgb": [C values], "lidar": [4 values]}``: each input channel's mean over every sample and
    position of ``data`` (summed in float64, ``batch_size`` samples at a time), ready for
    ``fusionzoo.create(name, missing_fill=...)`` or ``model.set_missing_fill(...)``."""
    source = as_source(data, "data")
    if len(source) == 0:
        raise ValueError("data: no samples to average")
    sums: dict[str, torch.Tensor] = {}
    for index in torch.arange(len(source)).split(batch_size):
        rgb, xyza, _ = source.batch(index)
        for modality, x in (("rgb", rgb), ("lidar", xyza)):
            total = x.double().sum(dim=(0, 2, 3)).cpu()
            sums[modality] = sums[modality] + total if modality in sums else total
    rgb, xyza, _ = source.batch(torch.arange(1))
    counts = {"rgb": len(source) * rgb[0, 0].numel(), "lidar": len(source) * xyza[0, 0].numel()}
    return {m: (s / counts[m]).float().tolist() for m, s in sums.items()}
