"""Learned operators beyond the course: FiLM, gated units, low-rank bilinear pooling, cross-attention
and squeeze-and-excitation. Each works on feature maps ``(C, H, W)`` and, unless it says
otherwise, on vectors ``(F,)`` too: a 1x1 convolution is a ``Linear`` over the channel axis."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ...errors import ShapeError
from .base import Fusion, Shape, register_fusion


class Pointwise(nn.Linear):
    """A 1x1 convolution for inputs of any rank: a ``Linear`` over the channel axis.

    ``(B, in_features, *S) -> (B, out_features, *S)``; on vectors ``(B, F)`` it is a plain ``Linear``.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.movedim(1, -1)).movedim(-1, 1)


def _aligned(fusion: Fusion, shapes: tuple[Shape, ...]) -> tuple[int, int]:
    """Check two inputs that pair position by position; return their channel counts."""
    fusion._require_two(shapes)
    if shapes[0][1:] != shapes[1][1:]:
        raise ShapeError(
            f"{fusion.name} fusion pairs the inputs position by position, so they need equal shapes after "
            f"the channel axis; got {list(shapes)}"
        )
    return shapes[0][0], shapes[1][0]


def _positive(fusion: str, option: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{fusion} fusion: {option} must be a positive int, got {value!r}")
    return value


def _pool(x: torch.Tensor) -> torch.Tensor:
    """Mean over every position: ``(B, C, *S) -> (B, C)``; vectors pass through."""
    return x.reshape(x.shape[0], x.shape[1], -1).mean(dim=2)


def _per_channel(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """View ``(B, C)`` so it broadcasts over the positions of ``like`` ``(B, C, *S)``."""
    return v.view(*v.shape, *([1] * (like.dim() - 2)))


@register_fusion("film")
class FiLM(Fusion):
    """Feature-wise linear modulation: the second input scales and shifts the first's channels.

    ``gamma, beta = split(W mean_S(x_2) + b)``, ``out = (1 + gamma) * x_1 + beta`` with ``gamma`` and
    ``beta`` of size ``C_1``, broadcast over positions. Predicting ``1 + gamma`` starts the operator
    near the identity on ``x_1``. Shapes ``(C_1, *S_1), (C_2, *S_2) -> (C_1, *S_1)``: the inputs need
    not share positions. Parameters ``2 C_1 (C_2 + 1)``.

    Reference: Perez et al., "FiLM: Visual Reasoning with a General Conditioning Layer", AAAI 2018.
    """

    def __init__(self, shapes: Sequence[Sequence[int]]):
        super().__init__(shapes)
        (c1, *_), (c2, *_) = self.in_shapes
        self.generator = nn.Linear(c2, 2 * c1)

    def infer_shape(self, shapes: tuple[Shape, ...]) -> Shape:
        self._require_two(shapes)
        return shapes[0]

    def forward(self, x: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.generator(_pool(condition)).chunk(2, dim=1)
        return (1 + _per_channel(gamma, x)) * x + _per_channel(beta, x)


@register_fusion("gated")
class Gated(Fusion):
    """Gated multimodal unit: a learned gate picks, per channel and position, between the inputs.

    ``h_i = tanh(W_i x_i)``, ``z = sigmoid(W_z [x_1; x_2])``, ``out = z * h_1 + (1 - z) * h_2``, with
    every ``W`` a bias-free 1x1 convolution to ``C_1`` channels, as in the paper's equations.
    Shapes ``(C_1, *S), (C_2, *S) -> (C_1, *S)``. Parameters ``2 C_1 (C_1 + C_2)``.

    Reference: Arevalo et al., "Gated Multimodal Units for Information Fusion", ICLR workshop 2017.
    """

    def __init__(self, shapes: Sequence[Sequence[int]]):
        super().__init__(shapes)
        c1, c2 = _aligned(self, self.in_shapes)
        self.project = nn.ModuleList([Pointwise(c1, c1, bias=False), Pointwise(c2, c1, bias=False)])
        self.gate = Pointwise(c1 + c2, c1, bias=False)

    def infer_shape(self, shapes: tuple[Shape, ...]) -> Shape:
        _aligned(self, shapes)
        return shapes[0]

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        z = torch.sigmoid(self.gate(torch.cat((a, b), dim=1)))
        return z * torch.tanh(self.project[0](a)) + (1 - z) * torch.tanh(self.project[1](b))


@register_fusion("bilinear")
class Bilinear(Fusion):
    """Low-rank bilinear pooling per position (MLB): project both inputs, multiply, project back.

    ``out = P (tanh(U x_1 + b_U) * tanh(V x_2 + b_V)) + b_P``, with ``U``, ``V`` 1x1 convolutions to
    ``rank`` channels and ``P`` one back to ``C_1``. Shapes ``(C_1, *S), (C_2, *S) -> (C_1, *S)``.
    Parameters ``rank (C_1 + C_2 + 2) + C_1 (rank + 1)``.

    Reference: Kim et al., "Hadamard Product for Low-rank Bilinear Pooling", ICLR 2017.
    """

    def __init__(self, shapes: Sequence[Sequence[int]], rank: int = 64):
        super().__init__(shapes)
        c1, c2 = _aligned(self, self.in_shapes)
        self.rank = _positive(self.name, "rank", rank)
        self.project = nn.ModuleList([Pointwise(c1, rank), Pointwise(c2, rank)])
        self.out = Pointwise(rank, c1)

    def infer_shape(self, shapes: tuple[Shape, ...]) -> Shape:
        _aligned(self, shapes)
        return shapes[0]

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.project[0](a)) * torch.tanh(self.project[1](b)))


@register_fusion("attention")
class CrossAttention(Fusion):
    """One layer of cross-modal attention: every position of the first map attends to the second's.

    The maps become token grids ``t_1 = tokens(x_1) + P_1`` of ``H_1 W_1`` tokens of size ``C_1`` and
    ``t_2 = tokens(x_2) + P_2`` (``H_2 W_2`` tokens of size ``C_2``), with learned positional
    embeddings ``P_i``; ``out = t_1 + MultiHead(q=LN_1(t_1), k=v=LN_2(t_2))``, folded back to a map.
    The norms come before the attention (pre-norm, as in MulT's and TransFuser's blocks), so the
    residual path carries the encoders' gradients unscaled (docs/fusion-operators.md says why).
    Because ``P_2`` is learned, the second grid's layout (e.g. a transposed LiDAR grid) does not matter.
    Maps only: ``(C_1, H_1, W_1), (C_2, H_2, W_2) -> (C_1, H_1, W_1)``, ``heads`` dividing ``C_1``.
    Parameters ``C_1 H_1 W_1 + C_2 H_2 W_2`` (positions) ``+ C_1 (C_1 + 2 C_2 + 3) + C_1 (C_1 + 1)``
    (projections) ``+ 2 (C_1 + C_2)`` (norms).

    Reference: Tsai et al., "Multimodal Transformer for Unaligned Multimodal Language Sequences"
    (MulT), ACL 2019; Prakash et al., "Multi-Modal Fusion Transformer for End-to-End Autonomous
    Driving" (TransFuser), CVPR 2021.
    """

    def __init__(self, shapes: Sequence[Sequence[int]], heads: int = 4):
        # Set before the base class's __init__, whose infer_shape checks that heads divide C_1.
        self.heads = _positive(self.name, "heads", heads)
        super().__init__(shapes)
        (c1, h1, w1), (c2, h2, w2) = self.in_shapes
        # ViT's initialisation: small enough not to drown the features at the start.
        self.positions = nn.ParameterList(
            [nn.Parameter(nn.init.trunc_normal_(torch.empty(n, c), std=0.02)) for n, c in ((h1 * w1, c1), (h2 * w2, c2))]
        )
        self.norms = nn.ModuleList([nn.LayerNorm(c1), nn.LayerNorm(c2)])
        self.attend = nn.MultiheadAttention(c1, heads, kdim=c2, vdim=c2, batch_first=True)

    def infer_shape(self, shapes: tuple[Shape, ...]) -> Shape:
        self._require_two(shapes)
        if any(len(s) != 3 for s in shapes):
            raise ShapeError(f"attention fusion works on (C, H, W) feature maps (token grids), got {list(shapes)}")
        if shapes[0][0] % self.heads:
            raise ShapeError(
                f"attention fusion splits the first input's {shapes[0][0]} channels into heads={self.heads} "
                "equal heads, so heads must divide it"
            )
        return shapes[0]

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        query = a.flatten(2).transpose(1, 2) + self.positions[0]
        context = b.flatten(2).transpose(1, 2) + self.positions[1]
        context = self.norms[1](context)
        attended, _ = self.attend(self.norms[0](query), context, context, need_weights=False)
        return (query + attended).transpose(1, 2).reshape(a.shape)


@register_fusion("se")
class SqueezeExcitation(Fusion):
    """Squeeze-and-excitation gating of the concatenated inputs' channels, then a 1x1 conv to ``C_1``.

    With ``x = [x_1; x_2]`` of ``C = C_1 + C_2`` channels and ``R = max(1, C // reduction)``:
    ``e = sigmoid(W_2 relu(W_1 mean_S(x) + b_1) + b_2)``, ``out = W_o (e * x) + b_o``; projecting back
    to ``C_1`` channels keeps the head the size it is for ``matmul``. Shapes ``(C_1, *S), (C_2, *S) ->
    (C_1, *S)``. Parameters ``2 C R + R + C + C_1 (C + 1)``.

    Reference: Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018.
    """

    def __init__(self, shapes: Sequence[Sequence[int]], reduction: int = 16):
        super().__init__(shapes)
        c1, c2 = _aligned(self, self.in_shapes)
        self.reduction = _positive(self.name, "reduction", reduction)
        squeezed = max(1, (c1 + c2) // reduction)
        self.excite = nn.Sequential(nn.Linear(c1 + c2, squeezed), nn.ReLU(), nn.Linear(squeezed, c1 + c2), nn.Sigmoid())
        self.out = Pointwise(c1 + c2, c1)

    def infer_shape(self, shapes: tuple[Shape, ...]) -> Shape:
        _aligned(self, shapes)
        return shapes[0]

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        x = torch.cat((a, b), dim=1)
        return self.out(_per_channel(self.excite(_pool(x)), x) * x)
