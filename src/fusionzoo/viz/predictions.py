"""The course's picture of predictions: true and predicted object centres in the scene's 3-D axes.

One 3-D panel per sample: each object's true centre (a dot in its colour) and predicted centre (a
darker cross), joined by a segment, with the distance between them written beside the prediction.
As a still (``plot_predictions``) or as a GIF whose view turns around the scene
(``animate_predictions``), the course's ``errors.gif``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from ..data import ReplicatorDataset, Samples, course_splits
from ..inference import predict
from .drawing import OBJECTS, PREDICTED_COLORS, TRUE_COLORS, centres, new_figure, save_animation

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SPLITS = ("valid", "train", "all")
COURSE_LIMIT = 6.0  # the course's axes span [-6, 6]: the objects' [-5, 5] and a margin
_ELEVATION, _AZIMUTH = 20.0, -60.0  # matplotlib's default view


@dataclass(frozen=True)
class Predictions:
    """Model outputs beside the truth for some samples: ``truth`` and ``predicted`` ``(N, 3, 3)``
    (sample, object red/green/blue, xyz), and ``indices`` ``(N,)``, the samples' numbers."""

    indices: np.ndarray
    truth: np.ndarray
    predicted: np.ndarray

    @property
    def errors(self) -> np.ndarray:
        """Distances ``(N, 3)`` between each predicted and true centre."""
        return np.linalg.norm(self.predicted - self.truth, axis=-1)


def predict_samples(
    model: nn.Module, samples: Samples, indices: Sequence[int], *, offset: int = 0, device: str | None = None
) -> Predictions:
    """``model``'s predictions for ``samples[indices]``; ``offset`` is added to the indices shown
    (the position of ``samples`` in its folder, e.g. where the validation split starts)."""
    index = torch.as_tensor(list(indices), dtype=torch.long)
    if len(index) == 0 or int(index.min()) < 0 or int(index.max()) >= len(samples):
        raise IndexError(f"indices: expected 1 or more of 0..{len(samples) - 1}, got {list(indices)}")
    rgb, xyza, target = samples.batch(index.to(samples.device))
    reads = getattr(model, "input_shapes", {"rgb": None, "xyza": None})
    output = predict(model, rgb if "rgb" in reads else None, xyza if "xyza" in reads else None, device=device)
    if output.shape[-1] != target.shape[-1]:
        raise ValueError(f"model: gives {output.shape[-1]} outputs per sample, the data {target.shape[-1]} "
                         "(three centres, x y z each); a picture needs the nine positions")
    return Predictions(index.numpy() + offset, centres(target.cpu().numpy()), centres(output.float().cpu().numpy()))


def split_predictions(
    model: nn.Module, folder: str | os.PathLike[str], *, split: str = "valid", count: int = 4, device: str | None = None
) -> tuple[Predictions, Samples, int]:
    """``model``'s predictions for the first ``count`` samples of a split of the dataset in ``folder``.

    ``split`` is ``"valid"`` (the course's validation split, the last 320 samples), ``"train"`` or
    ``"all"``; the folder is read at the model's image size. Returns the predictions, the split's
    samples and the folder index of the split's first sample.
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {', '.join(SPLITS)}, got {split!r}")
    if count < 1:
        raise ValueError(f"count: must be at least 1, got {count}")
    samples = ReplicatorDataset(folder, image_size=getattr(model, "image_size", 64))
    first = 0
    if split != "all":
        train, valid = course_splits(samples)
        samples, first = (valid, len(train)) if split == "valid" else (train, 0)
    indices = range(min(count, len(samples)))
    return predict_samples(model, samples, indices, offset=first, device=device), samples, first


def plot_predictions(predictions: Predictions, *, title: str | None = None, limit: float | None = None) -> Figure:
    """The still picture: one 3-D panel per sample, equal axis scaling, the same limits in every panel.

    ``limit`` is the half-width of each axis (default: the course's 6, more if a point lies outside).
    """
    figure, _ = _draw(predictions, title, limit)
    return figure


def animate_predictions(
    predictions: Predictions,
    path: str | os.PathLike[str],
    *,
    frames: int = 36,
    fps: int = 12,
    title: str | None = None,
    limit: float | None = None,
) -> Path:
    """Write the picture as a GIF of ``frames`` frames, the view turning once around the vertical axis."""
    figure, axes = _draw(predictions, title, limit)

    def turn(frame: int) -> None:
        for ax in axes:
            ax.view_init(elev=_ELEVATION, azim=_AZIMUTH + 360.0 * frame / frames)

    return save_animation(figure, turn, frames, path, fps=fps)


def _draw(predictions: Predictions, title: str | None, limit: float | None) -> tuple[Figure, list]:
    from matplotlib.lines import Line2D

    count = len(predictions.indices)
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    figure = new_figure(4.2 * columns, 4.0 * rows + 0.8)
    if limit is None:
        farthest = max(np.abs(predictions.truth).max(), np.abs(predictions.predicted).max())
        limit = max(COURSE_LIMIT, 2 * math.ceil((farthest + 0.5) / 2))
    axes = []
    for n in range(count):
        ax = figure.add_subplot(rows, columns, n + 1, projection="3d")
        _panel(ax, predictions, n, limit)
        axes.append(ax)
    errors = predictions.errors
    figure.suptitle(title or f"true (dots) and predicted (crosses) centres; mean error {errors.mean():.2f}")
    handles = [Line2D([], [], color=TRUE_COLORS[name], marker="o", linestyle="", label=f"{name}, true")
               for name in OBJECTS]
    handles += [Line2D([], [], color=PREDICTED_COLORS[name], marker="X", linestyle="", label=f"{name}, predicted")
                for name in OBJECTS]
    figure.legend(handles=handles, loc="outside lower center", ncol=6, fontsize="small", frameon=False)
    return figure, axes


def _panel(ax, predictions: Predictions, n: int, limit: float) -> None:
    """Sample ``n``'s three objects in one 3-D axes."""
    truth, predicted, errors = predictions.truth[n], predictions.predicted[n], predictions.errors[n]
    for k, name in enumerate(OBJECTS):
        (tx, ty, tz), (px, py, pz) = truth[k], predicted[k]
        ax.plot([tx, px], [ty, py], [tz, pz], color=PREDICTED_COLORS[name], linewidth=1.2, linestyle="--")
        ax.scatter([tx], [ty], [tz], color=TRUE_COLORS[name], s=70, marker="o", depthshade=False)
        ax.scatter([px], [py], [pz], color=PREDICTED_COLORS[name], s=70, marker="X", depthshade=False)
        ax.text(px, py, pz, f"    {errors[k]:.1f}", color=PREDICTED_COLORS[name], fontsize=9)
    ticks = np.linspace(-limit, limit, 5)
    ax.set(xlim=(-limit, limit), ylim=(-limit, limit), zlim=(-limit, limit), xticks=ticks, yticks=ticks, zticks=ticks)
    ax.set_xlabel("x", labelpad=-4)
    ax.set_ylabel("y", labelpad=-4)
    ax.set_zlabel("z", labelpad=-4)
    ax.tick_params(labelsize=8, pad=0)
    # Equal scaling, so an error looks as long along every axis; zoomed out so the labels fit.
    ax.set_box_aspect((1, 1, 1), zoom=0.9)
    ax.view_init(elev=_ELEVATION, azim=_AZIMUTH)
    ax.set_title(f"sample {predictions.indices[n]}: mean error {errors.mean():.2f}", fontsize=10)
