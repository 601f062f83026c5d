"""Predictions on the sensors: the generator's own camera and LiDAR models put each true centre on
its object, in the rendered image and in the depth grid."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from fusionzoo.data import ReplicatorDataset
from fusionzoo.errors import DatasetError
from fusionzoo.sim import generate_scenes
from fusionzoo.sim.render import cast
from fusionzoo.sim.scenes import draw_scenes
from fusionzoo.viz import Predictions, camera_pixels, lidar_cells, plot_sensor_predictions, save_figure, scene_config
from fusionzoo.viz.drawing import centres

SAMPLES = 12


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    root = generate_scenes(tmp_path_factory.mktemp("scenes") / "d", samples=SAMPLES, image_size=64,
                           lidar_grid=(32, 32), progress=False)
    return root, scene_config(root), ReplicatorDataset(root, image_size=64, cache=False)


def visible(config, points, sensor):
    """``(B, 3)``: whether each object's centre is seen by ``sensor`` (no other object in front of it)."""
    objects = draw_scenes(config, range(len(points))).objects
    origin = np.asarray(sensor.pose.position, dtype=np.float64)
    seen = np.zeros(points.shape[:2], dtype=bool)
    for k in range(3):
        directions = points[:, k] - origin
        directions /= np.linalg.norm(directions, axis=-1, keepdims=True)
        _, index = cast(origin, directions, objects)
        seen[:, k] = index[np.arange(len(points)), np.arange(len(points))] == k
    return seen


def test_each_true_centre_projects_onto_its_objects_pixels_in_the_camera_image(scenes):
    root, config, samples = scenes
    points = centres(samples.targets.numpy())
    seen = visible(config, points, config.camera())
    assert seen.sum() >= 2 * SAMPLES  # most centres are in view, so the check below checks something
    rows, cols = np.floor(camera_pixels(config, points, 64)).astype(int).transpose(2, 0, 1)
    for i in range(SAMPLES):
        image = np.asarray(Image.open(root / "rgb" / f"{i:04d}.png"))[..., :3].astype(int)
        for k, name in enumerate(("red", "green", "blue")):
            if seen[i, k]:
                pixel = image[rows[i, k], cols[i, k]]
                assert pixel.argmax() == k, (i, name, pixel)  # e.g. the red cube's centre on a red-dominant pixel


def test_the_projection_scales_with_the_image_size(scenes):
    _, config, samples = scenes
    points = centres(samples.targets.numpy())
    assert np.allclose(camera_pixels(config, points, 32), camera_pixels(config, points) / 2)


def test_each_true_centre_projects_onto_a_lidar_return_in_front_of_it(scenes):
    _, config, samples = scenes
    points = centres(samples.targets.numpy())
    seen = visible(config, points, config.lidar())
    rows, cols = np.rint(lidar_cells(config, points)).astype(int).transpose(2, 0, 1)
    distance = np.linalg.norm(points - np.asarray(config.lidar_position), axis=-1)
    depth = samples.depth.numpy()[np.arange(SAMPLES)[:, None], rows, cols]
    # The nearest beam is up to half a cell off the centre's own ray, so next to an object in front
    # it may return from that one; a wrong projection would miss nearly every time.
    behind_its_surface = (depth < distance) & (distance < depth + config.max_object_size)
    assert behind_its_surface[seen].mean() >= 0.9, np.argwhere(seen & ~behind_its_surface)


def test_a_point_outside_the_lidars_view_has_no_cell(scenes):
    _, config, _ = scenes
    assert np.isnan(lidar_cells(config, np.array([[0.0, -24.0, 40.0]]))).all()


def test_course_data_without_scene_json_have_no_sensor_placement(scenes, tmp_path):
    root, _, _ = scenes
    course = shutil.copytree(root, tmp_path / "course", ignore=shutil.ignore_patterns("scene.json", ".fusionzoo-cache"))
    assert scene_config(course) is None
    (course / "scene.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(DatasetError, match=r"scene\.json.*not a scene description"):
        scene_config(course)


def test_the_sensor_picture_has_a_camera_and_a_lidar_panel_per_sample(scenes, tmp_path):
    _, config, samples = scenes
    truth = centres(samples.targets[:2].numpy())
    predictions = Predictions(np.arange(2), truth, truth + 1.0)
    figure = plot_sensor_predictions(predictions, samples, config)
    assert len(figure.axes) == 4 and "camera" in figure.axes[0].get_title()
    with Image.open(save_figure(figure, tmp_path / "sensors.png")) as image:
        assert image.format == "PNG"
