"""Weights trained with the course notebook's own classes, mapped onto the zoo's models.

The notebook names layers ``conv1``/``fc1`` (``Net``), ``rgb_conv1``/``xyz_conv1``
(``ConcatIntermediateNet``, ``MatmulIntermediateNet``) and ``rgb.``/``xyz.`` (``LateNet``); the zoo
composes one encoder and one head class instead, so only the names differ, never the tensors.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..errors import CheckpointError

_CONVS = {f"conv{i + 1}": f"encoder.layers.{3 * i}" for i in range(3)}
_FCS = {f"fc{i + 1}": f"head.layers.{2 * i + 1}" for i in range(3)}
_NET = {**_CONVS, **_FCS}


def _intermediate() -> dict[str, str]:
    names = {f"{seed}_conv{i + 1}": f"encoders.{ours}.layers.{3 * i}" for seed, ours in (("rgb", "rgb"), ("xyz", "lidar")) for i in range(3)}
    return {**names, **_FCS}


_COURSE_NAMES: dict[str, dict[str, str]] = {
    "rgb": {k: f"net.{v}" for k, v in _NET.items()},
    "lidar": {k: f"net.{v}" for k, v in _NET.items()},
    "early": {k: f"net.{v}" for k, v in _NET.items()},
    "late": {
        **{f"rgb.{k}": f"branches.rgb.{v}" for k, v in _NET.items()},
        **{f"xyz.{k}": f"branches.lidar.{v}" for k, v in _NET.items()},
        "fc1": "head.layers.1",
        "fc2": "head.layers.3",
    },
    "concat": _intermediate(),
    "matmul": _intermediate(),
}


def convert_course_state_dict(name: str, state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename a notebook model's ``state_dict`` so ``fusionzoo.create(name)`` can load it.

    ``name`` is the zoo model the notebook class corresponds to (``rgb``/``lidar`` for ``Net(4)``,
    ``early`` for ``Net(8)``, ``late``, ``concat``, ``matmul``).
    """
    if name not in _COURSE_NAMES:
        raise KeyError(f"no notebook class corresponds to model {name!r}; known: {', '.join(sorted(_COURSE_NAMES))}")
    layers = _COURSE_NAMES[name]
    converted = {}
    for key, tensor in state_dict.items():
        layer, _, kind = key.rpartition(".")
        if layer not in layers:
            raise CheckpointError(f"{name}: the notebook's state_dict has an unexpected tensor {key!r}")
        converted[f"{layers[layer]}.{kind}"] = tensor
    return converted
