"""Data: the course's on-disk layout, tensors of samples, and the built-in scene generator."""

from __future__ import annotations

from .samples import BatchLoader, Samples
from .scenes import SceneConfig, generate_scenes
from .xyza import DEFAULT_HIT_THRESHOLD, depth_to_xyza

__all__ = ["DEFAULT_HIT_THRESHOLD", "BatchLoader", "Samples", "SceneConfig", "depth_to_xyza", "generate_scenes"]
