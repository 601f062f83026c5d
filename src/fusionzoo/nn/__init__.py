"""Network building blocks: the conv encoder, the MLP head and the fusion operators. No registry of
models and no files: the zoo in ``fusionzoo.models`` composes these."""

from __future__ import annotations

from .encoders import ConvEncoder
from .fusion import Fusion, create_fusion, list_fusions, register_fusion
from .heads import MLPHead

__all__ = ["ConvEncoder", "Fusion", "MLPHead", "create_fusion", "list_fusions", "register_fusion"]
