"""Fine-tuning: partial weight loading with a report, branch initialisation, freezing, parameter groups."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError
from ..registry import model_config
from . import adapt, tensor_table
from .checkpoint import load, read_config, read_weights, stored_name

log = logging.getLogger(__name__)


@dataclass
class LoadReport:
    """What a partial load did, tensor by tensor; ``share`` is the fraction of the model's values
    (elements of its state) that came from the source, adapted tensors included.

    - ``loaded``: copied as they are;
    - ``dropped``: the head's output layer (``model.head_output_layer``), left out by name because
      the source has another number of outputs; the reason for each;
    - ``adapted``: an input convolution rebuilt for the model's input channels (``weights.adapt``);
      the rule applied to each;
    - ``skipped``: any other tensor whose shape differs, with both shapes;
    - ``missing`` (kept the fresh initialisation) and ``unexpected`` (ignored).
    """

    loaded: list[str] = field(default_factory=list)
    skipped: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    share: float = 0.0
    dropped: dict[str, str] = field(default_factory=dict)
    adapted: dict[str, str] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        """True when every tensor of the model was loaded as it is and nothing was left over."""
        return not (self.skipped or self.missing or self.unexpected or self.dropped or self.adapted)

    def __str__(self) -> str:
        lines = [f"loaded {len(self.loaded)} tensors ({self.share:.1%} of the model's values)"]
        lines += [f"dropped {k}: {why}" for k, why in self.dropped.items()]
        lines += [f"adapted {k}: {rule}" for k, rule in self.adapted.items()]
        lines += [f"skipped {k}: checkpoint {list(a)} vs model {list(b)}" for k, (a, b) in self.skipped.items()]
        lines += [f"missing (kept fresh init) {k}" for k in self.missing]
        lines += [f"unexpected (ignored) {k}" for k in self.unexpected]
        return "\n".join(lines)


def _outputs(tensors: Mapping[str, torch.Tensor], layer: str) -> int | None:
    """The number of outputs of the output layer ``layer`` in ``tensors`` (its weight's or bias's rows)."""
    tensor = tensors.get(f"{layer}.weight", tensors.get(f"{layer}.bias"))
    return int(tensor.shape[0]) if tensor is not None and tensor.dim() >= 1 else None


def _dropped_head(model: nn.Module, own: Mapping[str, torch.Tensor], state_dict: Mapping[str, torch.Tensor]) -> dict[str, str]:
    """The tensors of the model's declared head output layer, with the reason, when ``state_dict``
    has another number of outputs there; models that declare no ``head_output_layer`` drop nothing."""
    try:
        layer = getattr(model, "head_output_layer", None)
    except (NotImplementedError, StopIteration):  # a model that declares no head (or whose head is not its own)
        return {}
    if not isinstance(layer, str):
        return {}
    theirs = _outputs(state_dict, layer)
    ours = getattr(model, "num_outputs", None)
    ours = ours if isinstance(ours, int) else _outputs(own, layer)
    if theirs is None or ours is None or theirs == ours:
        return {}
    why = f"the head's output layer, {theirs} outputs in the source and {ours} in the model (kept fresh init)"
    return {k: why for k in state_dict if k.startswith(f"{layer}.") and k in own}


def _match(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], channels: Mapping[str, int] | None = None
) -> tuple[LoadReport, dict[str, adapt.Adaptation]]:
    """Which tensors of ``state_dict`` fit ``model`` by name and shape, which are dropped (the head's
    output layer, for another number of outputs) and which adapted (input convolutions, for other
    input channels); changes nothing."""
    own = model.state_dict()
    report = LoadReport()
    dropped = _dropped_head(model, own, state_dict)
    adaptations = adapt.plan(model, own, state_dict, channels)
    for key, tensor in state_dict.items():
        if key not in own:
            report.unexpected.append(key)
        elif key in dropped:
            report.dropped[key] = dropped[key]
        elif key in adaptations:  # before the shape test: early fusion's 3 + 5 channels are 8 as 4 + 4 are
            report.adapted[key] = adaptations[key].rule
        elif own[key].shape == tensor.shape:
            report.loaded.append(key)
        else:
            report.skipped[key] = (tuple(tensor.shape), tuple(own[key].shape))
    report.missing = [k for k in own if k not in state_dict]
    total = sum(t.numel() for t in own.values())
    report.share = sum(own[k].numel() for k in [*report.loaded, *report.adapted]) / total if total else 1.0
    return report, {k: a for k, a in adaptations.items() if k in report.adapted}


def _check_share(min_share: float) -> None:
    if not 0.0 <= min_share <= 1.0:
        raise ValueError(f"min_share must be a fraction between 0 and 1, got {min_share!r}")


def _model_name(model: nn.Module) -> str:
    try:
        return model_config(model).name
    except ValueError:
        return type(model).__name__


def load_matching(
    model: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    *,
    strict: bool = False,
    source: str = "state_dict",
    min_share: float = 0.5,
    channels: Mapping[str, int] | None = None,
) -> LoadReport:
    """Copy every tensor of ``state_dict`` whose name and shape fit ``model``; report the rest.

    Tensors that do not fit keep the model's own (fresh) values, so a new ``num_outputs`` or new
    input channels re-initialise only the layers they change, by name: when the source has another
    number of outputs, the model's declared ``head_output_layer`` is dropped (``report.dropped``);
    each modality's declared input convolution (``input_layers``) whose input channels differ is
    adapted by ``weights.adapt``'s rule (shared channels kept, the source's extra ones dropped, new
    ones the mean of the source's), with a logged warning (``report.adapted``). ``channels``: the
    source's input channels per modality (its stored ``rgb_channels``/``lidar_channels``), needed
    only where one convolution reads several modalities (early fusion). ``strict`` fails on anything
    but a full match, before changing the model. A tensor to load stored with another kind of dtype
    (int64 or bool for a float weight) or holding NaN/inf is a ``CheckpointError``, also before any
    change; one of another float width (fp16) is converted, with a logged warning. Loading less
    than ``min_share`` of the model's values logs a warning.
    """
    _check_share(min_share)
    own = model.state_dict()
    report, adaptations = _match(model, state_dict, channels)
    if strict and not report.complete:
        raise CheckpointError(f"{source} does not match {type(model).__name__} exactly:\n{report}")
    used = [*report.loaded, *report.adapted]
    tensor_table.check_dtypes(source, own, state_dict, used)
    tensor_table.check_finite(source, {k: state_dict[k] for k in used})
    with torch.no_grad():
        for key in report.loaded:
            own[key].copy_(state_dict[key])
        for key, adaptation in adaptations.items():
            own[key].copy_(adaptation.apply(state_dict[key], own[key].shape))
            adapt.warn(source, key, adaptation)
    if report.share < min_share:
        log.warning(
            "%s -> %s: only %.1f%% of the model's values were loaded (min_share %.0f%%); the rest keep their "
            "fresh initialisation: %s",
            source, _model_name(model), 100 * report.share, 100 * min_share, str(report).replace("\n", "; "),
        )
    return report


def _refuse_foreign(
    model: nn.Module, path: Path, state_dict: Mapping[str, torch.Tensor], min_share: float, channels: Mapping[str, int]
) -> None:
    """Raise when ``path`` fits nothing of ``model``, or holds another model of which less than
    ``min_share`` fits: a checkpoint of the wrong architecture, which would leave ``model`` random."""
    report, _ = _match(model, state_dict, channels)
    ours, theirs = _model_name(model), stored_name(path)
    if report.loaded and (report.share >= min_share or theirs in (None, ours)):
        return
    if theirs is None:
        what = "is a plain safetensors file"
    else:
        what = f"holds model {theirs!r}, not {ours!r}" if theirs != ours else f"holds model {theirs!r} of other sizes"
    raise CheckpointError(
        f"{path} {what}: {len(report.loaded)} of its {len(state_dict)} tensors fit, {report.share:.1%} of the values "
        f"of model {ours!r}, whose rest would stay randomly initialised. Load a checkpoint of {ours!r}, initialise "
        "one branch with load_branch (create(..., branches=...)), or pass strict=False to keep what fits anyway"
    )


def _stored_options(path: Path) -> dict[str, Any]:
    """The model options stored in ``path``'s metadata, defaults filled in where the name is
    registered; empty for a plain safetensors file or a config that does not parse (the tensors'
    shapes then decide alone, and a damaged config adapts nothing it does not agree with)."""
    try:
        config = read_config(path)
    except CheckpointError:
        return {}
    try:
        return dict(config.resolved().options)
    except (KeyError, TypeError):
        return dict(config.options)


def load_weights(model: nn.Module, path: str | Path, *, strict: bool | None = None, min_share: float = 0.5) -> LoadReport:
    """Load what fits of the checkpoint at ``path`` into ``model`` and log the report.

    As ``load_matching``: another number of outputs drops the head's output layer by name; other
    input channels adapt each modality's input convolution, the file's channel counts read from its
    stored config.

    ``strict``: ``True`` fails on anything but a full match; ``None`` (the default) loads what fits
    but raises ``CheckpointError`` naming both models when nothing fits, or when the file holds
    another registered model of which less than ``min_share`` of ``model``'s values fit; ``False``
    loads what fits whatever it is. Every mode fails before changing the model, and logs a warning
    when less than ``min_share`` was loaded (``load_matching`` checks dtypes and values).
    """
    _check_share(min_share)
    path = Path(path)
    state_dict = read_weights(path)
    channels = adapt.stored_channels(_stored_options(path))
    if strict is None:
        _refuse_foreign(model, path, state_dict, min_share, channels)
    report = load_matching(model, state_dict, strict=bool(strict), source=str(path), min_share=min_share, channels=channels)
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
