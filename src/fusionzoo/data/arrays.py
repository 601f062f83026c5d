"""Samples from a user's own arrays: the checks that turn ``(rgb, xyza, targets)`` into ``TensorSamples``.

A model reads ``rgb`` ``(B, rgb_channels, S, S)`` in [0, 1] and ``xyza`` ``(B, lidar_channels, S, S)``;
a user's data arrive as numpy arrays or tensors of any size, as uint8 images or floats, often
channels-last. ``from_arrays`` checks each array once, up front, and says what is wrong with which
argument and how to fix it, instead of letting a shape or dtype surface as a broadcasting error in
the middle of an epoch.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ..errors import DatasetError
from .samples import TensorSamples

#: Camera channels ``from_arrays`` takes: grey, RGB, RGB with alpha.
RGB_CHANNELS = (1, 3, 4)
#: The fewest LiDAR channels: X, Y, Z; a validity channel A and extra ones (intensity) may follow.
MIN_LIDAR_CHANNELS = 3
LAYOUTS = ("NCHW", "NHWC")


def _tensor(name: str, value: Any) -> torch.Tensor:
    """``value`` (a numpy array or a tensor) as a CPU tensor, sharing memory where it can."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if type(value).__module__.split(".")[0] == "numpy" and hasattr(value, "dtype"):
        try:
            # A reversed or otherwise negatively strided view cannot be shared; it is copied.
            return torch.from_numpy(value if all(s >= 0 for s in value.strides) else value.copy())
        except TypeError as err:
            raise DatasetError(f"{name}: a numpy array of dtype {value.dtype} cannot become a tensor ({err}); "
                               "pass numbers, e.g. array.astype(numpy.float32)") from None
    raise DatasetError(f"{name}: expected a numpy array or a torch tensor, got {type(value).__name__}; "
                       "convert it with numpy.asarray(...)")


def _image(name: str, x: torch.Tensor, layout: str) -> torch.Tensor:
    """A 4-D ``(N, C, H, W)`` view of ``x`` given in ``layout``."""
    if x.dim() != 4:
        expected = "(N, C, H, W)" if layout == "NCHW" else "(N, H, W, C)"
        raise DatasetError(f"{name}: expected a 4-D array {expected} ({layout}), got shape {tuple(x.shape)}"
                           + (" (one sample? add the batch axis with x[None])" if x.dim() == 3 else ""))
    return x.permute(0, 3, 1, 2) if layout == "NHWC" else x


def _check_channels(name: str, x: torch.Tensor, allowed: str, fits: bool, layout: str, original: tuple[int, ...]) -> None:
    if fits:
        return
    hint = ""
    last = original[-1]
    if layout == "NCHW" and (last in RGB_CHANNELS or last >= MIN_LIDAR_CHANNELS) and last < original[1]:
        hint = "; it looks channels-last: pass layout='NHWC'"
    raise DatasetError(f"{name}: expected {allowed} channels, got {x.shape[1]} (shape {original}, read as {layout}){hint}")


def _check_finite(name: str, x: torch.Tensor) -> None:
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise DatasetError(f"{name}: {bad} of {x.numel()} values are NaN or infinite; replace them (a LiDAR miss is "
                           "a finite far point with A = 0, not NaN) or drop those samples")


def _rgb(x: torch.Tensor, layout: str) -> torch.Tensor:
    """Camera images as float32 in [0, 1]: uint8 is divided by 255, floats must already lie in [0, 1]."""
    shape = tuple(x.shape)
    x = _image("rgb", x, layout)
    _check_channels("rgb", x, "1 (grey), 3 (RGB) or 4 (RGBA)", x.shape[1] in RGB_CHANNELS, layout, shape)
    if x.dtype == torch.uint8:
        return x.float().div_(255.0)
    if not x.is_floating_point():
        raise DatasetError(f"rgb: dtype {x.dtype} found; expected uint8 (0..255) or float in [0, 1]: "
                           "convert with rgb.astype(numpy.uint8) when the values are 0..255")
    _check_finite("rgb", x)
    if not x.numel():
        return x.float()
    low, high = float(x.min()), float(x.max())
    if low < 0.0 or high > 1.0:
        raise DatasetError(f"rgb: float values in [{low:g}, {high:g}] found; expected [0, 1]: "
                           + ("divide by 255, or pass uint8" if high <= 255.0 and low >= 0.0 else "rescale them"))
    return x.float()


def _xyza(x: torch.Tensor, layout: str) -> torch.Tensor:
    shape = tuple(x.shape)
    x = _image("xyza", x, layout)
    _check_channels("xyza", x, f"at least {MIN_LIDAR_CHANNELS} (X, Y, Z, then A and any extra such as intensity)",
                    x.shape[1] >= MIN_LIDAR_CHANNELS, layout, shape)
    if not x.is_floating_point():
        raise DatasetError(f"xyza: dtype {x.dtype} found; expected floating point (positions in scene units): "
                           "convert with xyza.astype(numpy.float32)")
    _check_finite("xyza", x)
    return x.float()


def _targets(x: torch.Tensor) -> torch.Tensor:
    if x.dim() == 1:
        x = x[:, None]
    if x.dim() != 2:
        raise DatasetError(f"targets: expected (N, T) or (N,), got shape {tuple(x.shape)}; flatten each sample's "
                           "targets with targets.reshape(len(targets), -1)")
    if not x.is_floating_point():
        raise DatasetError(f"targets: dtype {x.dtype} found; the models regress float targets (MSE): "
                           "convert with targets.astype(numpy.float32)")
    _check_finite("targets", x)
    return x.float()


def _resize(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """``(N, C, H, W) -> (N, C, size, size)`` by ``mode`` (``"bilinear"``, antialiased, or ``"nearest"``)."""
    if tuple(x.shape[-2:]) == (size, size):
        return x
    smooth = {"antialias": True, "align_corners": False} if mode == "bilinear" else {}
    return F.interpolate(x, size=(size, size), mode=mode, **smooth)


def from_arrays(
    rgb: Any,
    xyza: Any,
    targets: Any,
    *,
    layout: str = "NCHW",
    image_size: int | None = None,
) -> TensorSamples:
    """Training samples from a user's own arrays (numpy or torch), checked, as ``TensorSamples``.

    - ``rgb``: ``(N, C, H, W)`` camera images with ``C`` 1 (grey), 3 (RGB) or 4 (RGBA); uint8 in
      0..255 (divided by 255) or float in [0, 1].
    - ``xyza``: ``(N, L, H', W')`` float LiDAR grids with ``L >= 3``: X, Y, Z, then the validity A
      and any extra channel (intensity); build the model with ``lidar_channels=L``.
    - ``targets``: ``(N, T)`` float (``(N,)`` is read as ``T = 1``).
    - ``layout``: ``"NCHW"`` (the default) or ``"NHWC"`` for channels-last arrays (both images);
      never guessed, since a 4 x 4 image with 4 channels reads either way.
    - ``image_size``: resize both to ``S x S`` (camera: bilinear with antialiasing; LiDAR:
      nearest, so no point is invented between an object and what lies behind it). Without it the
      image must be square and the LiDAR grid the image's size, as the models take them.

    Returns float32 ``TensorSamples`` (``rgb (N, C, S, S)`` in [0, 1], ``xyza (N, L, S, S)``,
    ``targets (N, T)``) for ``fit``/``evaluate``. Every problem is a ``DatasetError`` naming the
    argument, what was found and what is expected: a shape, a channel count, a dtype, values
    out of range or not finite, sample counts that differ.
    """
    if layout not in LAYOUTS:
        raise DatasetError(f"layout: expected one of {LAYOUTS}, got {layout!r}")
    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1):
        raise DatasetError(f"image_size: expected a positive int (or None to keep the arrays' size), got {image_size!r}")
    rgb_t = _rgb(_tensor("rgb", rgb), layout)
    xyza_t = _xyza(_tensor("xyza", xyza), layout)
    targets_t = _targets(_tensor("targets", targets))
    counts = {"rgb": len(rgb_t), "xyza": len(xyza_t), "targets": len(targets_t)}
    if len(set(counts.values())) != 1:
        raise DatasetError("rgb, xyza, targets: sample counts differ ("
                           + ", ".join(f"{k} {v}" for k, v in counts.items()) + "); the first axis counts samples")
    if counts["rgb"] == 0:
        raise DatasetError("rgb, xyza, targets: no samples (the first axis has length 0)")
    if image_size is not None:
        rgb_t = _resize(rgb_t, image_size, "bilinear").clamp_(0.0, 1.0)
        xyza_t = _resize(xyza_t, image_size, "nearest")
    else:
        height, width = rgb_t.shape[-2:]
        if height != width:
            raise DatasetError(f"rgb: images of {height} x {width} found; the models take square S x S images: "
                               "pass image_size=S to resize")
        if tuple(xyza_t.shape[-2:]) != (height, width):
            raise DatasetError(f"xyza: grids of {xyza_t.shape[-2]} x {xyza_t.shape[-1]} found, the images are {height} x "
                               f"{width}; the models take both at one size: pass image_size=S to resize both")
    # contiguous(): a channels-last view would make every batch a strided gather.
    return TensorSamples(rgb_t.contiguous(), xyza_t.contiguous(), targets_t.contiguous())
