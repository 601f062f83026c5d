"""``create``: the one entry point that builds a registered model and, for fine-tuning, loads weights.

It sits above both the registry (which only builds) and the weights layer (which only reads files),
as timm's ``create_model`` does, so neither of those needs the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import nn

from .registry import build
from .weights.finetune import load_branch, load_weights


def create(
    name: str,
    *,
    checkpoint: str | Path | None = None,
    branches: Mapping[str, str | Path | nn.Module] | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build the registered model ``name`` with its defaults replaced by ``overrides``.

    The model is randomly initialised, then (for fine-tuning) takes every tensor of ``checkpoint``
    that fits, and each ``branches[modality]`` (a checkpoint path or model) initialises that
    modality's branch; what was loaded is logged. Its config is ``model_config(model)``.
    """
    model = build(name, **overrides)
    if checkpoint is not None:
        load_weights(model, checkpoint)
    for modality, source in (branches or {}).items():
        load_branch(model, modality, source)
    return model
