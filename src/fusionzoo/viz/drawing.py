"""What every picture shares: the objects' names and colours, and writing a figure or an animation.

Pictures draw on their own ``matplotlib.figure.Figure``, never on pyplot's global state, so they are
safe in threads, servers and tests. matplotlib is the ``plot`` extra; it is imported when a picture
is drawn, never when fusionzoo is.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .._files import atomic_path

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# positions.csv's order. The course drew true centres in the pure colour and predictions darker.
OBJECTS = ("red", "green", "blue")
TRUE_COLORS = {"red": (1.0, 0.0, 0.0), "green": (0.0, 0.8, 0.0), "blue": (0.0, 0.0, 1.0)}
PREDICTED_COLORS = {"red": (0.5, 0.0, 0.0), "green": (0.0, 0.4, 0.0), "blue": (0.0, 0.0, 0.5)}
STILL_FORMATS = (".png", ".svg", ".pdf")


def new_figure(width: float, height: float) -> Figure:
    """An empty figure of ``width`` x ``height`` inches, outside pyplot; ImportError names the extra."""
    try:
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError(f'pictures need matplotlib ({error}); pip install "fusionzoo[plot]"') from error
    return Figure(figsize=(width, height), layout="constrained")


def centres(positions: np.ndarray | object) -> np.ndarray:
    """Object centres ``(N, 3, 3)`` (sample, object, xyz) from ``(N, 9)`` rows of positions.csv."""
    array = np.asarray(positions, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != 3 * len(OBJECTS):
        raise ValueError(f"positions: expected (N, 9) rows (red, green, blue x y z), got shape {array.shape}")
    return array.reshape(len(array), len(OBJECTS), 3)


def save_figure(figure: Figure, path: str | os.PathLike[str], dpi: int = 100) -> Path:
    """Write ``figure`` to ``path`` (.png, .svg or .pdf, by its extension), atomically."""
    path = Path(path)
    kind = path.suffix.lower()
    if kind not in STILL_FORMATS:
        raise ValueError(f"{path}: a still picture is written as {', '.join(STILL_FORMATS)}; got {path.suffix!r}")
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format=kind[1:], dpi=dpi)
    return path


def save_animation(
    figure: Figure, update: Callable[[int], object], frames: int, path: str | os.PathLike[str], *, fps: int = 12,
    dpi: int = 72,
) -> Path:
    """Write ``frames`` frames of ``figure`` as an animated GIF at ``path``; ``update(i)`` sets frame ``i``.

    matplotlib's ``FuncAnimation`` with its Pillow writer. The writer picks the format by the file's
    extension, so the frames go to a ``.gif`` in a private folder beside ``path`` that is then renamed.
    """
    from matplotlib.animation import FuncAnimation, PillowWriter

    path = Path(path)
    if path.suffix.lower() != ".gif":
        raise ValueError(f"{path}: an animation is written as .gif; got {path.suffix!r}")
    if frames < 1:
        raise ValueError(f"frames: must be at least 1, got {frames}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if figure.get_layout_engine() is not None:
        # Laid out once and then frozen: a layout redone per frame costs time and makes the panels jitter.
        figure.draw_without_rendering()
        figure.set_layout_engine("none")
    animation = FuncAnimation(figure, update, frames=frames, blit=False, repeat=False)
    with tempfile.TemporaryDirectory(prefix=f".{path.name}.", dir=path.parent) as folder:
        partial = Path(folder) / path.name
        animation.save(partial, writer=PillowWriter(fps=fps), dpi=dpi)
        os.replace(partial, path)
    return path
