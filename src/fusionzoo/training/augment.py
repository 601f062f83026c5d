"""Mirror augmentation (``fit(mirror=p)``): a training sample is replaced, with probability ``p``, by
the sample the sensors would record of its scene mirrored left to right, labels included.

Exact where the geometry is mirror-symmetric, which the built-in generator's config tells: the
camera, the LiDAR and the point they look at lie on the plane ``x = 0`` of the world (the targets'
frame), so a mirror through that plane maps each sensor onto itself with its right and left
exchanged; the LiDAR's azimuths are symmetric about 0; every shape (cube, sphere, torus) is its own
mirror image. Then the mirrored scene's camera image is the image flipped left to right, its XYZA
grid the grid with its rows (azimuth) reversed and its ``x`` negated, and its targets the targets
with each object's ``x`` negated. The light is mirrored with the scene: a scene lit from the left
becomes one lit from the right, still a scene whose positions are the labels say.
``tests/training/test_augment.py`` renders mirrored scenes and finds the flipped samples equal to
them, bit for bit. Data whose geometry is not known to be symmetric (the course's own data, samples
built by hand) are refused with ``NotMirrorSymmetricError``: a mirror of them might show a scene
no sensor of theirs could see.

Which samples are mirrored is decided as modality dropout decides (``modality_dropout``): per
sample index, from (seed, epoch), the same on any number of processes and on resume.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..data.course import TARGET_NAMES
from ..data.samples import Samples, TensorSamples
from ..errors import FusionZooError

#: Shapes the generator draws that are their own mirror image (in their local frame).
SYMMETRIC_SHAPES = ("cube", "sphere", "torus")
#: The targets' mirror: each object's ``x`` negated. A product, not an indexed assignment: on CUDA
#: indexing by a host list copies the index and makes the host wait for the device.
_TARGET_SIGN = torch.tensor([-1.0 if name.endswith("_x") else 1.0 for name in TARGET_NAMES])
_AZIMUTH_TOLERANCE = 1e-6  # radians: float32 rounding of angles stored in float64


class NotMirrorSymmetricError(FusionZooError, ValueError):
    """Mirror augmentation asked of data whose geometry does not make a mirrored sample a true one."""


def check_probability(p: float) -> float:
    """``p`` as a float in [0, 1]; ``ValueError`` naming ``mirror`` otherwise."""
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
        raise ValueError(f"mirror must be a probability in [0, 1] (0: off, the course's protocol), got {p!r}")
    return float(p)


def check_mirror_symmetric(samples: Samples | TensorSamples) -> None:
    """Refuse (``NotMirrorSymmetricError``, saying why) training samples whose mirror image is not
    known to be a true sample: see the module for what the generator's config must say."""
    problems = _asymmetries(samples)
    if problems:
        raise NotMirrorSymmetricError(
            f"mirror: the training data's geometry is not known to be mirror-symmetric, so a mirrored sample may "
            f"not be one its sensors could record: {'; '.join(problems)}. Mirroring is exact for scenes of the "
            "built-in generator (their scene.json) whose camera_position, lidar_position and look_at have x = 0, "
            "with the default shapes and LiDAR beams; train these data with mirror=0 (the default)"
        )


def _asymmetries(samples: Samples | TensorSamples) -> list[str]:
    config = _scene_config(samples)
    if config is None:
        return ["no generator config comes with them (the course's own data, samples built by hand or from "
                "arrays), so their sensors' poses are unknown"]
    problems = []
    for name in ("camera_position", "lidar_position", "look_at"):
        point = config.get(name)
        if not (isinstance(point, list) and len(point) == 3 and point[0] == 0):
            problems.append(f"{name} is {point}, off the mirror plane x = 0")
    unknown = sorted(set(config.get("shapes") or ()) - set(SYMMETRIC_SHAPES))
    if unknown:
        problems.append(f"shapes {unknown} are not known to be their own mirror image")
    azimuth = samples.azimuth
    if not torch.allclose(azimuth, -azimuth.flip(0), rtol=0.0, atol=_AZIMUTH_TOLERANCE):
        problems.append(f"the LiDAR's azimuths ({math.degrees(azimuth[0]):.3g} to {math.degrees(azimuth[-1]):.3g} "
                        "degrees) are not symmetric about 0")
    if samples.targets.shape[1] != len(TARGET_NAMES):
        problems.append(f"the targets have {samples.targets.shape[1]} columns, not the {len(TARGET_NAMES)} object "
                        "coordinates whose x a mirror negates")
    return problems


def _scene_config(samples: Samples | TensorSamples) -> Mapping[str, Any] | None:
    """The generator's config the samples' source records (``None`` when there is none)."""
    source = samples.source if isinstance(samples, Samples) and isinstance(samples.source, dict) else {}
    dataset = source.get("dataset")
    scene = dataset.get("scene") if isinstance(dataset, dict) else None
    config = scene.get("config") if isinstance(scene, dict) else None
    return config if isinstance(config, dict) else None


def mirror_batch(rgb: torch.Tensor, xyza: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The batch of the mirrored scenes: ``rgb`` ``(B, C, S, S)`` flipped left to right, ``xyza``
    ``(B, 4, H, W)`` with its rows (azimuth) reversed and channel ``x`` negated, ``target``
    ``(B, 9)`` with each object's ``x`` negated. The inputs are not modified."""
    sign = torch.ones(xyza.shape[1], 1, 1, dtype=xyza.dtype, device=xyza.device)
    sign[0] = -1
    target_sign = _TARGET_SIGN.to(target.device, target.dtype, non_blocking=True)
    return rgb.flip(-1), xyza.flip(-2) * sign, target * target_sign


@dataclass(frozen=True)
class MirrorPlan:
    """One epoch's decisions: ``mirrored`` ``(N,)`` bool over the training set's sample indices."""

    mirrored: torch.Tensor

    @classmethod
    def draw(cls, seed: int, epoch: int, count: int, p: float) -> MirrorPlan:
        """The plan of epoch ``epoch`` for ``count`` samples, each mirrored with probability ``p``; a
        function of (seed, epoch, p, count) only, drawn apart from the shuffle and modality dropout.
        Kept on the host, where the batches' indices are: see ``apply``."""
        digest = hashlib.sha256(f"fusionzoo-mirror:{seed}:{epoch}".encode()).digest()
        generator = torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))
        return cls(torch.rand(count, generator=generator) < p)

    def apply(self, index: torch.Tensor, rgb: torch.Tensor, xyza: torch.Tensor, target: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The batch of samples ``index`` ``(B,)``, each one the plan mirrors replaced by its mirror
        image (``mirror_batch``); the inputs are not modified."""
        # Chosen on the host and sent without waiting: a blocking copy, or asking the device whether
        # any is chosen, would make the host wait for the device every step (2.3x slower, 16 runs to a GPU).
        chosen = self.mirrored[index.cpu()]
        if not chosen.any():
            return rgb, xyza, target
        chosen = chosen.to(rgb.device, non_blocking=True)
        mirrored = mirror_batch(rgb, xyza, target)
        return tuple(torch.where(chosen.view(-1, *[1] * (x.dim() - 1)), m, x)  # type: ignore[return-value]
                     for x, m in zip((rgb, xyza, target), mirrored))
