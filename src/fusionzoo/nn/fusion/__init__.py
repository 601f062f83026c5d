"""Fusion operators: modules that merge one tensor per modality into one tensor, by registered name."""

from __future__ import annotations

from . import fixed, learned  # noqa: F401  (registers the built-in operators)
from .base import Fusion, create_fusion, fusion_class, list_fusions, register_fusion

__all__ = ["Fusion", "create_fusion", "fusion_class", "list_fusions", "register_fusion"]
