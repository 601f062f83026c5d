"""The scene generator: geometry read back through ReplicatorDataset, determinism, knobs, folders."""

from __future__ import annotations

import itertools
import json
import os

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fusionzoo
from fusionzoo.data import ReplicatorDataset
from fusionzoo.sim import SceneConfig, generate_scenes
from fusionzoo.sim import scenes as scenes_module
from fusionzoo.sim.render import Lidar, Objects, Pose, beam_directions, render_camera, render_lidar
from fusionzoo.sim.scenes import POSITION_COLUMNS, Scenes, draw_scenes, write_scenes

# A zoomed-in view of the middle of the volume: a size-3 cube spans ~6 beams and ~6 pixels.
CLOSE = dict(samples=1, image_size=16, lidar_grid=(16, 16), camera_fov=20.0, lidar_fov=(20.0, 20.0),
             supersample=1, range_noise=0.0, light_jitter=0.0, object_size=3.0, size_jitter=0.0)
# A small dataset of the whole volume.
TINY = dict(samples=4, image_size=16, lidar_grid=(16, 16), supersample=1)
OUT_OF_VIEW = (0.0, -40.0, 8.0)  # behind both sensors: never seen, never hit
RED, GREEN, BLUE = range(3)


def yaw_pitch(yaw: float, pitch: float) -> np.ndarray:
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    return np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]]) @ np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])


def world_points(config: SceneConfig, xyza) -> tuple[np.ndarray, np.ndarray]:
    """The returns of one XYZA grid ``(4, H, W)`` moved to the world frame ``(M, 3)``, and the hit mask."""
    xyza = np.asarray(xyza, dtype=np.float64)
    hit = xyza[3] > 0.5
    sensor = xyza[:3][:, hit].T
    return np.asarray(config.lidar_position) + sensor @ config.lidar().pose.frame().T, hit


def lidar_points(lidar: Lidar, depth: np.ndarray) -> np.ndarray:
    """The returns of a depth grid ``(H, W)`` from ``render_lidar``, in the world frame ``(M, 3)``."""
    hit = depth < lidar.max_range
    sensor = depth[hit, None] * beam_directions(lidar.azimuth, lidar.zenith)[hit]
    return np.asarray(lidar.pose.position) + sensor @ lidar.pose.frame().T


def cube_distance(points: np.ndarray, center, size: float, rotation=np.eye(3)) -> np.ndarray:
    """Signed distance (> 0 outside) of ``points`` (M, 3) to the surface of a cube."""
    local = np.abs((points - np.asarray(center)) @ np.asarray(rotation)) - size / 2
    return np.linalg.norm(np.maximum(local, 0), axis=-1) + np.minimum(local.max(axis=-1), 0)


def just_before(points: np.ndarray, sensor) -> np.ndarray:
    """``points`` moved 1e-3 back along their beams from ``sensor``."""
    beams = points - np.asarray(sensor)
    return points - 1e-3 * beams / np.linalg.norm(beams, axis=1, keepdims=True)


def written(tmp_path, config: SceneConfig, centers, sizes=None, rotations=None, name="scene") -> ReplicatorDataset:
    scenes = Scenes.from_poses(config, np.asarray(centers, dtype=float)[None], sizes, rotations)
    root = write_scenes(tmp_path / name, config, scenes)
    return ReplicatorDataset(root, image_size=config.image_size, cache=False)


def files(root) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# Geometry ---------------------------------------------------------------------------------------


def test_every_lidar_return_of_a_single_cube_lies_on_its_surface(tmp_path):
    config = SceneConfig(**CLOSE)
    rotation = yaw_pitch(0.4, 0.3)
    center = (0.5, -0.3, 0.2)
    rotations = np.stack([rotation, np.eye(3), np.eye(3)])[None]
    ds = written(tmp_path, config, [center, OUT_OF_VIEW, OUT_OF_VIEW], rotations=rotations)
    _, xyza, target = ds[0]
    points, hit = world_points(config, xyza)
    assert hit.sum() >= 20
    assert np.abs(cube_distance(points, center, 3.0, rotation)).max() < 1e-3
    assert (cube_distance(just_before(points, config.lidar_position), center, 3.0, rotation) > 0).all()
    assert np.allclose(target[:3].numpy(), center, atol=1e-6)
    assert (ds.depth[0][~torch.from_numpy(hit)] == config.max_range).all()


@pytest.mark.parametrize("color", [RED, GREEN, BLUE])
def test_camera_pixel_at_the_projected_centre_has_the_cube_colour(tmp_path, color):
    config = SceneConfig(**CLOSE)
    centers = [OUT_OF_VIEW] * 3
    centers[color] = (1.0, 0.5, -0.5)
    ds = written(tmp_path, config, centers)
    rgb, _, _ = ds[0]
    row, col = config.camera().project(np.array(centers[color])).astype(int)
    pixel = rgb[:3, row, col]
    assert int(pixel.argmax()) == color
    assert float(pixel.max() - pixel.min()) > 0.2  # a colour, not a grey background


@pytest.mark.parametrize(("light", "front", "top"), [((0.0, -1.0, 0.5), 0.8944, 0.4472), ((1.0, 0.0, 0.0), 0.0, 0.0)])
def test_faces_are_lambert_shaded(tmp_path, light, front, top):
    config = SceneConfig(**{**CLOSE, "light_direction": light})
    center = np.array([0.0, 0.0, 0.0])
    rgb = (written(tmp_path, config, [center, OUT_OF_VIEW, OUT_OF_VIEW])[0][0][:3] * 255).numpy()
    red = np.asarray(scenes_module.COLORS["red"])
    for normal, lit in (((0.0, -1.0, 0.0), front), ((0.0, 0.0, 1.0), top)):
        row, col = config.camera().project(center + 1.5 * np.asarray(normal)).astype(int)  # the face's centre
        expected = 255 * red * (config.ambient + (1 - config.ambient) * lit)
        assert np.abs(rgb[:, row, col] - expected).max() <= 1.0


def test_a_cube_hidden_behind_another_gets_no_returns(tmp_path):
    config = SceneConfig(**CLOSE)
    front = np.array([0.0, 0.0, 0.0])
    away = front - np.asarray(config.lidar_position)
    behind = front + 8 * away / np.linalg.norm(away)  # on the same line of sight, 8 units further
    sizes = np.array([[3.0, 1.0, 3.0]])
    hidden = written(tmp_path, config, [front, behind, OUT_OF_VIEW], sizes=sizes, name="hidden")
    alone = written(tmp_path, config, [OUT_OF_VIEW, behind, OUT_OF_VIEW], sizes=sizes, name="alone")

    points, _ = world_points(config, alone[0][1])
    assert len(points) > 0 and np.abs(cube_distance(points, behind, 1.0)).max() < 1e-3  # visible on its own
    points, _ = world_points(config, hidden[0][1])
    assert np.abs(cube_distance(points, front, 3.0)).max() < 1e-3
    assert np.abs(cube_distance(points, behind, 1.0)).min() > 0.5
    green = hidden[0][0][:3]
    assert not ((green[1] > green[0] + 0.1) & (green[1] > green[2] + 0.1)).any()  # nor seen by the camera


def test_positions_csv_holds_the_centres_of_the_rendered_cubes(tmp_path):
    config = SceneConfig(**{**TINY, "lidar_grid": (48, 48), "rotation": "none", "size_jitter": 0.0, "range_noise": 0.0,
                            "object_size": 3.0})
    ds = ReplicatorDataset(generate_scenes(tmp_path / "cubes", config, progress=False), image_size=16, cache=False)
    lines = (tmp_path / "cubes" / "positions.csv").read_text().splitlines()
    assert lines[0] == ",".join(POSITION_COLUMNS) == "red_x,red_y,red_z,green_x,green_y,green_z,blue_x,blue_y,blue_z"
    assert np.array_equal(np.loadtxt(lines[1:], delimiter=","), draw_scenes(config, range(4)).positions)
    for i in range(len(ds)):
        _, xyza, target = ds[i]
        points, _ = world_points(config, xyza)
        centres = target.numpy().astype(float).reshape(3, 3)
        distances = np.abs(np.stack([cube_distance(points, c, 3.0) for c in centres]))
        assert distances.min(axis=0).max() < 1e-3  # every return is on one of the listed cubes
        assert (distances < 1e-3).any(axis=1).all()  # and every listed cube has returns


def test_default_sensors_see_the_whole_volume_and_lidar_rows_run_like_image_columns():
    config = SceneConfig()
    corners = np.array(list(itertools.product((-config.extent, config.extent), repeat=3)))
    pixels = config.camera().project(corners)
    assert ((pixels >= 0) & (pixels <= config.image_size)).all()
    lidar = config.lidar()
    sensor = Pose(config.lidar_position, config.look_at).to_sensor(corners)
    azimuth = -np.arctan2(sensor[:, 0], sensor[:, 1])
    zenith = -np.arcsin(sensor[:, 2] / np.linalg.norm(sensor, axis=1))
    assert lidar.azimuth.min() <= azimuth.min() and azimuth.max() <= lidar.azimuth.max()
    assert lidar.zenith.min() <= zenith.min() and zenith.max() <= lidar.zenith.max()
    # Row 0 looks left, as image column 0 does; column 0 looks up, as image row 0 does.
    assert lidar.azimuth[0] > lidar.azimuth[-1] and lidar.zenith[0] < lidar.zenith[-1]


def test_lidar_grid_is_the_transpose_of_the_image_when_the_sensors_stand_together(tmp_path):
    config = SceneConfig(**{**CLOSE, "lidar_fov": (20.0, 20.0)})
    ds = written(tmp_path, config, [(2.0, 0.0, 1.5), OUT_OF_VIEW, OUT_OF_VIEW])
    rgb, xyza, _ = ds[0]
    red = ((rgb[0] > rgb[1] + 0.2) & (rgb[0] > rgb[2] + 0.2)).numpy()
    hit = xyza[3].numpy() > 0.5
    image_rows, image_cols = np.nonzero(red)
    beam_rows, beam_cols = np.nonzero(hit)
    assert abs(image_cols.mean() - beam_rows.mean()) < 1.0 and abs(image_rows.mean() - beam_cols.mean()) < 1.0


@settings(max_examples=25, deadline=None)
@given(
    center=st.tuples(*[st.floats(-4, 4)] * 3),
    size=st.floats(1.0, 4.0),
    quaternion=st.tuples(*[st.floats(-1, 1)] * 4).filter(lambda q: np.linalg.norm(q) > 0.1),
)
def test_any_posed_cube_has_all_returns_on_its_surface(center, size, quaternion):
    q = np.asarray(quaternion) / np.linalg.norm(quaternion)
    rotation = scenes_module._rotation(q[None], "full")[0]
    lidar = SceneConfig(lidar_grid=(48, 48)).lidar()  # beams 0.4 apart at the volume: a cube always gets some
    objects = Objects(("cube",), np.eye(3)[:1], np.array([[center]]), np.array([[size]]), rotation[None, None])
    points = lidar_points(lidar, render_lidar(lidar, objects)[0])
    assert len(points) > 0 and np.abs(cube_distance(points, center, size, rotation)).max() < 1e-6
    assert (cube_distance(just_before(points, lidar.pose.position), center, size, rotation) > 0).all()


def shape_distance(shape: str, local: np.ndarray) -> np.ndarray:
    """Signed distance (> 0 outside) of local points (M, 3) to a size-3 sphere or torus."""
    if shape == "sphere":  # radius 1.5
        return np.linalg.norm(local, axis=1) - 1.5
    return np.hypot(np.hypot(local[:, 0], local[:, 1]) - 1.0, local[:, 2]) - 0.5  # ring 1, tube 0.5


@pytest.mark.parametrize("shape", ["sphere", "torus"])
def test_sphere_and_torus_returns_lie_on_the_side_facing_the_sensor(shape):
    config = SceneConfig(**{**CLOSE, "shapes": (shape, "cube", "cube")})
    center, tilt = np.array([0.5, 0.0, 0.3]), yaw_pitch(0.3, 0.9)
    scenes = Scenes.from_poses(config, [[center, OUT_OF_VIEW, OUT_OF_VIEW]], rotations=[[tilt, np.eye(3), np.eye(3)]])
    points = lidar_points(config.lidar(), render_lidar(config.lidar(), scenes.objects)[0])
    before = just_before(points, config.lidar_position)
    assert len(points) >= 10
    assert np.abs(shape_distance(shape, (points - center) @ tilt)).max() < 1e-6
    assert (shape_distance(shape, (before - center) @ tilt) > 0).all()  # the first surface, not the far one
    image = render_camera(config.camera(), scenes.objects, scenes.lighting)[0]
    solid = center if shape == "sphere" else center + tilt @ [1.0, 0.0, 0.0]  # a torus's centre is its hole
    row, col = config.camera().project(solid).astype(int)
    assert int(image[row, col, :3].argmax()) == RED


def test_floor_is_seen_by_both_sensors_and_far_returns_read_as_misses(tmp_path):
    config = SceneConfig(**{**TINY, "background": "floor", "range_noise": 0.0})
    ds = ReplicatorDataset(generate_scenes(tmp_path / "floor", config, progress=False), image_size=16, cache=False)
    points, _ = world_points(config, ds[0][1])
    on_floor = np.abs(points[:, 2] - config.floor_height) < 1e-3
    assert on_floor.sum() > 20
    depth = ds.depth.numpy()
    assert ((depth < 50) | (depth == config.max_range)).all()


# Determinism ------------------------------------------------------------------------------------


def test_same_config_and_seed_give_identical_bytes_and_a_new_seed_new_data(tmp_path):
    config = SceneConfig(**TINY)
    a = files(generate_scenes(tmp_path / "a", config, progress=False))
    b = files(generate_scenes(tmp_path / "b", config, progress=False))
    c = files(generate_scenes(tmp_path / "c", config, seed=1, progress=False))
    assert a == b
    assert len(a) == 2 * 4 + 4
    assert a["positions.csv"] != c["positions.csv"]
    assert all(a[f"rgb/{i:04d}.png"] != c[f"rgb/{i:04d}.png"] for i in range(4))
    assert all(a[f"lidar/{i:04d}.npy"] != c[f"lidar/{i:04d}.npy"] for i in range(4))


def test_batching_does_not_change_the_output(tmp_path, monkeypatch):
    config = SceneConfig(**{**TINY, "samples": 5})
    reference = files(generate_scenes(tmp_path / "a", config, progress=False))
    monkeypatch.setattr(scenes_module, "_BATCH", 2)
    assert files(generate_scenes(tmp_path / "b", config, progress=False)) == reference
    tail = draw_scenes(config, [3, 4])
    assert np.array_equal(tail.positions, draw_scenes(config, range(5)).positions[3:])


def test_changing_one_knob_keeps_the_other_draws():
    base = SceneConfig(**TINY)
    for knobs in ({"rotation": "full"}, {"size_jitter": 0.0}, {"lidar_grid": (8, 8)}, {"light_jitter": 0.9}):
        changed = base.replace(**knobs)
        assert np.array_equal(draw_scenes(base, range(4)).positions, draw_scenes(changed, range(4)).positions)


def test_scene_json_documents_the_dataset(tmp_path):
    config = SceneConfig(**TINY)
    root = generate_scenes(tmp_path / "cubes", config, progress=False)
    manifest = json.loads((root / "scene.json").read_text())
    assert manifest["fusionzoo_version"] == fusionzoo.__version__
    assert SceneConfig.from_dict(manifest["config"]) == config
    assert np.load(root / "azimuth.npy").shape == (16,) and np.load(root / "zenith.npy").shape == (16,)


# Knobs ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("knob", "value"),
    [
        ("samples", 0), ("samples", -3), ("samples", 2.5), ("seed", -1), ("image_size", 0), ("lidar_grid", (0, 16)),
        ("lidar_grid", (16,)), ("object_size", 0.0), ("object_size", 12.0), ("size_jitter", 1.0), ("max_range", 40.0),
        ("camera_position", (0.0, 0.0, 0.0)), ("lidar_position", (0.0, -60.0, 0.0)), ("rotation", "spin"),
        ("shapes", ("cube", "cube", "cone")), ("background", "sky"), ("camera_fov", 180.0), ("range_noise", -0.1),
        ("light_direction", (0.0, 0.0, 0.0)), ("ambient", 1.5), ("extent", float("nan")),
        ("look_at", (0.0, -24.0, 8.0)),
    ],
)
def test_invalid_knob_raises_value_error_naming_it(knob, value, tmp_path):
    with pytest.raises(ValueError, match=knob):
        SceneConfig(**{knob: value})
    with pytest.raises(ValueError, match=knob):
        generate_scenes(tmp_path / "never", **{knob: value})
    assert not (tmp_path / "never").exists()


def test_unknown_knob_raises_key_error_listing_the_knobs(tmp_path):
    with pytest.raises(KeyError, match="samples"):
        generate_scenes(tmp_path / "x", sample=3)
    with pytest.raises(KeyError, match="Did you mean 'object_size'"):
        SceneConfig.from_dict({"objectsize": 2.0})


def test_knobs_accept_lists_and_round_trip_through_json():
    config = SceneConfig(lidar_grid=[32, 16], camera_position=[0, -30, 5], shapes=["cube", "sphere", "torus"])
    assert config.lidar_grid == (32, 16) and config.camera_position == (0.0, -30.0, 5.0)
    assert SceneConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


# Folders ----------------------------------------------------------------------------------------


def test_an_existing_dataset_is_never_overwritten_unless_asked(tmp_path):
    root = generate_scenes(tmp_path / "cubes", SceneConfig(**TINY), progress=False)
    before = files(root)
    with pytest.raises(FileExistsError, match="overwrite"):
        generate_scenes(root, SceneConfig(**TINY), seed=5, progress=False)
    assert files(root) == before
    generate_scenes(root, SceneConfig(**TINY), seed=5, overwrite=True, progress=False)
    assert files(root)["positions.csv"] != before["positions.csv"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cubes"]  # nothing left aside


def test_regenerating_the_same_dataset_leaves_it_as_it_is(tmp_path, monkeypatch):
    config = SceneConfig(**TINY)
    root = generate_scenes(tmp_path / "cubes", config, progress=False)
    monkeypatch.setattr(scenes_module, "render_scenes", lambda *a: pytest.fail("rendered again"))
    assert generate_scenes(root, config, progress=False) == root


def test_a_folder_of_other_files_is_refused_even_with_overwrite(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(FileExistsError, match="not a dataset"):
            generate_scenes(tmp_path / "mine", samples=2, overwrite=overwrite, progress=False)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="not a folder"):
        generate_scenes(tmp_path / "file", samples=2, overwrite=True, progress=False)


def test_an_empty_existing_folder_is_filled_even_as_the_working_folder(tmp_path, monkeypatch):
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path / "empty")
    root = generate_scenes(".", SceneConfig(**TINY), progress=False)
    assert root == tmp_path / "empty"
    assert len(ReplicatorDataset(root, image_size=16, cache=False)) == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


@pytest.mark.parametrize("existing", [False, True])
def test_an_interrupted_run_leaves_no_dataset_and_loses_nothing(tmp_path, monkeypatch, existing):
    config = SceneConfig(**{**TINY, "samples": 5})
    root = tmp_path / "cubes"
    before = files(generate_scenes(root, config, seed=9, progress=False)) if existing else None
    render, calls = scenes_module.render_scenes, []

    def failing(*args):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return render(*args)

    monkeypatch.setattr(scenes_module, "_BATCH", 2)
    monkeypatch.setattr(scenes_module, "render_scenes", failing)
    with pytest.raises(KeyboardInterrupt):
        generate_scenes(root, config, overwrite=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == (["cubes"] if existing else [])
    if existing:
        assert files(root) == before


def test_overwrite_replaces_only_the_files_of_the_generated_dataset(tmp_path):
    root = generate_scenes(tmp_path / "cubes", SceneConfig(**TINY), progress=False)
    ReplicatorDataset(root, image_size=16)  # writes the reader's cache, which the dataset owns
    (root / "notes.txt").write_text("keep me")
    (root / "photos").mkdir()
    (root / "photos" / "a.jpg").write_bytes(b"\xff\xd8")
    (root / "rgb" / ".DS_Store").write_bytes(b"")
    # An older library version's manifest is honoured the same way.
    manifest = json.loads((root / "scene.json").read_text())
    (root / "scene.json").write_text(json.dumps({**manifest, "fusionzoo_version": "0.0.1"}))
    generate_scenes(root, SceneConfig(**TINY), seed=5, overwrite=True, progress=False)
    fresh = generate_scenes(tmp_path / "fresh", SceneConfig(**TINY), seed=5, progress=False)
    mine = {"notes.txt": b"keep me", "photos/a.jpg": b"\xff\xd8"}
    assert files(root) == {**files(fresh), **mine}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cubes", "fresh"]  # nothing left aside


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("manifest", [None, '{"format": "replicator"}', "not json"])
def test_a_dataset_the_generator_did_not_write_is_refused_naming_what_is_there(tmp_path, overwrite, manifest):
    course = tmp_path / "replicator_data_cubes"
    for name in ("rgb", "lidar"):
        (course / name).mkdir(parents=True)
    (course / "positions.csv").write_text("header\n")
    (course / "rgb" / "0000.png").write_bytes(b"png")
    if manifest is not None:
        (course / "scene.json").write_text(manifest)
    before = files(course)
    with pytest.raises(FileExistsError, match="not a dataset the generator wrote") as raised:
        generate_scenes(course, SceneConfig(**TINY), overwrite=overwrite, progress=False)
    assert str(course) in str(raised.value) and "'positions.csv', 'rgb/'" in str(raised.value)
    assert files(course) == before


@pytest.mark.parametrize("stray", ["rgb/notes.txt", "lidar/0004.npy", "rgb/00001.png"])
def test_overwrite_refuses_a_sample_folder_holding_other_files(tmp_path, stray):
    root = generate_scenes(tmp_path / "cubes", SceneConfig(**TINY), progress=False)
    (root / stray).write_bytes(b"mine")
    before = files(root)
    folder, name = stray.split("/")
    with pytest.raises(FileExistsError, match=rf"{folder}/: holds 1 file\(s\) the generator did not write \('{name}'\)"):
        generate_scenes(root, SceneConfig(**TINY), seed=5, overwrite=True, progress=False)
    assert files(root) == before


def test_a_failed_move_puts_the_earlier_dataset_back(tmp_path, monkeypatch):
    root = generate_scenes(tmp_path / "cubes", SceneConfig(**TINY), progress=False)
    (root / "notes.txt").write_text("keep me")
    before = files(root)
    replace, calls = os.replace, []

    def failing(source, target):
        calls.append(target)
        if len(calls) == 8:  # after the dataset's 6 entries went aside and one new one came in
            raise OSError("disk unplugged")
        replace(source, target)

    monkeypatch.setattr(scenes_module.os, "replace", failing)
    with pytest.raises(OSError, match="disk unplugged"):
        generate_scenes(root, SceneConfig(**TINY), seed=5, overwrite=True, progress=False)
    monkeypatch.undo()
    assert files(root) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cubes"]
