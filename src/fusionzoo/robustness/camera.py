"""Camera corruptions: what a failing or degraded camera does to the RGBA image ``(B, C, S, S)``.

Every value stays in the range the images use, [0, 1]: noise and brightness are clamped there.
The colour channels are the first three (of four, RGBA); the alpha channel, constant 1 in the
course's data, is left alone except by ``camera_missing``, whose image is all zeros, and by
``camera_stuck``, which repeats another sample's whole frame. The LiDAR input always comes back
bit-identical.
"""

from __future__ import annotations

import math

import torch
from torchvision.transforms.v2 import functional as TF

from .registry import Corruption, register, sample_mask


def _colour(rgb: torch.Tensor) -> slice:
    """The colour channels: the first three (all of them in an image with fewer)."""
    return slice(0, min(3, rgb.shape[1]))


def _noise(rgb: torch.Tensor, xyza: torch.Tensor, sigma: float, generator: torch.Generator):
    out = rgb.clone()
    colour = out[:, _colour(rgb)]
    noise = torch.randn(colour.shape, generator=generator).to(rgb.device, rgb.dtype)
    out[:, _colour(rgb)] = (colour + sigma * noise).clamp(0.0, 1.0)
    return out, xyza.clone()


def _brightness(rgb: torch.Tensor, xyza: torch.Tensor, factor: float, generator: torch.Generator):
    out = rgb.clone()
    # torchvision scales and clamps to [0, 1] (the float image range).
    out[:, _colour(rgb)] = TF.adjust_brightness(rgb[:, _colour(rgb)], factor)
    return out, xyza.clone()


def _blur(rgb: torch.Tensor, xyza: torch.Tensor, sigma: float, generator: torch.Generator):
    # A kernel of 3 sigma each side, capped (odd) below the image size that reflect padding needs.
    size = min(2 * math.ceil(3 * sigma) + 1, 2 * ((min(rgb.shape[-2:]) - 1) // 2) + 1)
    return TF.gaussian_blur(rgb, kernel_size=[size, size], sigma=[sigma, sigma]), xyza.clone()


def _occlusion(rgb: torch.Tensor, xyza: torch.Tensor, side: float, generator: torch.Generator):
    out = rgb.clone()
    height, width = rgb.shape[-2:]
    ph, pw = max(1, round(side * height)), max(1, round(side * width))
    tops = torch.randint(0, height - ph + 1, (len(rgb),), generator=generator).tolist()
    lefts = torch.randint(0, width - pw + 1, (len(rgb),), generator=generator).tolist()
    for i, (top, left) in enumerate(zip(tops, lefts)):
        out[i, _colour(rgb), top : top + ph, left : left + pw] = 0.0  # a black, opaque occluder
    return out, xyza.clone()


def _missing(rgb: torch.Tensor, xyza: torch.Tensor, fraction: float, generator: torch.Generator):
    hit = sample_mask(len(rgb), fraction, generator).to(rgb.device)
    return rgb.masked_fill(hit.view(-1, 1, 1, 1), 0.0), xyza.clone()


def _stuck(rgb: torch.Tensor, xyza: torch.Tensor, fraction: float, generator: torch.Generator):
    count = len(rgb)
    hit = sample_mask(count, fraction, generator)
    # A random cycle through the batch: every sample's "other" frame is a different sample's (a
    # batch of one has no other frame and stays as it is).
    order = torch.randperm(count, generator=generator)
    source = torch.empty(count, dtype=torch.long)
    source[order] = order.roll(-1)
    source = torch.where(hit, source, torch.arange(count))
    return rgb[source.to(rgb.device)], xyza.clone()


for _c in (
    Corruption("camera_noise", "camera", "noise standard deviation", "pixel value, image in [0, 1]",
               (0.02, 0.05, 0.1, 0.2, 0.3), "Gaussian noise added to each colour value, clamped to [0, 1]", _noise),
    Corruption("camera_brightness", "camera", "brightness factor", "times",
               (1.2, 1.4, 1.6, 1.8, 2.0), "colour values multiplied by the factor, clamped to [0, 1] (over-exposure)",
               _brightness),
    Corruption("camera_darkness", "camera", "brightness factor", "times",
               (0.8, 0.6, 0.4, 0.25, 0.1), "colour values multiplied by the factor (under-exposure, dusk)", _brightness),
    Corruption("camera_blur", "camera", "Gaussian blur sigma", "pixels",
               (0.5, 1.0, 1.5, 2.0, 3.0), "defocus: a Gaussian blur of the whole image (kernel 2 ceil(3 sigma) + 1)", _blur),
    Corruption("camera_occlusion", "camera", "patch side", "fraction of the image side",
               (0.1, 0.2, 0.3, 0.4, 0.5), "a black square patch at a random place in each image (dirt, a leaf)",
               _occlusion),
    Corruption("camera_missing", "camera", "samples hit", "fraction of the batch",
               (0.2, 0.4, 0.6, 0.8, 1.0), "the camera's whole image is zeros (no signal)", _missing),
    Corruption("camera_stuck", "camera", "samples hit", "fraction of the batch",
               (0.2, 0.4, 0.6, 0.8, 1.0), "the camera repeats another sample's frame (a frozen stream)", _stuck),
):
    register(_c)
