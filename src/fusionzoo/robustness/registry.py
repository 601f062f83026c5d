"""The corruption registry: each corruption's name, family, parameter and its five severities as
data, and ``corrupt``, the one call that applies one of them to a batch.

Severity ``s`` (1 to 5) applies the corruption with ``severities[s - 1]``, its parameter's value at
that level; severity 0 is the identity. The values are data, not code, so ``docs/robustness.md``'s
table is checked against them (tests/robustness/test_corruption_table.py) and never drifts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .._names import unknown_name

#: ``fn(rgb, xyza, value, generator) -> (rgb, xyza)``: a corruption at parameter ``value``, drawing
#: any randomness from the CPU ``generator``; it must not modify its inputs.
CorruptionFn = Callable[[torch.Tensor, torch.Tensor, Any, torch.Generator], "tuple[torch.Tensor, torch.Tensor]"]

FAMILIES = ("camera", "lidar", "both")
MAX_SEVERITY = 5


@dataclass(frozen=True)
class Corruption:
    """One named corruption: its ``family`` (which sensor it hits: camera, lidar, or both), the
    ``parameter`` severity sets (in ``unit``), its value at severities 1 to 5, and what it does."""

    name: str
    family: str
    parameter: str
    unit: str
    severities: tuple[Any, ...]
    description: str
    fn: CorruptionFn

    def value(self, severity: int) -> Any:
        """The parameter at ``severity`` (1 to 5)."""
        return self.severities[severity - 1]


_CORRUPTIONS: dict[str, Corruption] = {}


def register(corruption: Corruption) -> Corruption:
    """Add ``corruption`` to the registry (its name must be new, its family known, five severities)."""
    if corruption.name in _CORRUPTIONS:
        raise ValueError(f"name: a corruption called {corruption.name!r} is already registered")
    if corruption.family not in FAMILIES:
        raise ValueError(f"family: {corruption.family!r} is not one of {FAMILIES}")
    if len(corruption.severities) != MAX_SEVERITY:
        raise ValueError(f"severities: {corruption.name} gives {len(corruption.severities)} values, expected {MAX_SEVERITY}")
    _CORRUPTIONS[corruption.name] = corruption
    return corruption


def list_corruptions(family: str | None = None) -> list[str]:
    """The registered corruptions' names in registration order (camera, LiDAR, both), or only
    ``family``'s (``"camera"``, ``"lidar"`` or ``"both"``)."""
    if family is not None and family not in FAMILIES:
        raise unknown_name("corruption family", family, FAMILIES)
    families = FAMILIES if family is None else (family,)
    return [name for f in families for name, c in _CORRUPTIONS.items() if c.family == f]


def get_corruption(name: str) -> Corruption:
    """The registered corruption ``name``; ``KeyError`` listing the names otherwise."""
    try:
        return _CORRUPTIONS[name]
    except KeyError:
        raise unknown_name("corruption", name, _CORRUPTIONS) from None


def corrupt(name: str, rgb: torch.Tensor, xyza: torch.Tensor, *, severity: int = 3, seed: int = 0
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch ``rgb`` ``(B, C, S, S)`` in [0, 1] and ``xyza`` ``(B, 4, H, W)`` in scene units,
    corrupted by ``name`` at ``severity`` (0: the identity, 1 to 5: ever stronger).

    Returns new tensors on the inputs' device; the inputs are never modified, and what a
    corruption does not claim to touch comes back bit-identical. Random draws come from a CPU
    generator keyed by (``name``, ``seed``), so the same call gives the same result on any device.
    """
    corruption = get_corruption(name)
    if isinstance(severity, bool) or not isinstance(severity, int) or not 0 <= severity <= MAX_SEVERITY:
        raise ValueError(f"severity: expected an integer from 0 (none) to {MAX_SEVERITY}, got {severity!r}")
    _check_batch(rgb, xyza)
    if severity == 0:
        return rgb.clone(), xyza.clone()
    digest = hashlib.sha256(f"fusionzoo-corruption:{name}:{seed}".encode()).digest()
    generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
    return corruption.fn(rgb, xyza, corruption.value(severity), generator)


def _check_batch(rgb: torch.Tensor, xyza: torch.Tensor) -> None:
    for arg, x in (("rgb", rgb), ("xyza", xyza)):
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{arg}: expected a float batch (B, C, H, W), got {shape}")
    if xyza.shape[1] != 4:
        raise ValueError(f"xyza: expected 4 channels (x, y, z, a), got {xyza.shape[1]}")
    if len(rgb) != len(xyza):
        raise ValueError(f"rgb, xyza: the batches differ in size ({len(rgb)} and {len(xyza)})")


def sample_mask(count: int, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """``(count,)`` bool: exactly ``round(fraction * count)`` samples chosen at random (at least one
    when ``fraction > 0``), for corruptions that hit a fraction of a batch's samples."""
    chosen = max(1, round(fraction * count)) if fraction > 0 else 0
    mask = torch.zeros(count, dtype=torch.bool)
    mask[torch.randperm(count, generator=generator)[:chosen]] = True
    return mask
