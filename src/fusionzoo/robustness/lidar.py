"""LiDAR corruptions: what a failing or degraded LiDAR does to the XYZA grid ``(B, 4, H, W)``
(rows: azimuth beams, columns: zenith; scene units; ``a = 1`` for a return).

Every corrupted scan is encoded as the data encode one (``fusionzoo.data.xyza``): a return whose
depth reaches the reader's hit threshold (50), and every lost return, becomes a miss, ``a = 0`` with
its coordinates at the generator's max range (``MISS_RANGE``, 60) along its own beam; a return moved
along its beam has x, y and z scaled together. The camera input always comes back bit-identical.
"""

from __future__ import annotations

import torch

from ..data.xyza import DEFAULT_HIT_THRESHOLD
from .registry import Corruption, register, sample_mask

#: The depth the scene generator stores for a beam without a return (``SceneConfig.max_range``).
MISS_RANGE = 60.0


def to_misses(xyza: torch.Tensor, lost: torch.Tensor) -> torch.Tensor:
    """``xyza`` ``(B, 4, H, W)`` with the returns where ``lost`` ``(B, H, W)`` is True turned into
    misses: ``a = 0``, x, y, z moved along the beam to ``MISS_RANGE``. Misses already there are
    left bit-identical; ``xyza`` itself is not modified."""
    lost = lost & (xyza[:, 3] > 0.5)
    xyz = xyza[:, :3]
    depth = torch.linalg.vector_norm(xyz, dim=1, keepdim=True).clamp_min(1e-12)
    out = xyza.clone()
    out[:, :3] = torch.where(lost.unsqueeze(1), xyz * (MISS_RANGE / depth), xyz)
    out[:, 3] = xyza[:, 3].masked_fill(lost, 0.0)
    return out


def _rows_lost(xyza: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Every return of the rows where ``rows`` ``(B, H)`` is True becomes a miss."""
    return to_misses(xyza, rows.to(xyza.device).unsqueeze(-1).expand(-1, -1, xyza.shape[-1]))


def _beam_dropout(rgb: torch.Tensor, xyza: torch.Tensor, every: int, generator: torch.Generator):
    count, height = len(xyza), xyza.shape[-2]
    phase = torch.randint(0, every, (count, 1), generator=generator)
    rows = (torch.arange(height).unsqueeze(0) - phase) % every == 0
    return rgb.clone(), _rows_lost(xyza, rows)


def _point_dropout(rgb: torch.Tensor, xyza: torch.Tensor, fraction: float, generator: torch.Generator):
    lost = torch.rand(xyza[:, 3].shape, generator=generator) < fraction
    return rgb.clone(), to_misses(xyza, lost.to(xyza.device))


def _range_noise(rgb: torch.Tensor, xyza: torch.Tensor, sigma: float, generator: torch.Generator):
    returns = xyza[:, 3] > 0.5
    xyz = xyza[:, :3]
    depth = torch.linalg.vector_norm(xyz, dim=1)
    noise = torch.randn(depth.shape, generator=generator).to(xyza.device, xyza.dtype)
    # Moved along the beam: x, y, z scaled together; never through the sensor.
    moved = (depth + sigma * noise).clamp_min(1e-3)
    scale = torch.where(returns, moved / depth.clamp_min(1e-12), torch.ones_like(depth))
    out = xyza.clone()
    out[:, :3] = xyz * scale.unsqueeze(1)
    # A return pushed to the hit threshold reads as a miss, as the data would record it.
    return rgb.clone(), to_misses(out, returns & (moved >= DEFAULT_HIT_THRESHOLD))


def _fov_loss(rgb: torch.Tensor, xyza: torch.Tensor, fraction: float, generator: torch.Generator):
    count, height = len(xyza), xyza.shape[-2]
    width = max(1, round(fraction * height))
    start = torch.randint(0, height - width + 1, (count, 1), generator=generator)
    row = torch.arange(height).unsqueeze(0)
    return rgb.clone(), _rows_lost(xyza, (row >= start) & (row < start + width))


def _missing(rgb: torch.Tensor, xyza: torch.Tensor, fraction: float, generator: torch.Generator):
    hit = sample_mask(len(xyza), fraction, generator).to(xyza.device)
    return rgb.clone(), xyza.masked_fill(hit.view(-1, 1, 1, 1), 0.0)


for _c in (
    Corruption("lidar_beam_dropout", "lidar", "every k-th beam row lost", "k",
               (16, 8, 4, 3, 2), "every k-th azimuth row (random phase per sample) returns nothing: its returns "
               "become misses", _beam_dropout),
    Corruption("lidar_point_dropout", "lidar", "returns lost", "fraction of returns",
               (0.1, 0.2, 0.35, 0.5, 0.75), "each return independently becomes a miss", _point_dropout),
    Corruption("lidar_range_noise", "lidar", "range noise standard deviation", "scene units",
               (0.05, 0.1, 0.2, 0.4, 0.8), "each return moved along its beam by Gaussian noise (the generator's "
               "own is 0.02)", _range_noise),
    Corruption("lidar_fov_loss", "lidar", "azimuth sector lost", "fraction of the rows",
               (0.125, 0.25, 0.375, 0.5, 0.75), "a contiguous sector of azimuth rows (random place per sample) "
               "returns nothing", _fov_loss),
    Corruption("lidar_missing", "lidar", "samples hit", "fraction of the batch",
               (0.2, 0.4, 0.6, 0.8, 1.0), "the LiDAR input is all zeros (no sensor: the models' default fill for "
               "an absent input)", _missing),
):
    register(_c)
