"""Sensor corruptions: named, seeded, deterministic transforms of a batch ``(rgb, xyza)``.

``list_corruptions()`` names them; ``corrupt(name, rgb, xyza, severity=s, seed=k)`` returns the
corrupted pair (severity 0: unchanged; 1 to 5: ever stronger), never modifying its inputs.
Modules, by the sensor they hit: ``camera``, ``lidar``, ``alignment`` (both); ``registry`` holds
each corruption's parameters as data (docs/robustness.md's table is checked against them).
Evaluating models under them is ``fusionzoo.experiments.robustness``'s job.
"""

from __future__ import annotations

from . import alignment, camera, lidar  # noqa: F401  (each registers its corruptions)
from .lidar import MISS_RANGE, to_misses
from .registry import FAMILIES, MAX_SEVERITY, Corruption, corrupt, get_corruption, list_corruptions

__all__ = ["FAMILIES", "MAX_SEVERITY", "MISS_RANGE", "Corruption", "corrupt", "get_corruption", "list_corruptions",
           "to_misses"]
