"""Where the arithmetic runs: the samples on the device (moved once when they fit), the batches
drawn from them in the layout and precision the device runs fastest in.

One training step costs what the model's arithmetic costs: batches are built by tensor indexing on
the device, not assembled item by item on the host.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Union

import torch

from ..data.samples import Batch, Samples, TensorSamples
from ..devices import fits_on
from . import distributed

log = distributed.main_process_logger(__name__)

Source = Union[Samples, TensorSamples]


def as_source(data: Any, name: str) -> Source:
    """``data`` as stacked tensors: ``Samples``/``TensorSamples`` as they are, a map-style dataset of
    ``(rgb, xyza, target)`` stacked once; ``TypeError`` naming the argument ``name`` otherwise."""
    if isinstance(data, (Samples, TensorSamples)):
        return data
    if isinstance(data, torch.utils.data.Dataset):
        return TensorSamples.from_dataset(data)
    raise TypeError(f"{name}: expected fusionzoo.data.Samples or a torch Dataset of (rgb, xyza, target), got {type(data).__name__}")


def place(source: Source, device: torch.device, name: str) -> Source:
    """``source`` on ``device`` when it fits there; otherwise on the host, batches copied per step."""
    if fits_on(device, source.nbytes()):
        try:
            return source.to(device)
        except torch.cuda.OutOfMemoryError:
            pass
    log.info("%s: %.1f MB of samples do not fit on %s; keeping them on the host", name, source.nbytes() / 1e6, device)
    return source.to("cpu")


@dataclass(frozen=True)
class Placement:
    """How batches run: on ``device``, under autocast to ``dtype`` (``None``: plain fp32), with the
    images in ``channels_last`` memory layout or not."""

    device: torch.device
    dtype: torch.dtype | None
    channels_last: bool

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device.type, dtype=self.dtype) if self.dtype is not None else contextlib.nullcontext()

    def batches(self, source: Source, indices: list[torch.Tensor]) -> Iterator[Batch]:
        """One ``(rgb (B, C, H, W), xyza (B, 4, H, W), target (B, T))`` batch per ``(B,)`` index
        tensor of ``indices``, on the device."""
        for index in indices:
            rgb, xyza, target = (t.to(self.device, non_blocking=True) for t in source.batch(index))
            if self.channels_last:
                rgb = rgb.contiguous(memory_format=torch.channels_last)
                xyza = xyza.contiguous(memory_format=torch.channels_last)
            yield rgb, xyza, target
