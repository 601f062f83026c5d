"""Data: the course's on-disk layout, tensors of samples, and the built-in scene generator."""

from __future__ import annotations

from .replicator import ReplicatorDataset, course_loaders, seed_splits
from .samples import BatchLoader, Samples, TensorSamples
from .scenes import SceneConfig, generate_scenes
from .xyza import DEFAULT_HIT_THRESHOLD, BeamTrig, depth_to_xyza, trig_to_xyza

__all__ = ["DEFAULT_HIT_THRESHOLD", "BatchLoader", "BeamTrig", "ReplicatorDataset", "Samples", "SceneConfig", "TensorSamples",
           "course_loaders", "depth_to_xyza", "generate_scenes", "seed_splits", "trig_to_xyza"]
