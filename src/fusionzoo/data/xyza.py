"""LiDAR depth grids to XYZA, exactly as the course computed them."""

from __future__ import annotations

import torch

DEFAULT_HIT_THRESHOLD = 50.0


def depth_to_xyza(
    depth: torch.Tensor,
    azimuth: torch.Tensor,
    zenith: torch.Tensor,
    hit_threshold: float = DEFAULT_HIT_THRESHOLD,
) -> torch.Tensor:
    """Convert depth ``(..., H, W)`` to XYZA ``(..., 4, H, W)`` in the sensor frame.

    ``azimuth`` (H,) indexes rows and ``zenith`` (W,) columns (radians). With ``d`` the depth:
    ``x = d sin(-az) cos(-ze)``, ``y = d cos(-az) cos(-ze)``, ``z = d sin(-ze)``, and ``a = 1``
    where ``d < hit_threshold`` (a return), else 0. Misses keep their (max-range) coordinates,
    as in the course.
    """
    if depth.dim() < 2 or depth.shape[-2:] != (azimuth.numel(), zenith.numel()):
        raise ValueError(
            f"depth of shape {tuple(depth.shape)} does not match (len(azimuth), len(zenith)) = "
            f"({azimuth.numel()}, {zenith.numel()})"
        )
    az = -azimuth.to(depth.device, depth.dtype).reshape(-1, 1)
    ze = -zenith.to(depth.device, depth.dtype).reshape(1, -1)
    # Multiplied left to right, as the course wrote it, so float32 results match it bit for bit.
    x = depth * torch.sin(az) * torch.cos(ze)
    y = depth * torch.cos(az) * torch.cos(ze)
    z = depth * torch.sin(ze)
    a = (depth < hit_threshold).to(depth.dtype)
    return torch.stack((x, y, z, a), dim=-3)
