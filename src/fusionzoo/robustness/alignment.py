"""Corruptions of both sensors together: the camera's image shifted and rotated against the
LiDAR's grid, as a knocked mount or a stale calibration leaves it.

The LiDAR is the reference and comes back bit-identical; each image is moved by a fixed distance in
a random direction and turned by a fixed angle in a random sense (per sample), with bilinear
interpolation and black (zero) where the image moved away.
"""

from __future__ import annotations

import math

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from .registry import Corruption, register


def _misalignment(rgb: torch.Tensor, xyza: torch.Tensor, value: tuple[float, float], generator: torch.Generator):
    shift, degrees = value
    count = len(rgb)
    directions = (torch.rand(count, generator=generator) * 2 * math.pi).tolist()
    senses = (torch.randint(0, 2, (count,), generator=generator) * 2 - 1).tolist()
    out = torch.stack([
        TF.affine(rgb[i], angle=degrees * sense, translate=[shift * math.cos(d), shift * math.sin(d)], scale=1.0,
                  shear=[0.0, 0.0], interpolation=InterpolationMode.BILINEAR, fill=0.0)
        for i, (d, sense) in enumerate(zip(directions, senses))
    ]) if count else rgb.clone()
    return out, xyza.clone()


register(Corruption(
    "misalignment", "both", "shift, rotation", "pixels, degrees",
    ((1.0, 1.0), (2.0, 2.0), (3.0, 3.0), (4.0, 5.0), (6.0, 8.0)),
    "the camera image shifted (random direction) and rotated (random sense) against the LiDAR grid", _misalignment,
))
