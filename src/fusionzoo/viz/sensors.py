"""Predictions on the sensors: true and predicted centres projected onto the camera image and the
LiDAR grid, side by side.

Only data that say where the sensors stood can be drawn so: the built-in generator's folders, whose
``scene.json`` holds the ``SceneConfig``. The course's own data say nothing of it (FORMAT.md), so
``fusionzoo.sim.scene_config`` (re-exported by ``fusionzoo.viz``) returns ``None`` there and only
the 3-D picture can be drawn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..data import Samples
from ..sim.scenes import SceneConfig
from .drawing import OBJECTS, PREDICTED_COLORS, TRUE_COLORS, new_figure
from .predictions import Predictions

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def camera_pixels(config: SceneConfig, points: np.ndarray, image_size: int | None = None) -> np.ndarray:
    """Continuous ``(row, col)`` ``(..., 2)`` of world ``points`` ``(..., 3)`` in the camera image.

    The generator's own pinhole model (``Camera.project``), scaled to an image of ``image_size``
    pixels (default: as rendered). Pixel ``(r, c)`` covers ``[r, r+1) x [c, c+1)``; NaN behind the camera.
    """
    pixels = config.camera().project(np.asarray(points, dtype=np.float64))
    return pixels * ((image_size or config.image_size) / config.image_size)


def lidar_cells(config: SceneConfig, points: np.ndarray) -> np.ndarray:
    """Fractional ``(row, col)`` ``(..., 2)`` of world ``points`` ``(..., 3)`` in the LiDAR's depth grid.

    The inverse of FORMAT.md's beam directions: ``az = -atan2(x, y)`` indexes rows and
    ``ze = -asin(z / d)`` columns, interpolated between the beams' angles; cell ``(i, j)`` is
    centred on ``(i, j)``. NaN outside the grid's field of view.
    """
    lidar = config.lidar()
    p = lidar.pose.to_sensor(np.asarray(points, dtype=np.float64))
    distance = np.linalg.norm(p, axis=-1)
    azimuth = -np.arctan2(p[..., 0], p[..., 1])
    zenith = -np.arcsin(np.clip(p[..., 2] / np.where(distance > 0, distance, np.nan), -1, 1))
    return np.stack((_index(azimuth, lidar.azimuth), _index(zenith, lidar.zenith)), axis=-1)


def _index(angle: np.ndarray, beams: np.ndarray) -> np.ndarray:
    """Fractional index of ``angle`` among the monotonic ``beams`` angles; NaN outside them."""
    order = np.argsort(beams)
    return np.interp(angle, beams[order], order.astype(np.float64), left=np.nan, right=np.nan)


def plot_sensor_predictions(
    predictions: Predictions, samples: Samples, config: SceneConfig, *, title: str | None = None,
    first_index: int = 0,
) -> Figure:
    """One row per sample: the camera image and the LiDAR depth grid, each with the true (dots) and
    predicted (crosses) centres projected onto it.

    ``samples[i - first_index]`` is sample ``i`` of ``predictions.indices``. The LiDAR grid is drawn
    transposed (rows of the picture are zenith, columns azimuth), so it faces the way the image does.
    """
    count = len(predictions.indices)
    figure = new_figure(7.0, 3.3 * count + 0.6)
    axes = figure.subplots(count, 2, squeeze=False)
    for n, index in enumerate(predictions.indices):
        rgb, xyza, _ = samples[int(index) - first_index]
        camera, lidar = axes[n]
        image = rgb[:3].permute(1, 2, 0).numpy()
        camera.imshow(image, interpolation="nearest")
        size = image.shape[0]
        # imshow centres pixel (r, c) on (c, r); the projection's pixel r spans [r, r+1).
        _mark(camera, camera_pixels(config, predictions.truth[n], size)[..., ::-1] - 0.5,
              camera_pixels(config, predictions.predicted[n], size)[..., ::-1] - 0.5)
        camera.set_title(f"sample {index}: camera", fontsize=10)
        _depth(lidar, xyza.numpy())
        # The grid is shown transposed: a cell's row (azimuth) is the picture's x.
        _mark(lidar, lidar_cells(config, predictions.truth[n]), lidar_cells(config, predictions.predicted[n]))
        errors = predictions.errors[n]
        lidar.set_title(f"LiDAR depth; errors {' / '.join(f'{e:.1f}' for e in errors)}", fontsize=10)
    figure.suptitle(title or "true (dots) and predicted (crosses) centres on the sensors")
    return figure


def _depth(ax: Axes, xyza: np.ndarray) -> None:
    """The depth of a ``(4, H, W)`` XYZA grid, transposed to face as the camera does; misses blank."""
    depth = np.linalg.norm(xyza[:3], axis=0)
    ax.set_facecolor("0.85")
    ax.imshow(np.ma.masked_where(xyza[3] == 0, depth).T, cmap="viridis_r", interpolation="nearest")
    ax.set_xlabel("grid row (azimuth)")
    ax.set_ylabel("grid column (zenith)")


def _mark(ax: Axes, truth: np.ndarray, predicted: np.ndarray) -> None:
    """Each object's true ``(x, y)`` (a dot) and predicted one (a cross), joined; limits unchanged."""
    limits = ax.get_xlim(), ax.get_ylim()
    for k, name in enumerate(OBJECTS):
        (tx, ty), (px, py) = truth[k], predicted[k]
        ax.plot([tx, px], [ty, py], color="white", linewidth=1.0)
        ax.scatter([tx], [ty], s=40, color=TRUE_COLORS[name], edgecolors="white", linewidths=1.0, zorder=3)
        ax.scatter([px], [py], s=50, marker="X", color=PREDICTED_COLORS[name], edgecolors="white",
                   linewidths=0.8, zorder=3)
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])
