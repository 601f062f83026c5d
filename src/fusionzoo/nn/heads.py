"""The course's fully connected regression head, written once and reused by every model."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ShapeError


class MLPHead(nn.Module):
    """Flatten, then Linear -> ReLU for each hidden width, then a final Linear.

    Input ``(B, *feature_shape)`` with ``prod(feature_shape) == in_features``; output
    ``(B, out_features)``. The course's heads (12800-1000-100-9, 18-90-9) are instances.
    """

    def __init__(self, in_features: int, hidden: Sequence[int], out_features: int):
        super().__init__()
        if in_features < 1 or out_features < 1 or any(h < 1 for h in hidden):
            raise ShapeError(
                f"MLPHead sizes must be positive: in={in_features}, hidden={list(hidden)}, out={out_features}"
            )
        self.in_features = in_features
        self.out_features = out_features
        layers: list[nn.Module] = [nn.Flatten()]
        features = in_features
        for width in hidden:
            layers += [nn.Linear(features, width), nn.ReLU()]
            features = width
        layers.append(nn.Linear(features, out_features))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
