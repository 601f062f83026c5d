"""What a ``weights=`` argument names, and the model it loads: a catalogue tag, a folder, or a hub model.

``create(name, weights=...)`` and ``load(path)`` come here for anything but a single checkpoint
file. A tag (``"cubes"``) is looked up in the catalogue for model ``name`` and read from the cache
(``home``), which ``fusionzoo pretrain MODEL.TAG`` fills: weights not built yet raise
``MissingWeightsError`` naming that command. A folder is a pretrained folder (``pretrained``);
``"hf-hub:owner/name"`` is one on the hub (``hub``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, MissingWeightsError
from . import hub
from .catalog import Weights, get_weights
from .home import weights_dir
from .pretrained import CONFIG_FILE, check_options, count_parameters, load_folder, read_config

WeightsArg = str | os.PathLike[str]


def catalogued_folder(entry: Weights) -> Path:
    """The built folder of catalogued ``entry``; ``MissingWeightsError`` naming the command that
    builds it when the cache does not hold it."""
    folder = weights_dir(entry.name)
    if not (folder / CONFIG_FILE).is_file():
        raise MissingWeightsError(
            f"weights {entry.name!r} are not built on this machine (looked in {folder}). Build them with: "
            f"{entry.command} (trains by the recipe: about 10 to 75 minutes on 2 CPU cores, minutes on a GPU), "
            "or set FUSIONZOO_HOME to a cache that holds them"
        )
    return folder


def catalogue_entry(name: str, weights: WeightsArg) -> Weights | None:
    """The catalogue entry ``weights`` names for model ``name`` when it is a tag; ``None`` for a hub
    name or a folder; ``KeyError`` listing the catalogue for an unknown tag, ``CheckpointError`` for a
    path that does not exist."""
    text = os.fspath(weights)
    if text.startswith(hub.PREFIX) or Path(text).is_dir():
        return None
    if os.sep in text or "/" in text or text.startswith("."):
        raise CheckpointError(f"weights={text!r}: no such folder; give a pretrained folder, a catalogue tag "
                              "(fusionzoo.list_weights()) or hf-hub:OWNER/NAME")
    return get_weights(name, text)


def load_for(
    name: str, weights: WeightsArg, overrides: Mapping[str, Any], map_location: str | torch.device | None = None
) -> nn.Module:
    """Model ``name`` with the weights ``weights`` names (see the module), in eval mode.

    ``overrides`` may repeat the weights' options but not contradict them (``ValueError`` naming
    both, checked before anything is read, so also for weights not built yet); a folder holding
    another model is a ``CheckpointError``, as is a built model whose parameter count differs from
    its catalogue entry's."""
    where = f"create({name!r}, weights={os.fspath(weights)!r})"
    entry = catalogue_entry(name, weights)
    if entry is not None:
        check_options(where, entry.options, {k: v for k, v in overrides.items() if k in entry.options})
        folder = catalogued_folder(entry)
    else:
        text = os.fspath(weights)
        folder = hub.download(text) if text.startswith(hub.PREFIX) else Path(text)
    document = read_config(folder)
    if document["model"] != name:
        raise CheckpointError(f"{folder}: holds a {document['model']!r} model, not {name!r}; "
                              f"use create({document['model']!r}, weights={os.fspath(weights)!r})")
    check_options(where, document.get("options") or {}, overrides)
    model = load_folder(folder, map_location)
    if entry is not None and count_parameters(model) != entry.num_params:
        raise CheckpointError(
            f"{folder}: the model has {count_parameters(model):,} parameters, the catalogue's {entry.name} records "
            f"{entry.num_params:,}: the cached build is not of this fusionzoo's model. Rebuild it: {entry.command} --force"
        )
    return model


def load_source(source: WeightsArg, map_location: str | torch.device | None = None) -> nn.Module:
    """The model in the pretrained folder or hub model ``source`` (``fusionzoo.load``'s non-file paths)."""
    text = os.fspath(source)
    folder = hub.download(text) if text.startswith(hub.PREFIX) else Path(text)
    return load_folder(folder, map_location)
