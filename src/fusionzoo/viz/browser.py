"""The dataset browser: everything one sample holds in one figure, or a contact sheet of many.

A sample's figure shows the RGB image, the LiDAR depth, its X, Y and Z channels, the validity mask
and the sample's three positions. Every LiDAR panel is drawn transposed (the picture's rows are the
grid's columns, zenith; its columns the grid's rows, azimuth), which is how the course's sensors face
the way the camera does: on well-formed data the depth looks like the image, so a grid stored
transposed or in the wrong order shows at a glance. Where the data say where the sensors stood
(``scene.json``), the true centres are marked on the image and on the grid too.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from ..data import Samples
from ..sim.scenes import SceneConfig
from .drawing import OBJECTS, TRUE_COLORS, centres, new_figure
from .sensors import camera_pixels, lidar_cells

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

_CHANNELS = ("X", "Y", "Z")


def plot_sample(samples: Samples, index: int, config: SceneConfig | None = None, *, title: str | None = None
                ) -> Figure:
    """Sample ``index`` of ``samples``: RGB, LiDAR depth, X, Y, Z, validity and the positions.

    ``config`` (the folder's ``scene.json``, see ``viz.scene_config``) marks the true centres on
    the image and the depth grid.
    """
    _check_index(samples, index)
    rgb, xyza, target = samples[index]
    xyza = xyza.numpy()
    positions = centres(target.numpy()[None])[0]
    figure = new_figure(13.0, 6.4)
    grid = figure.add_gridspec(2, 4)
    image = figure.add_subplot(grid[0, 0])
    image.imshow(rgb[:3].permute(1, 2, 0).numpy(), interpolation="nearest")
    image.set_title(f"RGB image ({rgb.shape[1]} x {rgb.shape[2]})")
    hit = xyza[3] > 0
    depth = figure.add_subplot(grid[0, 1])
    _grid(depth, np.ma.masked_where(~hit, np.linalg.norm(xyza[:3], axis=0)), "LiDAR depth (misses blank)", "viridis_r")
    mask = figure.add_subplot(grid[0, 2])
    _grid(mask, xyza[3], f"validity: {hit.mean():.0%} of beams return", "gray", colorbar=False)
    for c, name in enumerate(_CHANNELS):
        _grid(figure.add_subplot(grid[1, c]), np.ma.masked_where(~hit, xyza[c]), f"LiDAR {name} (sensor frame)",
              "coolwarm")
    if config is not None:
        size = rgb.shape[-1]
        _points(image, camera_pixels(config, positions, size)[..., ::-1] - 0.5)
        _points(depth, lidar_cells(config, positions))
    _positions(figure.add_subplot(grid[:, 3]), positions, config is not None)
    figure.suptitle(title or f"sample {index} of {len(samples)}; LiDAR panels transposed to face as the camera does")
    return figure


def plot_contact_sheet(samples: Samples, count: int, *, start: int = 0, title: str | None = None) -> Figure:
    """``count`` samples from ``start`` on, each as its RGB image beside its LiDAR depth (transposed)."""
    if count < 1:
        raise ValueError(f"count: must be at least 1, got {count}")
    _check_index(samples, start)
    count = min(count, len(samples) - start)
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    figure = new_figure(3.4 * columns, 1.8 * rows + 0.5)
    axes = figure.subplots(rows, 2 * columns, squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for n in range(count):
        rgb, xyza, _ = samples[start + n]
        image, depth = axes[n // columns, 2 * (n % columns)], axes[n // columns, 2 * (n % columns) + 1]
        image.imshow(rgb[:3].permute(1, 2, 0).numpy(), interpolation="nearest")
        image.set_title(f"#{start + n}", fontsize=9, loc="left")
        xyza = xyza.numpy()
        depth.set_axis_on()  # framed, so the blank of the misses shows where the grid ends
        depth.set(xticks=[], yticks=[], facecolor="0.85")
        depth.imshow(np.ma.masked_where(xyza[3] == 0, np.linalg.norm(xyza[:3], axis=0)).T, cmap="viridis_r",
                     interpolation="nearest")
    figure.suptitle(title or f"samples {start}..{start + count - 1}: RGB image and LiDAR depth (transposed)")
    return figure


def _check_index(samples: Samples, index: int) -> None:
    if not 0 <= index < len(samples):
        raise IndexError(f"index: the dataset has samples 0..{len(samples) - 1}, got {index}")


def _grid(ax: Axes, values: np.ndarray, title: str, cmap: str, colorbar: bool = True) -> None:
    """An ``(H, W)`` LiDAR grid, transposed to face as the camera does, with axes naming the grid's."""
    ax.set_facecolor("0.85")
    shown = ax.imshow(values.T, cmap=cmap, interpolation="nearest")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("grid row (azimuth)", fontsize=9)
    ax.set_ylabel("grid column (zenith)", fontsize=9)
    if colorbar:
        ax.figure.colorbar(shown, ax=ax, shrink=0.8)


def _points(ax: Axes, xy: np.ndarray) -> None:
    """The three true centres ``(3, 2)`` as dots in their colours, the axes' limits unchanged."""
    limits = ax.get_xlim(), ax.get_ylim()
    for k, name in enumerate(OBJECTS):
        ax.scatter([xy[k, 0]], [xy[k, 1]], s=40, color=TRUE_COLORS[name], edgecolors="white", linewidths=1.0, zorder=3)
    ax.set_xlim(*limits[0])
    ax.set_ylim(*limits[1])


def _positions(ax: Axes, positions: np.ndarray, marked: bool) -> None:
    """The three centres ``(3, 3)`` as a table, each row in its object's colour."""
    ax.set_axis_off()
    ax.text(0.0, 0.95, "centres (world frame)", fontsize=11, weight="bold", transform=ax.transAxes)
    ax.text(0.0, 0.87, f"{'':6}{'x':>7}{'y':>7}{'z':>7}", family="monospace", transform=ax.transAxes)
    for k, name in enumerate(OBJECTS):
        x, y, z = positions[k]
        ax.text(0.0, 0.80 - 0.07 * k, f"{name:6}{x:7.2f}{y:7.2f}{z:7.2f}", family="monospace",
                color=TRUE_COLORS[name], transform=ax.transAxes)
    note = ("dots: these centres projected with\nthe scene.json sensor placement" if marked
            else "no scene.json: the sensors' placement\nis unknown, so nothing is projected")
    ax.text(0.0, 0.50, note, fontsize=9, transform=ax.transAxes, va="top")
