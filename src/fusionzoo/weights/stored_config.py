"""A checkpoint's stored model config, read as untrusted input.

A file's metadata can say anything: ``widths: [12000, 12000, 12000]`` under a 2 MB file, an
``image_size`` of ``"sixteen"``, JSON nested ten thousand levels deep. Building such a config as
it stands allocates whatever it asks for, or fails with a bare Python error that names no file.
So a stored config is parsed within bounds, its options are checked against the types of the
factory's defaults, and the model is built on the ``meta`` device (shapes, no memory) so that
``tensor_table.check_fits`` can compare it with the file before anything is allocated. Every
failure is a ``CheckpointError`` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from ..registry import ModelConfig, build, fits_default, get_spec, type_error

#: The longest stored config read. fusionzoo writes a few hundred bytes; the bound keeps a hostile
#: config from building thousands of layers (even on ``meta``, ten thousand take seconds).
MAX_CONFIG_CHARS = 16 * 1024
#: The deepest nesting of JSON arrays and objects read (fusionzoo writes 3 levels). Checked here
#: because how deep ``json.loads`` goes before a ``RecursionError`` depends on the Python version.
MAX_CONFIG_DEPTH = 16


def _depth(value: object) -> int:
    """How deeply JSON ``value``'s arrays and objects nest (a scalar: 0); iterative, so any depth."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in children)
    return deepest


def parse(path: Path, text: str) -> ModelConfig:
    """The ``ModelConfig`` stored as JSON ``text`` in ``path``'s metadata, its structure checked."""
    if len(text) > MAX_CONFIG_CHARS:
        raise CheckpointError(
            f"{path}: its stored model config is {len(text):,} characters long, more than the {MAX_CONFIG_CHARS:,} "
            "a fusionzoo config may take; the metadata was damaged or written by another tool"
        )
    too_deep = CheckpointError(
        f"{path}: its stored model config is JSON nested too deeply to read (more than {MAX_CONFIG_DEPTH} levels); "
        "the metadata is damaged"
    )
    try:
        data = json.loads(text)
    except RecursionError:
        raise too_deep from None
    except ValueError as err:
        raise CheckpointError(f"{path}: corrupt model config in its metadata (not JSON: {err})") from None
    if _depth(data) > MAX_CONFIG_DEPTH:
        raise too_deep
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise CheckpointError(
            f"{path}: corrupt model config in its metadata (expected {{\"name\": str, \"options\": {{...}}}}, got {text[:200]!r})"
        )
    options = data.get("options") or {}
    if not isinstance(options, dict):
        raise CheckpointError(
            f"{path}: corrupt model config in its metadata (options must be a JSON object, got {options!r:.200})"
        )
    return ModelConfig(data["name"], options)


def check_types(path: Path, config: ModelConfig) -> None:
    """Refuse options whose type differs from their default's (``image_size: "sixteen"``), by the
    registry's own rule (``registry.fits_default``).

    An unregistered name is a ``CheckpointError`` listing the registered ones; options the factory
    does not take are left to ``build_on_meta``, whose error lists the ones it does.
    """
    try:
        defaults = get_spec(config.name).defaults()
    except KeyError as err:
        raise CheckpointError(f"{path}: {err.args[0]}") from None
    wrong = [
        type_error(key, value, defaults[key])
        for key, value in config.options.items()
        if key in defaults and not fits_default(value, defaults[key])
    ]
    if wrong:
        raise CheckpointError(f"{path}: the stored config of {config.name!r} has options of the wrong type: " + "; ".join(wrong))


def _first_line(err: Exception) -> str:
    # torch's C++ errors append their source location and a stack over many lines.
    return (str(err).strip().splitlines() or [""])[0][:300]


def build_on_meta(path: Path, config: ModelConfig) -> nn.Module:
    """The model ``config`` describes, built on the ``meta`` device: every shape, no memory, no RNG draw.

    Any exception the factory raises means the stored config cannot be built; it is reported as a
    ``CheckpointError`` naming the file, because the factory is running on options nobody checked.
    """
    check_types(path, config)
    try:
        with torch.device("meta"):
            return build(config.name, **config.options)
    except KeyError as err:
        raise CheckpointError(f"{path}: {err.args[0]}") from None
    except Exception as err:  # noqa: BLE001  (untrusted options: any failure means a bad config)
        raise CheckpointError(
            f"{path}: cannot rebuild model {config.name!r} from its stored config ({type(err).__name__}: {_first_line(err)})"
        ) from None
