"""LiDAR depth grids to XYZA, exactly as the course computed them."""

from __future__ import annotations

from typing import NamedTuple

import torch

DEFAULT_HIT_THRESHOLD = 50.0


class BeamTrig(NamedTuple):
    """Each beam's direction factors, shaped to broadcast over ``(..., H, W)`` depth grids:
    ``sin(-az)``, ``cos(-az)`` (H, 1) and ``cos(-ze)``, ``sin(-ze)`` (1, W)."""

    sin_az: torch.Tensor
    cos_az: torch.Tensor
    cos_ze: torch.Tensor
    sin_ze: torch.Tensor

    @classmethod
    def of(cls, azimuth: torch.Tensor, zenith: torch.Tensor) -> BeamTrig:
        """The factors of the beams at ``azimuth`` (H,) rows and ``zenith`` (W,) columns, in radians."""
        az = -azimuth.reshape(-1, 1)
        ze = -zenith.reshape(1, -1)
        return cls(torch.sin(az), torch.cos(az), torch.cos(ze), torch.sin(ze))


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
    trig = BeamTrig.of(azimuth.to(depth.device, depth.dtype), zenith.to(depth.device, depth.dtype))
    return trig_to_xyza(depth, trig, hit_threshold)


def trig_to_xyza(depth: torch.Tensor, trig: BeamTrig, hit_threshold: float = DEFAULT_HIT_THRESHOLD) -> torch.Tensor:
    """``depth_to_xyza`` with the beams' factors computed once (``BeamTrig.of``), for converting
    batch after batch of the same sensor."""
    # Multiplied left to right, as the course wrote it, so float32 results match it bit for bit.
    if torch.is_grad_enabled() and any(t.requires_grad for t in (depth, *trig)):
        # Writes into a preallocated output are not differentiable; the stacked form is (in the
        # depth and in the beam angles, e.g. when calibrating them).
        x = depth * trig.sin_az * trig.cos_ze
        y = depth * trig.cos_az * trig.cos_ze
        a = (depth < hit_threshold).to(depth.dtype)
        return torch.stack((x, y, depth * trig.sin_ze, a), dim=-3)
    # Each channel written straight into the output, no temporaries and no stacking copy: this runs
    # on every training batch (benchmarks/dataset_load.py measures it against the stacked form).
    xyza = depth.new_empty((*depth.shape[:-2], 4, *depth.shape[-2:]))
    x, y, z, a = xyza.unbind(-3)
    torch.mul(depth, trig.sin_az, out=x).mul_(trig.cos_ze)
    torch.mul(depth, trig.cos_az, out=y).mul_(trig.cos_ze)
    torch.mul(depth, trig.sin_ze, out=z)
    torch.lt(depth, hit_threshold, out=a)
    return xyza
