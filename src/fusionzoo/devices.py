"""Which device and which arithmetic precision a run uses, checked before any work starts."""

from __future__ import annotations

import torch

from ._names import unknown_name

#: Precision names -> the autocast dtype (``None``: plain float32, no autocast).
PRECISIONS: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _available(kind: str) -> bool:
    if kind == "cpu":
        return True
    if kind == "mps":
        return torch.backends.mps.is_available()
    backend = getattr(torch, kind, None)
    return bool(backend is not None and hasattr(backend, "is_available") and backend.is_available())


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The ``torch.device`` a run uses.

    ``"auto"`` picks CUDA, then Apple MPS, then the CPU. An explicit device (``"cuda"``,
    ``"cuda:1"``, ``"mps"``, ``"cpu"``) must be available: otherwise ``ValueError`` says so.
    A bare ``"cuda"`` resolves to the current CUDA device's index, so devices compare equal.
    """
    if isinstance(device, str) and device == "auto":
        kind = next(k for k in ("cuda", "mps", "cpu") if _available(k))
        return resolve_device(kind)
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device: {device!r} is not a device name ({err}); use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'") from None
    if not _available(resolved.type):
        raise ValueError(f"device: {str(resolved)!r} was asked for but is not available on this machine; use 'auto' or 'cpu'")
    if resolved.type == "cuda":
        count = torch.cuda.device_count()
        index = torch.cuda.current_device() if resolved.index is None else resolved.index
        if index >= count:
            raise ValueError(f"device: {str(resolved)!r} was asked for but this machine has {count} CUDA device(s)")
        return torch.device("cuda", index)
    return resolved


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for ``precision`` (``"fp32"``, ``"bf16"``, ``"fp16"``) on ``device``.

    ``None`` means plain float32. ``ValueError`` when the device cannot run that precision: fp16
    needs CUDA (it trains with a gradient scaler), bf16 needs a CPU, MPS or a CUDA device that
    supports it. Unknown names raise ``KeyError`` listing the choices.
    """
    if precision not in PRECISIONS:
        raise unknown_name("precision", precision, PRECISIONS)
    dtype = PRECISIONS[precision]
    if dtype is torch.float16 and device.type != "cuda":
        raise ValueError(f"precision: 'fp16' needs a CUDA device (it trains with a gradient scaler); on {device} use 'bf16' or 'fp32'")
    if dtype is torch.bfloat16:
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError(f"precision: {torch.cuda.get_device_name(device)} does not support 'bf16'; use 'fp16' or 'fp32'")
        if device.type not in ("cpu", "cuda", "mps"):
            raise ValueError(f"precision: 'bf16' is not supported on {device}; use 'fp32'")
    return dtype


def fits_on(device: torch.device, nbytes: int, fraction: float = 0.5) -> bool:
    """Whether ``nbytes`` of data can live on ``device`` and leave room for the model's work.

    On CUDA the data may take at most ``fraction`` of the free memory; host memory and MPS's
    unified memory are taken to fit (a failed move is caught by the caller).
    """
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= fraction * free


def channels_last_for(device: torch.device, given: bool | None) -> bool:
    """``given``, or by default whether ``channels_last`` pays on ``device``: on the CPU, where it
    measured faster for the course's models (docs/benchmarks.md); elsewhere it is unmeasured, so off."""
    return device.type == "cpu" if given is None else given


def eval_batch_for(device: torch.device, given: int | None, train_batch: int, name: str = "batch_size") -> int:
    """``given`` (checked, and named ``name`` in the error), or the validation batch size by default:
    256 on accelerators; on the CPU the training batch, since large batches measured slower there
    (their activations overflow the caches; docs/benchmarks.md)."""
    if given is None:
        return train_batch if device.type == "cpu" else 256
    if isinstance(given, bool) or not isinstance(given, int) or given < 1:
        raise ValueError(f"{name} must be a positive int, got {given!r}")
    return given
