"""The built-in scene generator: red, green and blue objects seen by a camera and a LiDAR.

``generate_scenes`` writes the layout of FORMAT.md (``positions.csv``, ``azimuth.npy``,
``zenith.npy``, ``rgb/*.png``, ``lidar/*.npy``) plus ``scene.json``, the config that made it, so
``ReplicatorDataset`` reads it like the course's own data. Every sample draws from its own random
stream (seed, sample index), so a dataset is the same byte for byte however it is batched, and
however many processes render it (``workers``): each renders whole batches of scenes it draws
from their samples' streams and writes their files.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import multiprocessing
import os
import re
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from .._names import did_you_mean, unknown_name
from ..errors import DatasetError
from .._version import __version__
from .render import BOUNDING_RADIUS, SHAPES, Camera, Lidar, Lighting, Objects, Pose, render_camera, render_lidar
from ..data.course import CACHE_FOLDER, SCENE_FILE
from ..data.xyza import DEFAULT_HIT_THRESHOLD

log = logging.getLogger(__name__)

COLORS = {"red": (0.85, 0.10, 0.08), "green": (0.10, 0.70, 0.12), "blue": (0.10, 0.20, 0.85)}
POSITION_COLUMNS = tuple(f"{color}_{axis}" for color in COLORS for axis in "xyz")
ROTATIONS = ("none", "yaw", "full")
BACKGROUNDS = ("gradient", "floor")
FORMAT_NAME = "fusionzoo-scenes"
MANIFEST = SCENE_FILE
_DATA_FILES = ("positions.csv", "azimuth.npy", "zenith.npy")
_SAMPLE_FOLDERS = {"rgb": ".png", "lidar": ".npy"}
_MAX_LISTED = 5  # entries named in an error
_BATCH = 32  # scenes rendered at once: bounds memory, never changes the output
_TASK_BATCHES = 4  # batches per task of a worker: a task's result (positions) is small, its scheduling cheap


def _knob(default: Any, help: str) -> Any:
    """A config field with its one-line ``help`` (for the CLI's ``--help``)."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class SceneConfig:
    """Every knob of the scene generator; saved as ``scene.json`` beside the data.

    The defaults are chosen so that neither sensor is enough alone, the story of the course's
    cubes dataset:

    - The three objects are identical cubes whose sizes and rotations are drawn the same way
      whatever their colour, so the LiDAR (geometry, no colour) cannot tell which cube is red. Even
      knowing all three centres exactly, the best it can do is guess the mean of the three for each
      colour: an MSE of (2/3)(10^2/12) ~ 5.6 per coordinate, near the chance level of 8.3.
    - The camera sees colour, but it stands 24 units from a volume 10 units deep, so the objects'
      distances vary by a factor of about 1.7; ``size_jitter`` = 0.4 makes their sizes vary by
      2.3x, so apparent size is no depth cue. Nothing casts shadows, the light changes from scene to
      scene (``light_jitter``), and the background is a plain gradient, so nothing else gives the
      distance away either.
    - The camera and the LiDAR stand together and look the same way, and the LiDAR's rows run left
      to right as the image's columns do (azimuth decreases with the row index). The course's
      ``matmul`` fusion contracts the image features' column axis with the LiDAR features' row axis,
      so it pairs features that look the same way; early fusion stacks the image with the LiDAR grid
      as is, which is the image's transpose (rows are azimuth, columns zenith), so its channels are
      not aligned.

    Angles are in degrees; positions in world units (the world frame has ``z`` up).
    """

    samples: int = _knob(9999, "number of scenes (the course had 9999)")
    seed: int = _knob(0, "random seed; the same config and seed give byte-identical files")
    shapes: tuple[str, str, str] = _knob(
        ("cube", "cube", "cube"), f"shapes of the red, green and blue objects ({', '.join(SHAPES)})"
    )
    extent: float = _knob(5.0, "object centres are uniform in [-extent, extent]^3")
    object_size: float = _knob(2.0, "mean cube edge, sphere diameter or torus outer diameter")
    size_jitter: float = _knob(0.4, "sizes are uniform in object_size * [1 - size_jitter, 1 + size_jitter]")
    rotation: str = _knob("yaw", f"random rotation of each object: {', '.join(ROTATIONS)} (yaw: about the vertical)")
    image_size: int = _knob(64, "camera image width and height in pixels")
    camera_fov: float = _knob(42.0, "camera field of view, degrees")
    camera_position: tuple[float, float, float] = _knob((0.0, -24.0, 8.0), "camera position (world frame)")
    supersample: int = _knob(2, "camera rays per pixel side, averaged (anti-aliasing)")
    lidar_grid: tuple[int, int] = _knob((64, 64), "LiDAR beams: rows (azimuth) and columns (zenith)")
    lidar_fov: tuple[float, float] = _knob((42.0, 42.0), "LiDAR angular extent: azimuth and zenith, degrees")
    lidar_position: tuple[float, float, float] = _knob((0.0, -24.0, 8.0), "LiDAR position (world frame)")
    look_at: tuple[float, float, float] = _knob((0.0, 0.0, 0.0), "the point both sensors look at")
    range_noise: float = _knob(0.02, "standard deviation of the Gaussian noise on each LiDAR return")
    max_range: float = _knob(60.0, f"depth stored for beams with no return (at least {DEFAULT_HIT_THRESHOLD:g})")
    light_direction: tuple[float, float, float] = _knob((-0.5, -1.0, 1.5), "direction towards the light (world frame)")
    ambient: float = _knob(0.35, "ambient light; the directional light adds up to 1 - ambient")
    light_jitter: float = _knob(0.3, "per-scene jitter of the light's direction and intensities")
    background: str = _knob(
        "gradient", f"what lies behind the objects: {', '.join(BACKGROUNDS)} (a floor both sensors see)"
    )

    def __post_init__(self):
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name), f.default))
        _validate(self)

    # Derived geometry ---------------------------------------------------------------------------

    @property
    def max_object_size(self) -> float:
        return self.object_size * (1 + self.size_jitter)

    @property
    def reach(self) -> float:
        """Half-width of the box that every object stays inside, whatever its draw."""
        radius = max(BOUNDING_RADIUS[shape] for shape in self.shapes) * self.max_object_size
        return self.extent + radius

    @property
    def floor_height(self) -> float | None:
        """Height of the floor plane (just below every object), or None without a floor."""
        return -self.reach if self.background == "floor" else None

    def camera(self) -> Camera:
        return Camera(Pose(self.camera_position, self.look_at), self.image_size, self.camera_fov, self.supersample)

    def lidar(self) -> Lidar:
        """The LiDAR; its rows run left to right (azimuth decreasing), columns top to bottom."""
        rows, cols = self.lidar_grid
        az, ze = (math.radians(a) / 2 for a in self.lidar_fov)
        azimuth, zenith = np.linspace(az, -az, rows), np.linspace(-ze, ze, cols)
        return Lidar(Pose(self.lidar_position, self.look_at), azimuth, zenith, self.max_range)

    # Serialisation ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The knobs as JSON-ready values (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, knobs: Mapping[str, Any]) -> SceneConfig:
        """A config from knob values; unknown names raise ``KeyError`` listing the knobs."""
        return cls(**_known(knobs))

    def replace(self, **knobs: Any) -> SceneConfig:
        """This config with some knobs changed (validated again)."""
        return dataclasses.replace(self, **_known(knobs))


def _known(knobs: Mapping[str, Any]) -> dict[str, Any]:
    names = [f.name for f in dataclasses.fields(SceneConfig)]
    for name in knobs:
        if name not in names:
            raise unknown_name("scene knob", name, names)
    return dict(knobs)


def _coerce(name: str, value: Any, default: Any) -> Any:
    """``value`` as the type of the knob's ``default`` (lists become tuples), or ValueError."""
    if isinstance(default, tuple):
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise ValueError(f"{name}: expected {len(default)} values, got {value!r}")
        items = tuple(value)
        if len(items) != len(default):
            raise ValueError(f"{name}: expected {len(default)} values, got {len(items)}: {value!r}")
        return tuple(_coerce(name, v, d) for v, d in zip(items, default))
    if isinstance(default, bool) or isinstance(value, bool):
        raise ValueError(f"{name}: expected a number or name, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, (int, np.integer)) or (isinstance(value, float) and value.is_integer()):
            return int(value)
        raise ValueError(f"{name}: expected an integer, got {value!r}")
    if isinstance(default, float):
        if isinstance(value, (int, float, np.number)) and math.isfinite(float(value)):
            return float(value)
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    if not isinstance(value, str):
        raise ValueError(f"{name}: expected a name, got {value!r}")
    return value


def _choice(name: str, value: str, choices: Iterable[str]) -> None:
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name}: unknown value {value!r}.{did_you_mean(value, choices)} Choose from {', '.join(choices)}")


def _between(
    name: str, value: float, low: float, high: float, *, low_open: bool = False, high_open: bool = False
) -> None:
    if (value <= low if low_open else value < low) or (value >= high if high_open else value > high):
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name}: must lie in {interval}, got {value:g}")


def _validate(c: SceneConfig) -> None:
    for name in ("samples", "image_size", "supersample"):
        if getattr(c, name) < 1:
            raise ValueError(f"{name}: must be at least 1, got {getattr(c, name)}")
    if min(c.lidar_grid) < 1:
        raise ValueError(f"lidar_grid: both sizes must be at least 1, got {c.lidar_grid}")
    if c.seed < 0:
        raise ValueError(f"seed: must be non-negative, got {c.seed}")
    for shape in c.shapes:
        _choice("shapes", shape, SHAPES)
    _choice("rotation", c.rotation, ROTATIONS)
    _choice("background", c.background, BACKGROUNDS)
    _between("extent", c.extent, 0, math.inf, low_open=True)
    _between("object_size", c.object_size, 0, math.inf, low_open=True)
    _between("size_jitter", c.size_jitter, 0, 1, high_open=True)
    _between("camera_fov", c.camera_fov, 0, 180, low_open=True, high_open=True)
    _between("lidar_fov", c.lidar_fov[0], 0, 360, low_open=True)
    _between("lidar_fov", c.lidar_fov[1], 0, 180, low_open=True)
    _between("range_noise", c.range_noise, 0, math.inf)
    _between("ambient", c.ambient, 0, 1)
    _between("light_jitter", c.light_jitter, 0, 1)
    if c.max_range < DEFAULT_HIT_THRESHOLD:
        raise ValueError(f"max_range: must be at least the reader's hit threshold {DEFAULT_HIT_THRESHOLD:g}, "
                         f"or its misses would read as returns; got {c.max_range:g}")
    if not any(c.light_direction):
        raise ValueError("light_direction: must not be the zero vector")
    if c.max_object_size > 2 * c.extent:
        raise ValueError(f"object_size: objects up to {c.max_object_size:g} across (object_size * (1 + size_jitter)) "
                         f"cannot fit in the placement volume, {2 * c.extent:g} across (2 * extent)")
    for name in ("camera_position", "lidar_position"):
        position = np.asarray(getattr(c, name))
        if np.abs(position).max() <= c.reach:
            raise ValueError(f"{name}: {getattr(c, name)} lies where objects can be (|x|, |y|, |z| <= {c.reach:g}); "
                             "move it outside that box")
        try:
            Pose(getattr(c, name), c.look_at).frame()
        except ValueError as error:
            raise ValueError(f"{name}/look_at: {error}") from None
    corners = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * c.reach
    farthest = np.linalg.norm(corners - np.asarray(c.lidar_position), axis=1).max()
    if farthest >= DEFAULT_HIT_THRESHOLD:
        raise ValueError(f"lidar_position: objects can be {farthest:.1f} away, beyond the reader's hit threshold "
                         f"{DEFAULT_HIT_THRESHOLD:g}, where their returns would read as misses; move it closer")


@dataclass(frozen=True)
class Scenes:
    """The random draw of ``B`` scenes: the objects, the light, and the LiDAR range noise
    ``(B, H, W)`` added to each return."""

    objects: Objects
    lighting: Lighting
    range_noise: np.ndarray

    def __len__(self) -> int:
        return len(self.objects)

    @property
    def positions(self) -> np.ndarray:
        """``(B, 9)`` object centres in ``positions.csv`` order: red xyz, green xyz, blue xyz."""
        return self.objects.centers.reshape(len(self), -1)

    @classmethod
    def from_poses(
        cls,
        config: SceneConfig,
        centers: np.ndarray,
        sizes: np.ndarray | None = None,
        rotations: np.ndarray | None = None,
    ) -> Scenes:
        """Scenes with the red, green and blue objects at chosen ``centers`` ``(B, 3, 3)``.

        ``sizes`` ``(B, 3)`` default to ``config.object_size`` and ``rotations`` ``(B, 3, 3, 3)``
        to none; the light is ``config``'s own, unjittered, and the LiDAR has no range noise.
        """
        centers = np.asarray(centers, dtype=np.float64)
        b, k = centers.shape[:2]
        colors = np.array(list(COLORS.values()))
        sizes = np.full((b, k), config.object_size) if sizes is None else np.asarray(sizes, dtype=np.float64)
        if rotations is None:
            rotations = np.broadcast_to(np.eye(3), (b, k, 3, 3))
        light = np.asarray(config.light_direction, dtype=np.float64) / np.linalg.norm(config.light_direction)
        return cls(
            Objects(config.shapes, colors, centers, sizes, np.asarray(rotations, dtype=np.float64)),
            Lighting(np.tile(light, (b, 1)), np.full(b, 1 - config.ambient), np.full(b, config.ambient)),
            np.zeros((b, *config.lidar_grid)),
        )


def _rotation(q: np.ndarray, kind: str) -> np.ndarray:
    """Rotation matrices ``(K, 3, 3)`` from standard-normal draws ``q`` ``(K, 4)``: a uniform
    random rotation (the normalised quaternion) or one about ``z`` (the angle of ``q[:, :2]``)."""
    if kind == "none":
        return np.broadcast_to(np.eye(3), (len(q), 3, 3)).copy()
    if kind == "yaw":
        angle = np.arctan2(q[:, 1], q[:, 0])
        c, s, zero, one = np.cos(angle), np.sin(angle), np.zeros(len(q)), np.ones(len(q))
        return np.stack((c, -s, zero, s, c, zero, zero, zero, one), axis=-1).reshape(-1, 3, 3)
    w, x, y, z = (q / np.linalg.norm(q, axis=1, keepdims=True)).T
    return np.stack(
        (
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ),
        axis=-1,
    ).reshape(-1, 3, 3)


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The random stream of sample ``index``: independent of every other sample's."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))


def draw_scenes(config: SceneConfig, indices: Iterable[int]) -> Scenes:
    """The scenes of samples ``indices``, each from its own stream ``sample_rng(seed, i)``.

    Every draw is made whatever the knobs, in a fixed order, so changing one knob (say
    ``rotation``) leaves the others' effects (say the positions) as they were.
    """
    centers, sizes, rotations, light, diffuse, ambient, noise = [], [], [], [], [], [], []
    base = np.asarray(config.light_direction) / np.linalg.norm(config.light_direction)
    k, j = len(config.shapes), config.light_jitter
    for i in indices:
        rng = sample_rng(config.seed, i)
        centers.append(rng.uniform(-config.extent, config.extent, (k, 3)))
        sizes.append(config.object_size * (1 + config.size_jitter * (2 * rng.random(k) - 1)))
        rotations.append(_rotation(rng.standard_normal((k, 4)), config.rotation))
        direction = base + j * rng.standard_normal(3)
        light.append(direction / max(np.linalg.norm(direction), 1e-12))
        scale = 1 + j * (rng.random(2) - 0.5)
        diffuse.append((1 - config.ambient) * scale[0])
        ambient.append(config.ambient * scale[1])
        # Drawn last, and only when wanted, so the grid size and noise level change nothing else.
        noise.append(config.range_noise * rng.standard_normal(config.lidar_grid) if config.range_noise
                     else np.zeros(config.lidar_grid))
    colors = np.array(list(COLORS.values()))
    objects = Objects(config.shapes, colors, np.array(centers).reshape(-1, k, 3), np.array(sizes).reshape(-1, k),
                      np.array(rotations).reshape(-1, k, 3, 3))
    lighting = Lighting(np.array(light).reshape(-1, 3), np.array(diffuse), np.array(ambient))
    return Scenes(objects, lighting, np.array(noise).reshape(-1, *config.lidar_grid))


def render_scenes(config: SceneConfig, scenes: Scenes) -> tuple[np.ndarray, np.ndarray]:
    """RGBA images ``(B, S, S, 4)`` uint8 and LiDAR depths ``(B, H, W)`` float32 of ``scenes``.

    Returns beyond the reader's hit threshold (only the floor's can be that far) count as misses,
    so every stored depth below ``max_range`` is a return the reader sees as one.
    """
    floor = config.floor_height
    rgb = render_camera(config.camera(), scenes.objects, scenes.lighting, floor)
    depth = render_lidar(config.lidar(), scenes.objects, floor)
    depth = np.where(depth < config.max_range, depth + scenes.range_noise, config.max_range)
    depth = np.where(depth < DEFAULT_HIT_THRESHOLD, depth, config.max_range)
    return rgb, depth.astype(np.float32)


def generate_scenes(
    root: str | os.PathLike[str],
    config: SceneConfig | None = None,
    *,
    overwrite: bool = False,
    progress: bool = True,
    workers: int | None = None,
    **knobs: Any,
) -> Path:
    """Generate a dataset of random scenes in ``root``; returns its path.

    ``config`` (default ``SceneConfig()``) with ``knobs`` overriding its fields, for example
    ``generate_scenes("data/cubes", samples=2000, seed=0, image_size=128)``. A folder that already
    holds this very dataset (same config and library version) is left as it is. Anything else in
    ``root`` raises ``FileExistsError`` unless ``overwrite`` is true, and even then only a dataset
    this generator wrote (its ``scene.json`` says so) is replaced, and only the files it owns: other
    files beside it stay, and a folder the generator did not write is refused. The files are written
    to a temporary sibling folder and moved into ``root`` once complete, so an interrupted run
    leaves no dataset behind (and the next run deletes the sibling a killed run left).

    ``workers`` processes render the scenes (default: one per CPU core this process may use); the
    files are the same byte for byte for any number of them.
    """
    config = (config or SceneConfig()).replace(**knobs)
    workers = _workers(workers)
    root = Path(os.path.abspath(root))  # so "." has a name and a parent to write beside
    if not overwrite and _same_dataset(root, config):
        log.info("%s already holds this dataset (%d scenes); left as it is", root, config.samples)
        return root

    def fill(folder: Path, bar: tqdm) -> np.ndarray:
        return _render_all(folder, config, workers, bar)

    return _write(root, config, fill, source="generate_scenes", overwrite=overwrite, progress=progress)


def write_scenes(
    root: str | os.PathLike[str],
    config: SceneConfig,
    scenes: Scenes,
    *,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Render given ``scenes`` (for example objects at chosen poses) into a dataset in ``root``.

    ``config`` supplies the sensors, background and ``max_range``; its random draws are unused.
    The folder rules are those of ``generate_scenes``.
    """
    config = config.replace(samples=len(scenes))

    def fill(folder: Path, bar: tqdm) -> np.ndarray:
        positions = []
        for start in range(0, len(scenes), _BATCH):
            positions.append(_render_into(folder, config, _slice(scenes, start, start + _BATCH), start))
            bar.update(len(positions[-1]))
        return np.concatenate(positions)

    return _write(Path(os.path.abspath(root)), config, fill, source="write_scenes", overwrite=overwrite,
                  progress=progress)


def _workers(workers: int | None) -> int:
    if workers is None:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int (processes that render), got {workers!r}")
    return workers


def _render_into(folder: Path, config: SceneConfig, scenes: Scenes, start: int) -> np.ndarray:
    """Render ``scenes``, samples ``start, start + 1, ...``, into ``folder``'s ``rgb/`` and ``lidar/``;
    returns their positions ``(B, 9)``."""
    rgb, depth = render_scenes(config, scenes)
    for i, (image, grid) in enumerate(zip(rgb, depth), start=start):
        Image.fromarray(image, "RGBA").save(folder / "rgb" / f"{i:04d}.png", format="PNG")
        np.save(folder / "lidar" / f"{i:04d}.npy", grid)
    return scenes.positions


def _render_range(folder: Path, config: SceneConfig, start: int, stop: int) -> np.ndarray:
    """Draw and render samples ``start:stop`` in batches of ``_BATCH`` counted from sample 0, as a
    serial run batches them; returns their positions ``(stop - start, 9)``."""
    return np.concatenate([
        _render_into(folder, config, draw_scenes(config, range(a, min(a + _BATCH, stop))), a)
        for a in range(start, stop, _BATCH)
    ])


def _render_all(folder: Path, config: SceneConfig, workers: int, bar: tqdm) -> np.ndarray:
    """Every sample of ``config`` rendered into ``folder`` by ``workers`` processes (this one
    alone when that is 1 or there is one task); returns the positions ``(samples, 9)``."""
    step = _BATCH * _TASK_BATCHES
    starts = range(0, config.samples, step)
    if workers == 1 or len(starts) == 1:
        positions = []
        for start in range(0, config.samples, _BATCH):
            positions.append(_render_range(folder, config, start, min(start + _BATCH, config.samples)))
            bar.update(len(positions[-1]))
        return np.concatenate(positions)
    done: dict[int, np.ndarray] = {}
    pool = ProcessPoolExecutor(min(workers, len(starts)), mp_context=_start_method(), initializer=_ignore_interrupts)
    try:
        pending = {pool.submit(_render_range, folder, config, a, min(a + step, config.samples)): a for a in starts}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                start = pending.pop(future)
                done[start] = future.result()  # a worker's exception is raised here
                bar.update(len(done[start]))
    finally:
        # Cancel what has not started and wait for what has, so no worker writes into the folder
        # once the caller deletes it.
        pool.shutdown(wait=True, cancel_futures=True)
    return np.concatenate([done[a] for a in starts])


def _start_method() -> multiprocessing.context.BaseContext:
    """Fork on Linux: a worker starts at once, without importing torch again; it runs numpy and PIL
    only, never torch, so the parent's threads are no hazard to it. Spawn elsewhere (macOS and
    Windows, where fork is unsafe or missing)."""
    return multiprocessing.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def _ignore_interrupts() -> None:
    """In a worker: Ctrl-C is the parent's to handle (it cancels the tasks and removes the folder)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _slice(scenes: Scenes, start: int, stop: int) -> Scenes:
    o, light = scenes.objects, scenes.lighting
    return Scenes(
        Objects(o.shapes, o.colors, o.centers[start:stop], o.sizes[start:stop], o.rotations[start:stop]),
        Lighting(light.direction[start:stop], light.diffuse[start:stop], light.ambient[start:stop]),
        scenes.range_noise[start:stop],
    )


def _manifest(config: SceneConfig, source: str) -> dict[str, Any]:
    return {"format": FORMAT_NAME, "fusionzoo_version": __version__, "source": source, "config": config.to_dict()}


def scene_config(root: str | os.PathLike[str]) -> SceneConfig | None:
    """The ``SceneConfig`` the generator wrote beside the dataset in ``root`` (``scene.json``: where
    the sensors stood), or ``None`` where there is none (the course's own data).

    A ``scene.json`` that is not the generator's raises ``DatasetError`` naming the file.
    """
    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        if manifest.get("format") != FORMAT_NAME:
            raise ValueError(f"its format is {manifest.get('format')!r}, not {FORMAT_NAME!r}")
        return SceneConfig.from_dict(manifest["config"])
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise DatasetError(f"{path}: not a scene description written by fusionzoo's generator ({error}); "
                           f"remove it, or generate the dataset again") from error


def _read_manifest(root: Path) -> dict[str, Any] | None:
    """``root/scene.json`` if this generator wrote it (its format is ours), else None."""
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("format") == FORMAT_NAME else None


def _same_dataset(root: Path, config: SceneConfig) -> bool:
    return _read_manifest(root) == _manifest(config, "generate_scenes") and (root / "positions.csv").is_file()


def _is_sample(name: str, suffix: str, count: int) -> bool:
    """Whether ``name`` is the file of one of ``count`` samples (``0000.png``, ..., as ``_write`` names them)."""
    stem = name[: -len(suffix)]
    return (name.endswith(suffix) and stem.isascii() and stem.isdigit() and int(stem) < count
            and stem == f"{int(stem):04d}")


def _owned(root: Path, manifest: Mapping[str, Any]) -> list[str]:
    """The entries of ``root`` that its generated dataset owns: all that ``overwrite`` replaces.

    A generated dataset owns its manifest, the three data files, ``rgb/`` and ``lidar/`` (which must
    hold its samples' files and nothing else) and the reader's cache folder; every other entry of
    ``root`` is the user's and stays. The sample files follow from the manifest's sample count, so
    manifests of every version read alike. Raises ``FileExistsError`` naming what is not ours.
    """
    config = manifest.get("config")
    count = config.get("samples") if isinstance(config, dict) else None
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise FileExistsError(f"{root / MANIFEST}: its config has no sample count (samples: {count!r}), so the files "
                              "the dataset owns are unknown; delete the folder yourself or choose another one")
    for folder, suffix in _SAMPLE_FOLDERS.items():
        path = root / folder
        if not os.path.lexists(path):
            continue
        if not path.is_dir():
            raise FileExistsError(f"{path}: is not a folder, so the generator did not write it; move it out of "
                                  f"{root} or choose another output folder")
        # Dot-files are the operating system's (.DS_Store and the like), as the reader takes them too.
        foreign = sorted(name for name in os.listdir(path)
                         if not name.startswith(".") and not _is_sample(name, suffix, count))
        if foreign:
            raise FileExistsError(
                f"{path}/: holds {len(foreign)} file(s) the generator did not write ({_listed(foreign)}); "
                "overwriting would delete them with the folder: move them out, or choose another output folder"
            )
    return [name for name in (MANIFEST, *_DATA_FILES, *_SAMPLE_FOLDERS, CACHE_FOLDER) if os.path.lexists(root / name)]


def _listed(names: list[str]) -> str:
    shown = ", ".join(map(repr, names[:_MAX_LISTED]))
    return shown + (f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


def _check_destination(root: Path, overwrite: bool) -> list[str]:
    """The entries of ``root`` to replace (``_owned``); raises ``FileExistsError`` unless ``root`` is
    missing, empty or (with ``overwrite``) holds a dataset this generator wrote."""
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root}: exists and is not a folder; choose another output folder")
    if not root.is_dir() or not any(root.iterdir()):
        return []
    manifest = _read_manifest(root)
    if manifest is None:
        entries = sorted(p.name + "/" * p.is_dir() for p in root.iterdir())
        raise FileExistsError(
            f"{root}: is not a dataset the generator wrote (no {MANIFEST} of format {FORMAT_NAME!r}); it holds "
            f"{_listed(entries)}. overwrite only replaces generated datasets and never deletes other files "
            "(this may be the course's own data): choose an empty or new output folder"
        )
    owned = _owned(root, manifest)
    if not overwrite:
        raise FileExistsError(
            f"{root}: already holds a different dataset; pass overwrite=True (--overwrite) to replace it"
        )
    kept = sorted(set(os.listdir(root)) - set(owned))
    if kept:
        log.info("%s: keeping %s, which the dataset does not own", root, ", ".join(map(repr, kept)))
    return owned


def _write(
    root: Path, config: SceneConfig, fill: Callable[[Path, tqdm], np.ndarray], *, source: str, overwrite: bool,
    progress: bool,
) -> Path:
    owned = _check_destination(root, overwrite)
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(root)
    partial = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-{os.getpid()}-", dir=root.parent))
    try:
        (partial / "rgb").mkdir()
        (partial / "lidar").mkdir()
        lidar = config.lidar()
        np.save(partial / "azimuth.npy", lidar.azimuth)
        np.save(partial / "zenith.npy", lidar.zenith)
        with tqdm(total=config.samples, unit="scene", desc="rendering", disable=not progress) as bar:
            positions = fill(partial, bar)
        _write_positions(partial / "positions.csv", positions)
        # scene.json goes last: a folder without it was never finished.
        (partial / MANIFEST).write_text(json.dumps(_manifest(config, source), indent=2) + "\n")
        _move_into_place(partial, root, owned)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    log.info("wrote %d scenes to %s", config.samples, root)
    return root


def _remove_abandoned(root: Path) -> None:
    """Delete the temporary siblings of ``root`` that killed runs left (``SIGKILL``, power loss: no
    ``except`` ran); a run still writing keeps its own (its process id is in the name)."""
    pattern = re.compile(re.escape(f".{root.name}.partial-") + r"(?P<pid>[0-9]+)-.+")
    for entry in root.parent.iterdir():
        match = pattern.fullmatch(entry.name)
        if match and entry.is_dir() and not _process_alive(int(match["pid"])):
            log.info("removing %s, left by an interrupted run", entry)
            shutil.rmtree(entry, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    if os.name == "nt":
        return True  # probing a process id with os.kill would terminate it there
    try:
        os.kill(pid, 0)  # signal 0: delivers nothing, only checks the process exists
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return pid < 2**31  # exists under another user; an id past the limit is no process
    return True


def _write_positions(path: Path, positions: np.ndarray) -> None:
    """``positions.csv``: the header, then each sample's 9 centres, exactly (shortest round-trip)."""
    lines = [",".join(POSITION_COLUMNS)] + [",".join(repr(float(v)) for v in row) for row in positions]
    path.write_text("\n".join(lines) + "\n")


def _move_into_place(partial: Path, root: Path, owned: list[str]) -> None:
    """Move the finished dataset in ``partial`` into ``root``, replacing the ``owned`` entries of the
    dataset there and leaving every other entry of ``root`` where it is.

    The old entries are set aside, manifest first, so a half-moved folder never passes for a
    finished dataset; the new ones come in, manifest last; the old ones are then deleted. If a move
    fails, every entry goes back where it was.
    """
    if not owned:
        os.replace(partial, root)  # onto a missing or empty folder: one atomic rename
        return
    old = Path(tempfile.mkdtemp(prefix=f".{root.name}.old-", dir=root.parent))
    new = sorted(p.name for p in partial.iterdir() if p.name != MANIFEST) + [MANIFEST]
    aside: list[str] = []
    placed: list[str] = []
    try:
        for name in owned:
            os.replace(root / name, old / name)
            aside.append(name)
        for name in new:
            os.replace(partial / name, root / name)
            placed.append(name)
    except BaseException:
        for name in reversed(placed):
            os.replace(root / name, partial / name)
        for name in reversed(aside):
            os.replace(old / name, root / name)
        old.rmdir()
        raise
    shutil.rmtree(old)
    partial.rmdir()
