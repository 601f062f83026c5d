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

    ``dropout`` > 0 zeroes each hidden unit's activation with that probability while training
    (scaling the others by ``1 / (1 - dropout)``), a regulariser the course's heads lack. It sits
    with the ReLU at the ReLU's index, so the weights keep their names (``layers.1``, ``layers.3``,
    ...) and load into a head with or without it; it adds no weights.
    """

    def __init__(self, in_features: int, hidden: Sequence[int], out_features: int, dropout: float = 0.0):
        super().__init__()
        if in_features < 1 or out_features < 1 or any(h < 1 for h in hidden):
            raise ShapeError(
                f"MLPHead sizes must be positive: in={in_features}, hidden={list(hidden)}, out={out_features}"
            )
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"head_dropout must be a probability in [0, 1) (0: none, the course's head), got {dropout!r}")
        self.in_features = in_features
        self.out_features = out_features
        layers: list[nn.Module] = [nn.Flatten()]
        features = in_features
        for width in hidden:
            activation = nn.Sequential(nn.ReLU(), nn.Dropout(dropout)) if dropout else nn.ReLU()
            layers += [nn.Linear(features, width), activation]
            features = width
        layers.append(nn.Linear(features, out_features))
        self.layers = nn.Sequential(*layers)

    @property
    def output_layer(self) -> nn.Linear:
        """The final ``Linear``: the one layer whose size is the number of outputs."""
        return self.layers[-1]

    def reset(self, out_features: int) -> None:
        """Replace the output layer by a freshly initialised ``Linear`` with ``out_features`` outputs,
        under the same name, so the rest of the head (and its trained weights) stays as it is."""
        if isinstance(out_features, bool) or not isinstance(out_features, int) or out_features < 1:
            raise ShapeError(f"num_outputs must be a positive int, got {out_features!r}")
        last = self.output_layer
        self.layers[-1] = nn.Linear(last.in_features, out_features, device=last.weight.device, dtype=last.weight.dtype)
        self.out_features = out_features

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """``(B, *feature_shape) -> (B, out_features)``; with ``pre_logits``, the activations the output
        layer reads, ``(B, hidden[-1])`` (the flattened input when there is no hidden layer)."""
        return self.layers[:-1](x) if pre_logits else self.layers(x)
