"""Fine-tuning: partial weight loading with a report, branch initialisation, freezing, parameter groups."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError
from .checkpoint import load, read_weights

log = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """What a partial load did, tensor by tensor."""

    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when every tensor of the model was loaded and nothing was left over."""
        return not (self.skipped or self.missing or self.unexpected)

    def __str__(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensors"]
        lines += [f"skipped {k}: checkpoint {list(a)} vs model {list(b)}" for k, (a, b) in self.skipped.items()]
        lines += [f"missing (kept fresh init) {k}" for k in self.missing]
        lines += [f"unexpected (ignored) {k}" for k in self.unexpected]
        return "\n".join(lines)


def load_matching(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], *, strict: bool = False, source: str = "state_dict"
) -> LoadReport:
    """Copy every tensor of ``state_dict`` whose name and shape fit ``model``; report the rest.

    Tensors that do not fit keep the model's own (fresh) values, so a new ``num_outputs`` or new
    input channels re-initialise only the layers they change. ``strict`` fails on anything but a
    full match, before changing the model.
    """
    own = model.state_dict()
    report = LoadReport()
    for key, tensor in state_dict.items():
        if key not in own:
            report.unexpected.append(key)
        elif own[key].shape != tensor.shape:
            report.skipped[key] = (tuple(tensor.shape), tuple(own[key].shape))
        else:
            report.loaded.append(key)
    report.missing = [k for k in own if k not in state_dict]
    if strict and not report.complete:
        raise CheckpointError(f"{source} does not match {type(model).__name__} exactly:\n{report}")
    with torch.no_grad():
        for key in report.loaded:
            own[key].copy_(state_dict[key])
    return report


def load_weights(model: nn.Module, path: str | Path, *, strict: bool = False) -> LoadReport:
    """Load what fits of the checkpoint at ``path`` into ``model`` and log the report."""
    report = load_matching(model, read_weights(path), strict=strict, source=str(path))
    log.info("%s -> %s: %s", path, type(model).__name__, str(report).replace("\n", "; "))
    return report


def _modality_part(model: nn.Module, modality: str, role: str) -> nn.Module:
    parts = model.parts() if hasattr(model, "parts") else {}
    if modality not in parts:
        raise CheckpointError(
            f"{role} {type(model).__name__} has no {modality!r} branch; its parts are {', '.join(sorted(parts))}"
        )
    return parts[modality]


def _find(module: nn.Module, kind: type[nn.Module]) -> nn.Module | None:
    return next((m for m in module.modules() if isinstance(m, kind)), None)


def load_branch(model: nn.Module, modality: str, source: nn.Module | str | Path) -> None:
    """Initialise ``model``'s ``modality`` branch from the matching branch of ``source``.

    ``source`` is a model or a checkpoint path: a single-modality network (``rgb``/``lidar``) or any
    model with that modality's branch. The target's part (``parts()[modality]``) takes the first
    module of its own class inside the source's part: a late-fusion branch takes a whole network,
    an intermediate model's encoder takes the source's encoder. Shapes must agree exactly.
    """
    if not isinstance(source, nn.Module):
        name = str(source)
        source = load(source)
    else:
        name = type(source).__name__
    target = _modality_part(model, modality, "target")
    kind = type(target)
    found = _find(_modality_part(source, modality, f"source {name}:"), kind)
    if found is None:
        raise CheckpointError(f"{name} has no {kind.__name__} in its {modality!r} branch to initialise from")
    load_matching(target, found.state_dict(), strict=True, source=f"{name} ({modality} {kind.__name__})")
    log.info("initialised the %s branch from %s", modality, name)


def _part_parameters(model: nn.Module, names: Iterable[str]) -> list[nn.Parameter]:
    if not hasattr(model, "parts"):
        raise TypeError(f"{type(model).__name__} does not name its parts; build it with fusionzoo.create")
    parts = model.parts()
    params: dict[int, nn.Parameter] = {}
    for name in names:
        if name not in parts:
            raise KeyError(f"unknown part {name!r} of {type(model).__name__}; its parts are: {', '.join(sorted(parts))}")
        params.update((id(p), p) for p in parts[name].parameters())
    return list(params.values())


def freeze(model: nn.Module, *parts: str) -> nn.Module:
    """Stop training the named parts (e.g. ``"encoders"``, ``"rgb"``, ``"head"``); returns ``model``.

    The trainer leaves them out of the optimizer and keeps fully frozen modules in eval mode.
    """
    for p in _part_parameters(model, parts):
        p.requires_grad_(False)
    return model


def unfreeze(model: nn.Module, *parts: str) -> nn.Module:
    """Train the named parts again; returns ``model``."""
    for p in _part_parameters(model, parts):
        p.requires_grad_(True)
    return model


def frozen_to_eval(model: nn.Module) -> None:
    """Put every sub-module whose parameters are all frozen in eval mode.

    A frozen part must not change at all: BatchNorm statistics and dropout follow eval mode.
    """
    for module in model.modules():
        params = list(module.parameters())
        if params and not any(p.requires_grad for p in params):
            module.eval()


def param_groups(model: nn.Module, lrs: Mapping[str, float]) -> list[dict]:
    """Optimizer parameter groups with a learning rate per named part.

    Trainable parameters in no named part form a last group ``"rest"`` without an ``lr`` (the
    optimizer's default applies); frozen parameters are left out. A parameter named twice is an error.
    """
    groups, seen = [], set()
    for name, lr in lrs.items():
        params = [p for p in _part_parameters(model, [name]) if p.requires_grad]
        overlap = {id(p) for p in params} & seen
        if overlap:
            raise ValueError(f"part {name!r} shares {len(overlap)} parameters with an earlier part; name disjoint parts")
        seen.update(id(p) for p in params)
        groups.append({"params": params, "lr": float(lr), "name": name})
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in seen]
    if rest:
        groups.append({"params": rest, "name": "rest"})
    return groups
