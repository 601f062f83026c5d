"""The fusion operators' base class and registry: ``fusion="name"`` -> an operator class.

Every operator takes the per-sample input shapes at construction (``(C, H, W)`` for feature maps,
``(F,)`` for vectors), validates them, and declares ``out_shape``; ``forward(*xs)`` takes the
batched tensors ``(B, *shape)`` in the same order and returns ``(B, *out_shape)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from torch import nn

from ..._names import unknown_name
from ...errors import ShapeError

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
