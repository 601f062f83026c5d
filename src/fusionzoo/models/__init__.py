"""The zoo's model families and the registered models (importing this registers them)."""

from __future__ import annotations

from . import zoo  # noqa: F401  (registers the built-in models)
from ..nn.course import COURSE, CourseSizes
from .families import ConvNet, EarlyFusionNet, FusionModel, IntermediateFusionNet, LateFusionNet, SingleModalityNet

__all__ = ["COURSE", "ConvNet", "CourseSizes", "EarlyFusionNet", "FusionModel", "IntermediateFusionNet", "LateFusionNet",
           "SingleModalityNet"]
