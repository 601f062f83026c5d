"""Data: the course's on-disk layout, tensors of samples, and the built-in scene generator."""

from __future__ import annotations

from .samples import BatchLoader, Samples
from .xyza import DEFAULT_HIT_THRESHOLD, depth_to_xyza

__all__ = ["DEFAULT_HIT_THRESHOLD", "BatchLoader", "Samples", "depth_to_xyza"]
