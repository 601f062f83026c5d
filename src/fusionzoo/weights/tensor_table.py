"""Whether a file's tensors fit a model: names, shapes, dtypes and values, checked before any copy.

``load_state_dict`` casts what it is given, so an int64 or bool tensor under a weight's name loads
as a float with a wrong value, and NaN weights load silently; a model built from a file's config
may also ask for far more memory than the file holds. These checks run on the file's tensors and on
the model's own state, which may live on the ``meta`` device (shapes and dtypes, no memory).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from itertools import chain
from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError

log = logging.getLogger(__name__)

#: Elements a model built from a stored config may hold beyond the file's tensors (non-persistent
#: buffers; the zoo's models have none): 64 MiB of float32. More is refused before allocating.
MAX_UNSTORED_ELEMENTS = 2**24


def compatible(stored: torch.dtype, own: torch.dtype) -> bool:
    """Whether a tensor stored as ``stored`` may be copied into one of dtype ``own``: the same dtype,
    or a change of floating-point width (fp16 weights into an fp32 model), which keeps the values'
    meaning; anything else (int64 or bool into a float weight) would be cast to wrong values."""
    return stored == own or (stored.is_floating_point and own.is_floating_point)


def _size(nbytes: int) -> str:
    size, unit = float(nbytes), "B"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            break
        size /= 1024
    return f"{size:,.1f} {unit}"


def check_size(path: Path, name: str, model: nn.Module, tensors: Mapping[str, torch.Tensor]) -> None:
    """Refuse a (meta) ``model``, registered as ``name``, that holds more values than the file's
    ``tensors`` plus ``MAX_UNSTORED_ELEMENTS``.

    Runs before names and shapes are compared, so a config that asks for gigabytes is refused
    with the figures that show it, not with a list of every mis-shaped layer.
    """
    unique = {id(t): t for t in chain(model.parameters(), model.buffers())}.values()
    asked = sum(t.numel() for t in unique)
    stored = sum(t.numel() for t in tensors.values())
    if asked > stored + MAX_UNSTORED_ELEMENTS:
        nbytes = sum(t.numel() * t.element_size() for t in unique)
        raise CheckpointError(
            f"{path}: its stored config asks for {name!r} ({type(model).__name__}) with {asked:,} values "
            f"({_size(nbytes)}), but the file holds {stored:,}; the config does not describe these weights "
            "(refused before allocating)"
        )


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _dtypes(key: str, own: Mapping[str, torch.Tensor], tensors: Mapping[str, torch.Tensor]) -> str:
    return f"{key} (file {_name(tensors[key].dtype)}, model {_name(own[key].dtype)})"


def differences(own: Mapping[str, torch.Tensor], tensors: Mapping[str, torch.Tensor]) -> list[str]:
    """What keeps ``tensors`` from loading into a model whose state is ``own``: ``"missing: a, b"``,
    ``"unexpected: ..."``, ``"mis-shaped: k (file [..], model [..])"`` and
    ``"wrong dtype: k (file int64, model float32)"``."""
    missing = sorted(set(own) - set(tensors))
    unexpected = sorted(set(tensors) - set(own))
    common = [k for k in own if k in tensors]
    misshaped = [
        f"{k} (file {list(tensors[k].shape)}, model {list(own[k].shape)})" for k in common if tensors[k].shape != own[k].shape
    ]
    dtypes = [_dtypes(k, own, tensors) for k in common if not compatible(tensors[k].dtype, own[k].dtype)]
    labelled = (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped), ("wrong dtype", dtypes))
    return [f"{label}: {', '.join(names)}" for label, names in labelled if names]


def check_dtypes(source: str, own: Mapping[str, torch.Tensor], tensors: Mapping[str, torch.Tensor], names: Iterable[str]) -> None:
    """Refuse the tensors ``names`` (in both ``own`` and ``tensors``) stored with a dtype that
    ``compatible`` refuses, naming each with both dtypes; log float width changes (``warn_converted``)."""
    names = list(names)
    wrong = [_dtypes(k, own, tensors) for k in names if not compatible(tensors[k].dtype, own[k].dtype)]
    if wrong:
        raise CheckpointError(
            f"{source}: tensors stored with another kind of dtype, which loading would cast to wrong values: "
            + ", ".join(wrong)
        )
    warn_converted(source, own, tensors, names)


def warn_converted(source: str, own: Mapping[str, torch.Tensor], tensors: Mapping[str, torch.Tensor], names: Iterable[str]) -> None:
    """Log a warning naming the tensors among ``names`` whose float width changes on loading
    (fp16 stored, fp32 model): allowed, but the values are those of the narrower type."""
    converted = [f"{k} ({_name(tensors[k].dtype)} -> {_name(own[k].dtype)})" for k in names if tensors[k].dtype != own[k].dtype]
    if converted:
        log.warning("%s: %d tensor(s) converted to the model's float width: %s", source, len(converted), ", ".join(converted))


def check_finite(source: str, tensors: Mapping[str, torch.Tensor]) -> None:
    """Refuse ``tensors`` if any holds NaN or infinite values, naming each such tensor and how many.

    A model with one NaN weight predicts NaN everywhere; such a file comes from a run that diverged.
    """
    bad = []
    for key, tensor in tensors.items():
        # A NaN or infinity makes the sum non-finite (IEEE), and one sum is far faster than an
        # element-wise test; only a non-finite sum (or one that overflowed) is looked at closely.
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(torch.isfinite(tensor.sum())):
            finite = torch.isfinite(tensor)
            if not bool(finite.all()):
                nans = int(torch.isnan(tensor).sum())
                bad.append(f"{key} ({nans} NaN, {tensor.numel() - int(finite.sum()) - nans} infinite of {tensor.numel()})")
    if bad:
        raise CheckpointError(
            f"{source}: non-finite weights: {', '.join(bad)}; the run that wrote them diverged: "
            "load an earlier checkpoint (fusionzoo.weights.read_weights reads the raw tensors for inspection)"
        )
