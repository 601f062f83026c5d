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
from .weights.sources import load_for


def create(
    name: str,
    *,
    weights: str | Path | None = None,
    checkpoint: str | Path | None = None,
    branches: Mapping[str, str | Path | nn.Module] | None = None,
    **overrides: Any,
) -> nn.Module:
    """Build the registered model ``name`` with its defaults replaced by ``overrides``.

    The model is randomly initialised, then (for fine-tuning) takes every tensor of ``checkpoint``
    that fits, and each ``branches[modality]`` (a checkpoint path or model) initialises that
    modality's branch; what was loaded is logged. Its config is ``model_config(model)``.

    ``weights``: trained weights to start from, whole (torchvision's ``weights=``): a catalogue tag
    (``create("matmul", weights="cubes")``, see ``fusionzoo.list_weights()``; built into the cache
    by ``fusionzoo pretrain matmul.cubes``, and ``MissingWeightsError`` names that command until
    then), a pretrained folder (``save_pretrained``) or ``"hf-hub:owner/name"``. The model is built
    with the options the weights were trained with; ``overrides`` may repeat them but not contradict
    them. It comes back in training mode, like any model ``create`` builds (``.eval()`` to predict).
    """
    if weights is not None:
        if checkpoint is not None or branches:
            raise ValueError("create: give weights= (whole trained weights) or checkpoint=/branches= (partial "
                             "fine-tuning starts), not both")
        return load_for(name, weights, overrides).train()
    model = build(name, **overrides)
    if checkpoint is not None:
        load_weights(model, checkpoint)
    for modality, source in (branches or {}).items():
        load_branch(model, modality, source)
    return model
