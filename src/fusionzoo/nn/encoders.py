"""The course's convolutional feature extractor, written once and reused for every modality."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ShapeError
from .course import COURSE


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return (size, size)
    height, width = size
    return (int(height), int(width))


class ConvEncoder(nn.Module):
    """A stack of conv -> ReLU -> 2x2 max-pool stages, as in the course's ``Net``.

    Input ``(B, in_channels, H, W)``; output ``(B, widths[-1], H / 2**n, W / 2**n)`` with ``n`` the
    number of stages (pooling floors odd sizes). The course's RGB and XYZ branches are two instances.
    """

    def __init__(self, in_channels: int, widths: Sequence[int] = COURSE.branch_widths, kernel_size: int = COURSE.kernel_size):
        super().__init__()
        if in_channels < 1:
            raise ShapeError(f"in_channels must be at least 1, got {in_channels}")
        if not widths or any(w < 1 for w in widths):
            raise ShapeError(f"widths must be a non-empty list of positive ints, got {list(widths)}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            # An even kernel with 'same' padding would shift the feature maps by half a pixel.
            raise ShapeError(f"kernel_size must be a positive odd int, got {kernel_size}")
        self.in_channels = in_channels
        self.widths = tuple(int(w) for w in widths)
        self.kernel_size = kernel_size
        layers: list[nn.Module] = []
        channels = in_channels
        for width in self.widths:
            layers += [
                nn.Conv2d(channels, width, kernel_size, padding=kernel_size // 2),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            channels = width
        self.layers = nn.Sequential(*layers)

    def output_shape(self, input_size: int | Sequence[int]) -> tuple[int, int, int]:
        """The ``(C, H, W)`` this encoder produces for inputs of spatial size ``input_size``."""
        height, width = _pair(input_size)
        for _ in self.widths:
            height, width = height // 2, width // 2
        if height < 1 or width < 1:
            raise ShapeError(
                f"input size {_pair(input_size)} is too small for {len(self.widths)} pooling stages "
                f"(needs at least {2 ** len(self.widths)} pixels per side)"
            )
        return (self.widths[-1], height, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
