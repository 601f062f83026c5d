"""Fusion operators: modules that merge one tensor per modality into one tensor.

Every operator takes the per-sample input shapes at construction (``(C, H, W)`` for feature maps,
``(F,)`` for vectors), validates them, and declares ``out_shape``; ``forward(*xs)`` takes the
batched tensors ``(B, *shape)`` in the same order and returns ``(B, *out_shape)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from torch import nn

from ._names import unknown_name
from .errors import ShapeError

Shape = tuple[int, ...]
_FUSIONS: dict[str, type[Fusion]] = {}
F = TypeVar("F", bound="type[Fusion]")


class Fusion(nn.Module):
    """Base class: validates ``shapes`` and sets ``in_shapes`` and ``out_shape``."""

    name: str = ""

    def __init__(self, shapes: Sequence[Sequence[int]]):
        super().__init__()
        self.in_shapes: tuple[Shape, ...] = tuple(tuple(int(d) for d in s) for s in shapes)
        if len(self.in_shapes) < 2:
            raise ShapeError(f"{self.name or type(self).__name__} fusion needs at least two inputs, got {len(self.in_shapes)}")
        if any(len(s) == 0 or min(s) < 1 for s in self.in_shapes):
            raise ShapeError(f"{self.name} fusion: shapes must be non-empty and positive, got {self.in_shapes}")
        self.out_shape: Shape = self.infer_shape(self.in_shapes)

    def infer_shape(self, shapes: tuple[Shape, ...]) -> Shape:
        """The per-sample output shape for ``shapes``; raises ``ShapeError`` if they cannot be fused."""
        raise NotImplementedError

    def _require_equal(self, shapes: tuple[Shape, ...]) -> Shape:
        if len(set(shapes)) != 1:
            raise ShapeError(f"{self.name} fusion needs inputs of one shape, got {list(shapes)}")
        return shapes[0]

    def _require_two(self, shapes: tuple[Shape, ...]) -> None:
        if len(shapes) != 2:
            raise ShapeError(f"{self.name} fusion takes exactly two inputs, got {len(shapes)}")

    def extra_repr(self) -> str:
        return f"in_shapes={list(self.in_shapes)}, out_shape={self.out_shape}"


def register_fusion(name: str) -> Callable[[F], F]:
    """Class decorator that makes a ``Fusion`` subclass available as ``fusion=name``."""

    def decorate(cls: F) -> F:
        if name in _FUSIONS:
            raise ValueError(f"fusion operator {name!r} is already registered (by {_FUSIONS[name].__qualname__})")
        if not (isinstance(cls, type) and issubclass(cls, Fusion)):
            raise TypeError(f"register_fusion({name!r}) needs a Fusion subclass, got {cls!r}")
        cls.name = name
        _FUSIONS[name] = cls
        return cls

    return decorate


def list_fusions() -> list[str]:
    """Names of the registered fusion operators, sorted."""
    return sorted(_FUSIONS)


def fusion_class(name: str) -> type[Fusion]:
    """The operator class registered as ``name``; ``KeyError`` listing the choices if unknown."""
    try:
        return _FUSIONS[name]
    except KeyError:
        raise unknown_name("fusion operator", name, _FUSIONS) from None


def create_fusion(name: str, shapes: Sequence[Sequence[int]], **options: object) -> Fusion:
    """Build the operator ``name`` for per-sample input ``shapes``."""
    return fusion_class(name)(shapes, **options)


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
    """The seed's fusion: per-channel matrix product ``(C, H, K) @ (C, K, W) -> (C, H, W)``.

    With the seed's square 8x8 maps this is ``torch.matmul(x_rgb, x_xyz)``, which lets every row of
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


# Learned operators beyond the seed. Each works on feature maps ``(C, H, W)`` and, unless it says
# otherwise, on vectors ``(F,)`` too: a 1x1 convolution is a Linear over the channel axis.


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
    The norms come before the attention, as in MulT's and TransFuser's blocks: normalising the sum
    instead cut the encoders' gradients by the features' scale (LiDAR features run large), and the
    model stayed at chance for 8 epochs at lr 3e-4 on every seed.
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
