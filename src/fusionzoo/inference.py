"""Predictions at run time: one call from sensor tensors to model outputs, single samples or batches."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from .devices import resolve_device
from .errors import ShapeError


def predict(
    model: nn.Module,
    rgb: torch.Tensor | None,
    xyza: torch.Tensor | None,
    *,
    device: str | torch.device | None = None,
    batch_size: int = 256,
) -> torch.Tensor:
    """``model``'s outputs for ``rgb`` and ``xyza``, computed under ``torch.inference_mode`` in eval mode.

    - ``rgb``: ``(B, C, S, S)`` or one sample ``(C, S, S)``, float in [0, 1]; ``xyza``: ``(B, 4, H, W)``
      or ``(4, H, W)``. Both batched or both single. Either may be ``None`` (an absent sensor, or an
      input the model does not read): a zoo model then fills an input it reads by its declared
      policy (``model.missing_fill``: zeros unless its checkpoint records other values), as
      ``model(rgb, None)`` does. A module without such a policy must be given every input it reads.
    - Returns ``(B, T)`` for a batch, ``(T,)`` for one sample, on the device the inputs came from
      (a robot's host code gets host tensors; inputs already on the GPU stay there). The result is
      an ordinary tensor without gradient history, so it may feed later computations, autograd too.
    - ``device``: where to compute; ``None`` means where the model's parameters are, otherwise the
      model is moved there. Inputs are moved to it, ``batch_size`` samples at a time.

    The model runs in eval mode; each of its modules gets back its training flag afterwards.
    Inputs that do not fit the model raise ``ShapeError`` naming the argument.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    inputs = _checked_inputs(model, rgb, xyza)
    given = [x for x in inputs.values() if x is not None]
    single = given[0].dim() == 3
    home = given[0].device
    if device is None:
        device = next((p.device for p in model.parameters()), home)
    else:
        device = resolve_device(device)
        model.to(device)
    batched = {k: (x.unsqueeze(0) if x is not None and single else x) for k, x in inputs.items()}
    # A deployed model is already in eval mode: then switching modes (a walk over every module, a
    # measurable share of a batch-1 call) is skipped.
    training = [m for m in model.modules() if m.training]
    if training:
        model.eval()
    try:
        with torch.inference_mode():
            outputs = [model(r, x) for r, x in _chunks(batched["rgb"], batched["xyza"], batch_size, device)]
    finally:
        for module in training:
            module.training = True
    output = torch.cat(outputs).to(home)
    return output[0] if single else output


def _checked_inputs(model: nn.Module, rgb: torch.Tensor | None, xyza: torch.Tensor | None) -> dict[str, torch.Tensor | None]:
    """The inputs by argument name, checked against each other and against the model's declared shapes."""
    inputs = {"rgb": rgb, "xyza": xyza}
    # Fusion models declare the per-sample shape of each input they read; any other module is
    # checked by its own forward.
    expected: dict[str, tuple[int, ...]] = getattr(model, "input_shapes", {})
    given = {k: x for k, x in inputs.items() if x is not None}
    if not given:
        raise ShapeError("rgb, xyza: both inputs are None; give at least one (an absent sensor is filled by the "
                         "model's missing_fill policy, not both)")
    if not hasattr(model, "fill_missing"):  # no policy for an absent input: every input it reads is needed
        for name in expected:
            if inputs[name] is None:
                raise ShapeError(f"{name}: {type(model).__name__} reads this input and declares no fill for it; got None")
    for name, x in given.items():
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"{name}: expected a floating-point tensor (images scaled to [0, 1]), got {x.dtype}")
        shape = expected.get(name)
        if x.dim() not in (3, 4) or (shape is not None and tuple(x.shape[-3:]) != shape):
            wanted = ", ".join(map(str, shape)) if shape is not None else "C, H, W"
            raise ShapeError(f"{name}: expected a tensor of shape ({wanted}) or (B, {wanted}), got {tuple(x.shape)}")
    ranks = {name: x.dim() for name, x in given.items()}
    if len(set(ranks.values())) > 1:
        raise ShapeError(f"rgb, xyza: give both as single samples (C, H, W) or both as batches (B, C, H, W); got {ranks}")
    sizes = {name: len(x) for name, x in given.items() if x.dim() == 4}
    if len(set(sizes.values())) > 1:
        raise ShapeError(f"rgb, xyza: the batches differ in size: {sizes}")
    if 0 in sizes.values():
        raise ShapeError(f"{', '.join(sizes)}: empty batch, nothing to predict")
    return inputs


def _chunks(
    rgb: torch.Tensor | None, xyza: torch.Tensor | None, batch_size: int, device: torch.device
) -> Iterator[tuple[torch.Tensor | None, torch.Tensor | None]]:
    """``batch_size``-sample slices of the inputs, on ``device``."""
    count = len(rgb if rgb is not None else xyza)
    for start in range(0, count, batch_size):
        yield tuple(None if x is None else x[start : start + batch_size].to(device) for x in (rgb, xyza))  # type: ignore[misc]
