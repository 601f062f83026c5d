"""Ray casting of batches of scenes: the camera's RGBA image and the LiDAR's depth grid.

Every function works on ``B`` scenes and ``R`` rays at once. Each object is intersected in its own
frame (slab method for cubes, closed form for spheres, a quartic for tori) and the nearest hit
along a ray wins, so objects that overlap or hide one another render correctly. The world frame has
``z`` up; a sensor's frame has ``x`` right, ``y`` forward (towards what it looks at) and ``z`` up,
which is the frame of the course's XYZA convention (``fusionzoo.data.depth_to_xyza``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._names import unknown_name

SHAPES = ("cube", "sphere", "torus")
# A torus of size s (its outer diameter) has tube radius s/6 around a ring of radius s/3.
_TORUS_RING, _TORUS_TUBE = 1.0 / 3.0, 1.0 / 6.0
_FLOOR_COLOR = np.array([0.5, 0.5, 0.5])
_MISS = -1


@dataclass(frozen=True)
class Pose:
    """Where a sensor stands and the point it looks at, in the world frame (``z`` up)."""

    position: tuple[float, float, float]
    look_at: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def frame(self) -> np.ndarray:
        """The ``(3, 3)`` sensor-to-world rotation; its columns are the sensor's x, y, z axes."""
        forward = np.subtract(self.look_at, self.position, dtype=np.float64)
        norm = np.linalg.norm(forward)
        right = np.cross(forward, (0.0, 0.0, 1.0))
        if norm == 0 or np.linalg.norm(right) < 1e-9 * norm:
            raise ValueError(f"a sensor at {self.position} looking at {self.look_at} has no horizon: "
                             "it must look at a different point, not straight up or down")
        forward /= norm
        right /= np.linalg.norm(right)
        return np.stack((right, forward, np.cross(right, forward)), axis=1)

    def to_sensor(self, points: np.ndarray) -> np.ndarray:
        """World points ``(..., 3)`` in this sensor's frame ``(..., 3)``."""
        return (np.asarray(points, dtype=np.float64) - self.position) @ self.frame()


@dataclass(frozen=True)
class Camera:
    """A pinhole camera with a square image of ``size`` pixels and a field of view ``fov`` degrees.

    ``supersample`` casts ``supersample**2`` rays per pixel and averages them (anti-aliasing).
    """

    pose: Pose
    size: int
    fov: float
    supersample: int = 1

    def rays(self) -> np.ndarray:
        """World-frame unit directions ``(S*k, S*k, 3)`` of each (sub)pixel, row 0 at the top."""
        n = self.size * self.supersample
        half = np.tan(np.radians(self.fov) / 2)
        u = ((np.arange(n) + 0.5) / n * 2 - 1) * half
        right, down = np.meshgrid(u, u)
        sensor = np.stack((right, np.ones_like(right), -down), axis=-1)
        sensor /= np.linalg.norm(sensor, axis=-1, keepdims=True)
        return sensor @ self.pose.frame().T

    def project(self, points: np.ndarray) -> np.ndarray:
        """Continuous ``(row, col)`` pixel coordinates ``(..., 2)`` of world points ``(..., 3)``.

        Pixel ``(r, c)`` covers ``[r, r+1) x [c, c+1)``; points behind the camera give NaN.
        """
        p = self.pose.to_sensor(points)
        depth = np.where(p[..., 1] > 0, p[..., 1], np.nan)
        half = np.tan(np.radians(self.fov) / 2)
        col = (p[..., 0] / depth / half + 1) / 2 * self.size
        row = (1 - p[..., 2] / depth / half) / 2 * self.size
        return np.stack((row, col), axis=-1)


def beam_directions(azimuth: np.ndarray, zenith: np.ndarray) -> np.ndarray:
    """Sensor-frame unit directions ``(H, W, 3)`` of the beams of rows ``azimuth`` (H,) and columns
    ``zenith`` (W,): ``(sin(-az) cos(-ze), cos(-az) cos(-ze), sin(-ze))``, as in FORMAT.md."""
    az = -np.asarray(azimuth, dtype=np.float64)[:, None]
    ze = -np.asarray(zenith, dtype=np.float64)[None, :]
    return np.stack(np.broadcast_arrays(np.sin(az) * np.cos(ze), np.cos(az) * np.cos(ze), np.sin(ze)), axis=-1)


@dataclass(frozen=True)
class Lidar:
    """A LiDAR whose beam ``(i, j)`` points at azimuth ``azimuth[i]``, zenith ``zenith[j]`` (radians).

    Beams with no return within ``max_range`` report ``max_range``.
    """

    pose: Pose
    azimuth: np.ndarray
    zenith: np.ndarray
    max_range: float

    def rays(self) -> np.ndarray:
        """World-frame unit directions ``(H, W, 3)`` of the beams."""
        return beam_directions(self.azimuth, self.zenith) @ self.pose.frame().T


@dataclass(frozen=True)
class Objects:
    """``K`` objects in each of ``B`` scenes.

    - ``shapes``: ``K`` names from ``SHAPES``, the same in every scene;
    - ``colors``: ``(K, 3)`` RGB albedo in [0, 1];
    - ``centers``: ``(B, K, 3)`` world positions;
    - ``sizes``: ``(B, K)`` cube edge, sphere diameter, or torus outer diameter;
    - ``rotations``: ``(B, K, 3, 3)`` object-to-world rotations.
    """

    shapes: tuple[str, ...]
    colors: np.ndarray
    centers: np.ndarray
    sizes: np.ndarray
    rotations: np.ndarray

    def __post_init__(self):
        for shape in self.shapes:
            if shape not in SHAPES:
                raise unknown_name("shape", shape, SHAPES)
        if np.ndim(self.sizes) != 2:
            raise ValueError(f"objects: sizes must be (B, K), got shape {np.shape(self.sizes)}")
        b, k = np.shape(self.sizes)
        expected = {"colors": (k, 3), "centers": (b, k, 3), "rotations": (b, k, 3, 3)}
        for name, shape in expected.items():
            if np.shape(getattr(self, name)) != shape or len(self.shapes) != k:
                raise ValueError(f"objects: {name} of shape {np.shape(getattr(self, name))} does not fit "
                                 f"{len(self.shapes)} shapes and sizes of shape {(b, k)}; expected {shape}")

    def __len__(self) -> int:
        return len(self.sizes)


@dataclass(frozen=True)
class Lighting:
    """A directional light per scene: ``direction`` ``(B, 3)`` unit vectors pointing towards the
    light, and the ``diffuse`` and ``ambient`` ``(B,)`` intensities of Lambert shading."""

    direction: np.ndarray
    diffuse: np.ndarray
    ambient: np.ndarray


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products of ``(..., 3)`` arrays, summed in a fixed order (no BLAS), so the
    result never depends on threading or batch size."""
    return a[..., 0] * b[..., 0] + a[..., 1] * b[..., 1] + a[..., 2] * b[..., 2]


def _to_local(v: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """World vectors ``v`` (M, 3) in the frames of object-to-world ``rotation`` (M, 3, 3)."""
    return np.stack([_dot(v, rotation[:, :, j]) for j in range(3)], axis=-1)


def _cube(o: np.ndarray, d: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Slab method: distances ``(M,)`` from local origins ``o`` (M, 3) along local unit directions
    ``d`` (M, 3) to cubes of edge ``size`` (M,) centred at the local origin; inf on a miss."""
    half = size[:, None] / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        t1 = (-half - o) * inv
        t2 = (half - o) * inv
    near = np.fmin(t1, t2).max(axis=-1)
    far = np.fmax(t1, t2).min(axis=-1)
    return np.where((near <= far) & (near > 0), near, np.inf)


def _sphere(o: np.ndarray, d: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Distances ``(M,)`` to spheres of diameter ``size`` (M,) at the local origin; inf on a miss."""
    b = -_dot(d, o)
    disc = b**2 - (_dot(o, o) - (size / 2) ** 2)
    with np.errstate(invalid="ignore"):
        t = b - np.sqrt(disc)
    return np.where((disc >= 0) & (t > 0), t, np.inf)


def _torus(o: np.ndarray, d: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Distances ``(M,)`` to tori of outer diameter ``size`` (M,) around the local ``z`` axis.

    Solves the quartic by companion-matrix eigenvalues, written about each ray's closest approach
    to the centre: the coefficients stay small and the roots come out to ~1e-13 of the surface.
    """
    ring2, tube2 = (size * _TORUS_RING) ** 2, (size * _TORUS_TUBE) ** 2
    b = -_dot(d, o)
    q = o + b[:, None] * d
    # (|p|^2 + R^2 - r^2)^2 = 4 R^2 (px^2 + py^2) along p = q + s d, with q . d = 0 and |d| = 1:
    # s^4 + c2 s^2 + c1 s + c0 = 0.
    g = _dot(q, q) + ring2 - tube2
    c2 = 2 * g - 4 * ring2 * (d[:, 0] ** 2 + d[:, 1] ** 2)
    c1 = -8 * ring2 * (q[:, 0] * d[:, 0] + q[:, 1] * d[:, 1])
    c0 = g**2 - 4 * ring2 * (q[:, 0] ** 2 + q[:, 1] ** 2)
    companion = np.zeros((len(g), 4, 4))
    companion[:, 1:, :3] = np.eye(3)
    companion[:, :, 3] = np.stack((-c0, -c1, -c2, np.zeros_like(g)), axis=-1)
    roots = np.linalg.eigvals(companion) if len(g) else np.zeros((0, 4), complex)
    s = np.where(np.abs(roots.imag) < 1e-3 * (1 + np.abs(roots.real)), roots.real, np.inf)
    s = np.where(s + b[:, None] > 0, s, np.inf).min(axis=-1)
    return s + b


_INTERSECT = {"cube": _cube, "sphere": _sphere, "torus": _torus}
# Radius of the sphere that bounds each shape, per unit of size.
BOUNDING_RADIUS = {"cube": 3**0.5 / 2, "sphere": 0.5, "torus": 0.5}


def cast(origin: np.ndarray, directions: np.ndarray, objects: Objects, floor: float | None = None
         ) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hits of rays from ``origin`` (3,), outside every object, along unit ``directions``
    (R, 3) in each scene.

    Returns ``t`` ``(B, R)``, the distance to the nearest hit (inf on a miss), and ``index``
    ``(B, R)``: the object hit (0..K-1), ``K`` for the floor (the plane ``z = floor``), -1 for none.
    Only the rays that pass an object's bounding sphere are intersected with the object itself.
    """
    b = len(objects)
    t = np.full((b, len(directions)), np.inf)
    index = np.full(t.shape, _MISS, dtype=np.int8)
    for k, shape in enumerate(objects.shapes):
        to_center = objects.centers[:, k] - origin
        along = _dot(directions[None, :, :], to_center[:, None, :])
        radius = BOUNDING_RADIUS[shape] * objects.sizes[:, k]
        scene, ray = np.nonzero((along > 0) & (along**2 >= (_dot(to_center, to_center) - radius**2)[:, None]))
        rotation = objects.rotations[scene, k]
        local_origin, local_directions = _to_local(-to_center[scene], rotation), _to_local(directions[ray], rotation)
        tk = _INTERSECT[shape](local_origin, local_directions, objects.sizes[scene, k])
        closer = tk < t[scene, ray]
        scene, ray = scene[closer], ray[closer]
        t[scene, ray], index[scene, ray] = tk[closer], k
    if floor is not None:
        with np.errstate(divide="ignore"):
            tf = np.where(directions[:, 2] < 0, (floor - origin[2]) / directions[:, 2], np.inf)
        closer = tf[None, :] < t
        t = np.where(closer, tf[None, :], t)
        index[closer] = len(objects.shapes)
    return t, index


def _normals(points: np.ndarray, scene: np.ndarray, k: int, objects: Objects) -> np.ndarray:
    """World-frame outward unit normals ``(M, 3)`` of object ``k`` at its surface ``points``
    ``(M, 3)``, each in scene ``scene[m]``."""
    rotation = objects.rotations[scene, k]
    local = _to_local(points - objects.centers[scene, k], rotation)
    shape = objects.shapes[k]
    if shape == "cube":
        axis = np.abs(local).argmax(axis=-1)
        normal = np.zeros_like(local)
        normal[np.arange(len(local)), axis] = np.sign(local[np.arange(len(local)), axis])
    elif shape == "sphere":
        normal = local
    else:
        ring2 = (objects.sizes[scene, k] * _TORUS_RING) ** 2
        tube2 = (objects.sizes[scene, k] * _TORUS_TUBE) ** 2
        normal = ((local**2).sum(axis=-1) + ring2 - tube2)[:, None] * local
        normal[:, :2] -= 2 * ring2[:, None] * local[:, :2]
    normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
    return np.stack([_dot(rotation[:, i, :], normal) for i in range(3)], axis=-1)


def render_lidar(lidar: Lidar, objects: Objects, floor: float | None = None) -> np.ndarray:
    """Depth grids ``(B, H, W)`` float64: the distance along each beam, ``max_range`` where none."""
    directions = lidar.rays()
    t, _ = cast(np.asarray(lidar.pose.position, dtype=np.float64), directions.reshape(-1, 3), objects, floor)
    return np.where(t < lidar.max_range, t, lidar.max_range).reshape(len(objects), *directions.shape[:2])


def render_camera(camera: Camera, objects: Objects, lighting: Lighting, floor: float | None = None) -> np.ndarray:
    """RGBA images ``(B, S, S, 4)`` uint8 with Lambert-shaded objects and floor, and a grey sky
    gradient behind them; alpha is opaque everywhere, as in the course's images."""
    directions = camera.rays()
    n, k = directions.shape[0], camera.supersample
    flat = directions.reshape(-1, 3)
    origin = np.asarray(camera.pose.position, dtype=np.float64)
    t, index = cast(origin, flat, objects, floor)
    sky = 0.6 + 0.25 * flat[:, 2:3]
    color = np.broadcast_to(sky, (len(objects), len(flat), 3)).copy()
    albedo = np.concatenate((objects.colors, _FLOOR_COLOR[None]))
    for target in range(len(objects.shapes) + 1):
        scene, ray = np.nonzero(index == target)
        if not len(scene):
            continue
        if target < len(objects.shapes):
            normal = _normals(origin + t[scene, ray, None] * flat[ray], scene, target, objects)
        else:
            normal = np.broadcast_to([0.0, 0.0, 1.0], (len(scene), 3))
        lambert = np.maximum(_dot(normal, lighting.direction[scene]), 0.0)
        shade = lighting.ambient[scene] + lighting.diffuse[scene] * lambert
        color[scene, ray] = albedo[target] * shade[:, None]
    color = color.reshape(len(objects), n // k, k, n // k, k, 3).mean(axis=(2, 4))
    rgb = np.rint(np.clip(color, 0.0, 1.0) * 255).astype(np.uint8)
    alpha = np.full(rgb.shape[:-1] + (1,), 255, dtype=np.uint8)
    return np.concatenate((rgb, alpha), axis=-1)
