"""The parameter-free operators: the course's concatenation and matrix product, and the
element-wise sum and product it mentions. Each merges per-sample shapes as its docstring says."""

from __future__ import annotations

import torch

from ...errors import ShapeError
from .base import Fusion, Shape, register_fusion


@register_fusion("concat")
class Concat(Fusion):
    """Concatenate along the channel (first feature) axis: ``(C_i, *S) -> (sum C_i, *S)``."""

    def infer_shape(self, shapes: tuple[Shape, ...]) -> Shape:
        rests = {s[1:] for s in shapes}
        if len(rests) != 1:
            raise ShapeError(f"concat fusion needs equal shapes after the channel axis, got {list(shapes)}")
        return (sum(s[0] for s in shapes), *shapes[0][1:])

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        return torch.cat(xs, dim=1)


@register_fusion("sum")
class Sum(Fusion):
    """Element-wise sum of equally shaped inputs: ``(*S), (*S) -> (*S)``."""

    def infer_shape(self, shapes: tuple[Shape, ...]) -> Shape:
        return self._require_equal(shapes)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out


@register_fusion("hadamard")
class Hadamard(Fusion):
    """Element-wise (Hadamard) product of equally shaped inputs: ``(*S), (*S) -> (*S)``."""

    def infer_shape(self, shapes: tuple[Shape, ...]) -> Shape:
        return self._require_equal(shapes)

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out


@register_fusion("matmul")
class MatMul(Fusion):
    """The course's fusion: per-channel matrix product ``(C, H, K) @ (C, K, W) -> (C, H, W)``.

    With the course's square 8x8 maps this is ``torch.matmul(x_rgb, x_xyz)``, which lets every row of
    one modality's map meet every column of the other's.
    """

    def infer_shape(self, shapes: tuple[Shape, ...]) -> Shape:
        self._require_two(shapes)
        (ca, ha, wa), (cb, hb, wb) = (self._map(s) for s in shapes)
        if ca != cb:
            raise ShapeError(f"matmul fusion needs the same channel count on both inputs, got {ca} and {cb}")
        if wa != hb:
            raise ShapeError(
                f"matmul fusion multiplies each channel's map as a matrix, so the first input's width "
                f"must equal the second's height; got maps {ha}x{wa} and {hb}x{wb}"
            )
        return (ca, ha, wb)

    def _map(self, shape: Shape) -> Shape:
        if len(shape) != 3:
            raise ShapeError(f"matmul fusion works on (C, H, W) feature maps, got shape {shape}")
        return shape

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)
