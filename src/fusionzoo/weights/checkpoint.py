"""Checkpoints as single safetensors files: models (``save``/``load``) and resumable training states.

A model checkpoint holds the weights and, in the file's string metadata, the registry name, the
model's config (``ModelConfig`` JSON) and the library version, so ``load`` rebuilds the model with
``fusionzoo.create`` and never unpickles anything. A training state adds the optimizer's tensors,
the RNG states and, as JSON, everything else a run needs to continue exactly.

Every write goes to a temporary file in the target's folder and is moved into place with
``os.replace``: a crash mid-write leaves the previous file as it was. Every read failure raises
``CheckpointError`` naming the file. A file is untrusted input: its config is checked and built on
the ``meta`` device first (``stored_config``), and its tensors must fit that model by name, shape,
dtype and finite value (``tensor_table``) before anything is allocated or copied.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from .._files import atomic_path
from .._version import __version__
from ..devices import resolve_device
from ..errors import CheckpointError
from ..registry import ModelConfig, model_config
from . import stored_config, tensor_table
from .record import Record

log = logging.getLogger(__name__)

KIND, NAME, CONFIG, VERSION = "fusionzoo.kind", "fusionzoo.name", "fusionzoo.config", "fusionzoo.version"
MODEL_KIND, STATE_KIND = "model", "training-state"
_OPTIMIZER, _SCHEDULER, _SCALER, _PROGRESS = "fusionzoo.optimizer", "fusionzoo.scheduler", "fusionzoo.scaler", "fusionzoo.progress"
_MODEL_PREFIX, _OPTIMIZER_PREFIX, _RNG_CPU, _RNG_CUDA = "model.", "optimizer.", "rng.cpu", "rng.cuda."


# --- writing -------------------------------------------------------------------------------------


def _write(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    with atomic_path(path) as temporary:
        save_file(tensors, str(temporary), metadata=metadata)


def _storable(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU tensors that share no memory: safetensors refuses aliased tensors.

    A tensor whose storage another entry already uses (tied weights, views) is stored as its own
    copy; loading copies the same values back into each name, so tied models stay tied.
    """
    stored: dict[str, torch.Tensor] = {}
    storages: set[tuple[torch.device, int]] = set()
    for name, tensor in state.items():
        tensor = tensor.detach()
        key = (tensor.device, tensor.untyped_storage().data_ptr())
        shared = tensor.numel() > 0 and key in storages
        storages.add(key)
        # contiguous() also undoes channels_last, which safetensors cannot store.
        tensor = tensor.to("cpu").contiguous()
        stored[name] = tensor.clone() if shared else tensor
    return stored


def _json(value: Any, what: str, path: Path) -> str:
    try:
        return json.dumps(value, sort_keys=True)
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{path}: cannot store the {what} without pickle: {err}") from None


def _model_metadata(model: nn.Module, kind: str, record: Record | None = None) -> dict[str, str]:
    config = model_config(model)
    # format: pt (the safetensors convention) and the record's parts, when there is a record.
    stored = (record or Record()).to_metadata()
    return {**stored, KIND: kind, NAME: config.name, CONFIG: config.to_json(), VERSION: __version__}


def save(
    model: nn.Module, path: str | Path, *, metadata: Mapping[str, str] | None = None, record: Record | None = None
) -> Path:
    """Write ``model``'s weights, name, config and the library version to one ``.safetensors`` file.

    ``model`` must have been built by ``fusionzoo.create`` (its config is what ``load`` rebuilds).
    ``metadata``: extra strings to store; keys starting with ``fusionzoo.`` are reserved.
    ``record``: how the weights were made and what they scored (``fusionzoo.weights.record``;
    the trainer writes one). Every file also says ``format: pt``. Returns the path written.
    """
    path = Path(path)
    extra = dict(metadata or {})
    reserved = sorted(k for k in extra if k.startswith("fusionzoo."))
    if reserved:
        raise ValueError(f"metadata: keys starting with 'fusionzoo.' are reserved, got {', '.join(reserved)}")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in extra.items()):
        raise TypeError("metadata: keys and values must be strings (safetensors stores strings only)")
    _write(path, _storable(model.state_dict()), {**extra, **_model_metadata(model, MODEL_KIND, record)})
    return path


# --- reading -------------------------------------------------------------------------------------


def _read(path: str | Path, *, tensors: bool = True) -> tuple[Path, dict[str, torch.Tensor], dict[str, str]]:
    """All tensors (on the CPU; none unless ``tensors``) and the metadata of the safetensors file at ``path``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file" + (" (it is a folder)" if path.is_dir() else ""))
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
    # A safetensors file starts with the byte length of its JSON header.
    if len(head) < 8:
        raise CheckpointError(f"{path}: truncated or not a safetensors file ({size} bytes, shorter than the 8-byte header length)")
    header = int.from_bytes(head, "little")
    if 8 + header > size:
        raise CheckpointError(f"{path}: truncated or not a safetensors file (its header claims {header} bytes, the file holds {size})")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            metadata = dict(f.metadata() or {})
            read = {key: f.get_tensor(key) for key in f.keys()} if tensors else {}
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: corrupt or truncated safetensors file ({err})") from None
    return path, read, metadata


def _config(path: Path, metadata: Mapping[str, str]) -> ModelConfig:
    if KIND not in metadata or CONFIG not in metadata:
        raise CheckpointError(
            f"{path}: a safetensors file without fusionzoo metadata (not written by fusionzoo.save); "
            "to load what fits of plain weights, use fusionzoo.load_weights"
        )
    return stored_config.parse(path, metadata[CONFIG])


def _model_tensors(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> dict[str, torch.Tensor]:
    if metadata.get(KIND) != STATE_KIND:
        return dict(tensors)
    return {k[len(_MODEL_PREFIX):]: v for k, v in tensors.items() if k.startswith(_MODEL_PREFIX)}


def _check_fits(path: Path, model: nn.Module, tensors: Mapping[str, torch.Tensor]) -> None:
    """Refuse ``tensors`` unless their names, shapes and dtypes are ``model``'s (which may be on
    ``meta``) and every value is finite; log float width changes."""
    own = model.state_dict()
    problems = tensor_table.differences(own, tensors)
    if problems:
        raise CheckpointError(f"{path}: the weights do not fit {type(model).__name__}; " + "; ".join(problems))
    tensor_table.check_finite(str(path), tensors)
    tensor_table.warn_converted(str(path), own, tensors, own)


def _load_into(path: Path, model: nn.Module, tensors: Mapping[str, torch.Tensor]) -> None:
    """Copy ``tensors`` into ``model``, or say which tensors are missing, unexpected, mis-shaped,
    of another dtype or not finite."""
    _check_fits(path, model, tensors)
    model.load_state_dict(tensors, strict=True)


def load(path: str | Path, map_location: str | torch.device | None = None) -> nn.Module:
    """The model stored at ``path``: rebuilt from the registry with its config, weights loaded.

    The model comes back in eval mode (call ``.train()`` to train it; ``fit`` does), on
    ``map_location`` (a device name, ``"auto"``, or ``None`` for the CPU). Also reads the model
    out of a training state (``state.safetensors``).

    The stored config is untrusted: the model is first built on the ``meta`` device and compared
    with the file (sizes, names, shapes, dtypes, finite values), and only a model that fits is
    built for real, so a damaged config cannot allocate more than the file holds. Any mismatch is
    a ``CheckpointError`` naming the file; float weights of another width (fp16 in an fp32 model)
    load with a logged warning.

    ``path`` may also be a pretrained folder (``save_pretrained``: its ``config.json`` and
    ``model.safetensors``, checked against each other) or ``"hf-hub:owner/name"`` (the ``[hub]`` extra).
    """
    if str(path).startswith("hf-hub:") or Path(path).is_dir():
        from .sources import load_source  # the folder formats are built on this module

        return load_source(path, map_location)
    device = resolve_device(map_location) if map_location is not None else None
    path, tensors, metadata = _read(path)
    config = _config(path, metadata)
    tensors = _model_tensors(tensors, metadata)
    skeleton = stored_config.build_on_meta(path, config)
    tensor_table.check_size(path, config.name, skeleton, tensors)
    _check_fits(path, skeleton, tensors)
    # Built again on the CPU, as before the checks existed: the same initialisation, RNG draws and
    # non-persistent state as a fresh model, now known to need no more memory than the file.
    model = config.build()
    model.load_state_dict(tensors, strict=True)
    if device is not None:
        model.to(device)
    return model.eval()


def read_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """The model tensors of the file at ``path``, by name, on the CPU, without building a model.

    Reads fusionzoo checkpoints, training states (their model part) and plain safetensors files.
    """
    _, tensors, metadata = _read(path)
    return _model_tensors(tensors, metadata)


def read_metadata(path: str | Path) -> dict[str, str]:
    """The string metadata of the safetensors file at ``path`` (no tensor is read);
    ``CheckpointError`` naming the file when it is missing, truncated or not safetensors."""
    return _read(path, tensors=False)[2]


def read_config(path: str | Path) -> ModelConfig:
    """The model config stored in the checkpoint or training state at ``path``, its structure
    checked (``CheckpointError`` naming the file for a plain safetensors file or a damaged config)."""
    path, _, metadata = _read(path, tensors=False)
    return _config(path, metadata)


def stored_name(path: str | Path) -> str | None:
    """The registry name of the model stored in the file at ``path`` (a checkpoint or a training
    state), or ``None`` for a plain safetensors file; reads the metadata only."""
    _, _, metadata = _read(path, tensors=False)
    return metadata.get(NAME)


# --- training states -----------------------------------------------------------------------------


def save_state(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    scheduler: Any = None,
    scaler: torch.amp.GradScaler | None = None,
    progress: Mapping[str, Any],
    record: Record | None = None,
) -> Path:
    """Write what a run needs to continue exactly, in one safetensors file.

    Tensors: the model's weights, the optimizer's state tensors (``optimizer.<param>.<name>``) and
    the torch RNG states (CPU, and every CUDA device when present). JSON metadata: the model's
    config, the optimizer's param groups and non-tensor state, the scheduler's and grad scaler's
    state, and ``progress`` (the trainer's epoch, step, history); ``record`` as ``save``'s.
    Returns the path written.
    """
    path = Path(path)
    tensors = {_MODEL_PREFIX + k: v for k, v in _storable(model.state_dict()).items()}
    optimizer_state = optimizer.state_dict()
    plain: dict[str, dict[str, Any]] = {}
    for index, values in optimizer_state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{_OPTIMIZER_PREFIX}{index}.{name}"] = value
            else:
                plain.setdefault(str(index), {})[name] = value
    tensors[_RNG_CPU] = torch.get_rng_state()
    if torch.cuda.is_available():
        tensors.update({f"{_RNG_CUDA}{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    metadata = _model_metadata(model, STATE_KIND, record)
    metadata[_OPTIMIZER] = _json({"param_groups": optimizer_state["param_groups"], "state": plain}, "optimizer state", path)
    if scheduler is not None:
        metadata[_SCHEDULER] = _json(scheduler.state_dict(), "scheduler state", path)
    if scaler is not None and scaler.is_enabled():
        metadata[_SCALER] = _json(scaler.state_dict(), "grad scaler state", path)
    metadata[_PROGRESS] = _json(dict(progress), "training progress", path)
    _write(path, _storable(tensors), metadata)
    return path


def _config_difference(stored: ModelConfig, current: ModelConfig) -> list[str]:
    if stored.name != current.name:
        return [f"model {stored.name!r} in the file, {current.name!r} given"]
    try:
        stored = stored.resolved()
    except TypeError:
        pass  # an option the factory dropped: listed below as a difference
    keys = sorted(set(stored.options) | set(current.options))
    return [
        f"{k}: {stored.options.get(k)!r} in the file, {current.options.get(k)!r} given"
        for k in keys
        if stored.options.get(k) != current.options.get(k)
    ]


def _check_config(path: Path, metadata: Mapping[str, str], model: nn.Module) -> None:
    differences = _config_difference(_config(path, metadata), model_config(model))
    if differences:
        raise CheckpointError(f"{path}: the run was trained with another model config: " + "; ".join(differences))


def check_config(path: str | Path, model: nn.Module) -> None:
    """Raise ``CheckpointError`` saying what differs unless the checkpoint or training state at
    ``path`` holds ``model``'s config (reads the file's metadata only)."""
    path, _, metadata = _read(path, tensors=False)
    _check_config(path, metadata, model)


def _restore_optimizer(path: Path, optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor], text: str) -> None:
    stored = json.loads(text)
    live = optimizer.state_dict()["param_groups"]
    if len(stored["param_groups"]) != len(live) or any(
        len(s["params"]) != len(g["params"]) for s, g in zip(stored["param_groups"], live)
    ):
        raise CheckpointError(
            f"{path}: the optimizer's parameter groups differ from the stored ones "
            f"(sizes {[len(s['params']) for s in stored['param_groups']]} stored, {[len(g['params']) for g in live]} given)"
        )
    # JSON turns tuples (Adam's betas) into lists; give each value back the type the optimizer uses.
    groups = [
        {k: type(g[k])(v) if isinstance(g.get(k), tuple) else v for k, v in s.items()}
        for s, g in zip(stored["param_groups"], live)
    ]
    state: dict[int, dict[str, Any]] = {int(i): dict(values) for i, values in stored["state"].items()}
    for key, tensor in tensors.items():
        if key.startswith(_OPTIMIZER_PREFIX):
            index, name = key[len(_OPTIMIZER_PREFIX):].split(".", 1)
            state.setdefault(int(index), {})[name] = tensor
    try:
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as err:
        raise CheckpointError(f"{path}: the stored optimizer state does not fit {type(optimizer).__name__} ({err})") from None


def _restore_rng(path: Path, tensors: Mapping[str, torch.Tensor]) -> None:
    torch.set_rng_state(tensors[_RNG_CPU])
    cuda = [tensors[k] for k in sorted((k for k in tensors if k.startswith(_RNG_CUDA)), key=lambda k: int(k[len(_RNG_CUDA):]))]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
    elif cuda or torch.cuda.is_available():
        log.warning("%s: CUDA RNG states not restored (%d stored, %d devices here); random ops on CUDA will differ",
                    path, len(cuda), torch.cuda.device_count() if torch.cuda.is_available() else 0)


def _check_state(path: Path, metadata: Mapping[str, str]) -> None:
    if metadata.get(KIND) != STATE_KIND:
        raise CheckpointError(
            f"{path}: not a training state (written by fusionzoo.save, not by the trainer); "
            "resume from a run folder's state.safetensors"
            if KIND in metadata
            else f"{path}: not a fusionzoo training state (no fusionzoo metadata)"
        )


def read_state_progress(path: str | Path) -> dict[str, Any]:
    """The ``progress`` a training state at ``path`` holds, from its header alone: a resume checks
    it before ``load_state`` changes any live object."""
    path, _, metadata = _read(path, tensors=False)
    _check_state(path, metadata)
    return json.loads(metadata[_PROGRESS])


def load_state(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    *,
    scheduler: Any = None,
    scaler: torch.amp.GradScaler | None = None,
) -> dict[str, Any]:
    """Restore a training state written by ``save_state`` into live objects; returns its ``progress``.

    ``model`` must have the stored config (otherwise ``CheckpointError`` says what differs); the
    model's weights, the optimizer, scheduler, grad scaler and torch RNG states are restored.
    """
    path, tensors, metadata = _read(path)
    _check_state(path, metadata)
    _check_config(path, metadata, model)
    _load_into(path, model, _model_tensors(tensors, metadata))
    _restore_optimizer(path, optimizer, tensors, metadata[_OPTIMIZER])
    if (scheduler is not None) != (_SCHEDULER in metadata):
        had = "a scheduler" if _SCHEDULER in metadata else "no scheduler"
        raise CheckpointError(f"{path}: the run had {had}; resume it with the same scheduler argument")
    if scheduler is not None:
        scheduler.load_state_dict(json.loads(metadata[_SCHEDULER]))
    if scaler is not None and scaler.is_enabled():
        if _SCALER not in metadata:
            raise CheckpointError(f"{path}: the run trained without a grad scaler (not in fp16), but one was given")
        scaler.load_state_dict(json.loads(metadata[_SCALER]))
    _restore_rng(path, tensors)
    return json.loads(metadata[_PROGRESS])
