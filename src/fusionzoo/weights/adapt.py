"""Weights into a model with other input channels: each modality's input convolution adapted by one rule.

A checkpoint trained on RGBA and XYZA (4 + 4 channels) should still start a model that reads RGB
without alpha (``rgb_channels=3``) or XYZA plus an intensity channel (``lidar_channels=5``): only the
first convolution of each modality depends on the channel count. Skipping that layer would throw
away the filters that see the image; copying it where shapes happen to fit would pair the wrong
channels. So the model declares, in ``input_layers``, which layer is each modality's input and which
of its input channels the modality fills (early fusion's one convolution reads rgb's channels, then
lidar's), and the weight of that layer is rebuilt, per modality, by the rule:

- a channel both have keeps the file's weights (channel ``c`` of the file's modality -> channel ``c``);
- a channel only the file has (alpha, in a model without it) is dropped;
- a channel only the model has (an intensity channel) starts as the mean of the file's weights over
  that modality's input channels, so it responds to the new input as to the average of the old ones.

The idea is timm's ``adapt_input_conv``, which does this for a pretrained RGB stem. The bias and the
output channels are unchanged. The file's channel counts come from its stored config
(``rgb_channels``/``lidar_channels``) or, for a layer that serves one modality, from the tensor's
shape; where they stay unknown or disagree with the tensor, nothing is adapted and the tensor is
skipped as any mis-shaped one. This module knows models only by the attributes they declare
(``input_layers``), never by their classes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Span:
    """One modality's input channels of a layer: ``[file_start, file_stop)`` in the file's weight,
    ``[start, stop)`` in the model's."""

    modality: str
    file_start: int
    file_stop: int
    start: int
    stop: int

    def describe(self) -> str:
        old, new = self.file_stop - self.file_start, self.stop - self.start
        kept = min(old, new)
        if new < old:
            what = f"kept the file's channels 0-{kept - 1}, dropped {_channels(kept, old)}"
        elif new > old:
            what = f"kept the file's {old}, new {_channels(old, new)} = the mean of the file's {old}"
        else:
            what = "kept as is"
        return f"{self.modality} {old} -> {new} input channels ({what})"


def _channels(start: int, stop: int) -> str:
    return f"channel {start}" if stop - start == 1 else f"channels {start}-{stop - 1}"


@dataclass(frozen=True)
class Adaptation:
    """How the weight ``layer.weight`` (``(out, in, k, k)``) of the file becomes the model's."""

    layer: str
    spans: tuple[Span, ...]

    @property
    def rule(self) -> str:
        """The rule applied, in words, per modality."""
        return "; ".join(span.describe() for span in self.spans)

    def apply(self, weight: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        """The file's ``weight`` rebuilt with the model's input channels: ``(out, in_file, k, k) ->
        shape`` = ``(out, in_model, k, k)``; computed in float32 and returned in ``weight``'s dtype."""
        source = weight.float()
        adapted = torch.empty(shape, dtype=torch.float32)
        for span in self.spans:
            old = source[:, span.file_start:span.file_stop]
            kept = min(old.shape[1], span.stop - span.start)
            adapted[:, span.start:span.start + kept] = old[:, :kept]
            if span.stop - span.start > kept:
                adapted[:, span.start + kept:span.stop] = old.mean(dim=1, keepdim=True)
        return adapted.to(weight.dtype)


def _count(value: Any) -> int | None:
    """A stored channel count, when it is one (a stored config is untrusted input)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def stored_channels(options: Mapping[str, Any]) -> dict[str, int]:
    """Each modality's input channel count recorded in a stored config's ``options``
    (``rgb_channels``, ``lidar_channels``); a value that is not a positive int is left out."""
    counts = {m: _count(options.get(f"{m}_channels")) for m in ("rgb", "lidar")}
    return {m: c for m, c in counts.items() if c is not None}


def _layers(model: nn.Module) -> dict[str, list[tuple[str, int, int]]]:
    """``model.input_layers`` grouped by layer: ``{layer: [(modality, start, stop), ...]}`` in channel order."""
    try:
        declared = getattr(model, "input_layers", None)
    except (NotImplementedError, KeyError):  # a model that names no parts declares no input layers
        return {}
    if not isinstance(declared, Mapping):
        return {}
    grouped: dict[str, list[tuple[str, int, int]]] = {}
    for modality, (layer, start, stop) in declared.items():
        grouped.setdefault(layer, []).append((modality, int(start), int(stop)))
    return {layer: sorted(spans, key=lambda s: s[1]) for layer, spans in grouped.items()}


def _spans(
    layer: str,
    spans: list[tuple[str, int, int]],
    own: torch.Tensor,
    theirs: torch.Tensor,
    channels: Mapping[str, int],
) -> tuple[Span, ...] | None:
    """The layer's spans in the file and the model, or ``None`` when the file's counts are unknown,
    inconsistent with its tensor, or the model's spans do not cover the layer's inputs."""
    covered = 0
    for _, start, stop in spans:
        if start != covered or stop <= start:
            return None  # the declared ranges must tile the layer's inputs [0, in), in order
        covered = stop
    if covered != own.shape[1]:
        return None
    if len(spans) == 1 and spans[0][0] not in channels:
        counts = [theirs.shape[1]]  # the layer serves one modality: the tensor says how many channels
    elif all(m in channels for m, _, _ in spans):
        counts = [channels[m] for m, _, _ in spans]
    else:
        if own.shape != theirs.shape:
            log.info("%s: the file's channels per modality are unknown (no stored config); not adapted", layer)
        return None
    if sum(counts) != theirs.shape[1]:
        log.info("%s: the file's stored channel counts %s do not add up to its tensor's %d input channels; not adapted",
                 layer, counts, theirs.shape[1])
        return None
    result, file_start = [], 0
    for (modality, start, stop), count in zip(spans, counts):
        result.append(Span(modality, file_start, file_start + count, start, stop))
        file_start += count
    return tuple(result)


def plan(
    model: nn.Module,
    own: Mapping[str, torch.Tensor],
    state_dict: Mapping[str, torch.Tensor],
    channels: Mapping[str, int] | None = None,
) -> dict[str, Adaptation]:
    """The adaptations loading ``state_dict`` into ``model`` (whose state is ``own``) calls for, by
    weight name: every declared input layer whose weight differs from the file's in its input
    channels only, or whose channels the file splits otherwise between the modalities of one
    shared layer (even at the same total). ``channels``: the file's count per modality
    (``stored_channels``), needed where one layer serves several modalities. Changes nothing."""
    adaptations = {}
    for layer, spans in _layers(model).items():
        key = f"{layer}.weight"
        if key not in own or key not in state_dict:
            continue
        mine, theirs = own[key], state_dict[key]
        if mine.dim() != 4 or theirs.dim() != 4:
            continue
        if (mine.shape[0], *mine.shape[2:]) != (theirs.shape[0], *theirs.shape[2:]):
            continue  # other filters or kernels: nothing to carry over channel by channel
        found = _spans(layer, spans, mine, theirs, channels or {})
        # Equal shapes can still hide another split of one shared layer (rgb 3 + lidar 5 from 4 + 4).
        if found is not None and any(s.file_stop - s.file_start != s.stop - s.start for s in found):
            adaptations[key] = Adaptation(layer, found)
    return adaptations


def warn(source: str, key: str, adaptation: Adaptation) -> None:
    """Log, as a warning, that ``key`` from ``source`` was adapted and by which rule."""
    log.warning("%s: adapted the input convolution %s to the model's input channels: %s", source, key, adaptation.rule)
