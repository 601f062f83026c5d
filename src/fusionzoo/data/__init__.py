"""Data: the course's on-disk layout, tensors of samples, samples from a user's own arrays
(``from_arrays``), and depth-to-XYZA conversion.

The scene generator that writes this layout is ``fusionzoo.sim`` (also ``fusionzoo.generate_scenes``).
"""

from __future__ import annotations

from .._deprecated import renamed
from .arrays import from_arrays
from .course import ReplicatorDataset, course_loaders, course_splits
from .samples import BatchLoader, Samples, TensorSamples
from .xyza import DEFAULT_HIT_THRESHOLD, BeamTrig, depth_to_xyza, trig_to_xyza

__all__ = ["DEFAULT_HIT_THRESHOLD", "BatchLoader", "BeamTrig", "ReplicatorDataset", "Samples", "TensorSamples",
           "course_loaders", "course_splits", "depth_to_xyza", "from_arrays", "trig_to_xyza"]


def _scenes():  # the generator sits a layer above the reader; these aliases alone reach up, until 0.3
    from ..sim import scenes

    return scenes


__getattr__ = renamed(__name__, {
    "seed_splits": ("fusionzoo.data.course_splits", lambda: course_splits),
    "generate_scenes": ("fusionzoo.sim.generate_scenes", lambda: _scenes().generate_scenes),
    "SceneConfig": ("fusionzoo.sim.SceneConfig", lambda: _scenes().SceneConfig),
})
