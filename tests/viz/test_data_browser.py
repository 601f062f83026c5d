"""The dataset browser: one sample's every channel, or a contact sheet, in one figure."""

import numpy as np
import pytest
from PIL import Image

from fusionzoo.data import ReplicatorDataset
from fusionzoo.sim import generate_scenes
from fusionzoo.viz import plot_contact_sheet, plot_sample, save_figure, scene_config


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = generate_scenes(tmp_path_factory.mktemp("browser") / "d", samples=40, image_size=16, lidar_grid=(16, 16),
                           progress=False)
    return root, ReplicatorDataset(root, image_size=16, cache=False)


def test_a_sample_shows_image_depth_xyz_mask_and_positions(dataset, tmp_path):
    root, samples = dataset
    figure = plot_sample(samples, 3, scene_config(root))
    titles = " | ".join(ax.get_title() for ax in figure.axes)
    for shown in ("RGB image", "LiDAR depth", "LiDAR X", "LiDAR Y", "LiDAR Z", "validity"):
        assert shown in titles, titles
    texts = " ".join(t.get_text() for ax in figure.axes for t in ax.texts)
    assert f"{samples.targets[3, 0].item():7.2f}" in texts  # red x
    with Image.open(save_figure(figure, tmp_path / "sample.png")) as image:
        assert image.format == "PNG"


def test_lidar_panels_are_the_grid_transposed_to_face_as_the_camera_does(dataset):
    _, samples = dataset
    _, xyza, _ = samples[0]
    depth_panel = next(ax for ax in plot_sample(samples, 0).axes if ax.get_title().startswith("LiDAR depth"))
    shown = depth_panel.images[0].get_array()
    depth = np.linalg.norm(xyza[:3].numpy(), axis=0)
    hit = xyza[3].numpy() > 0
    assert np.array_equal(shown.mask, ~hit.T)
    assert np.allclose(shown.filled(0), np.where(hit, depth, 0).T)


def test_contact_sheet_shows_image_and_depth_of_each_sample(dataset, tmp_path):
    _, samples = dataset
    figure = plot_contact_sheet(samples, 5, start=2)
    assert [ax.get_title(loc="left") for ax in figure.axes if ax.get_title(loc="left")] == [f"#{i}" for i in range(2, 7)]
    assert sum(len(ax.images) for ax in figure.axes) == 10
    with Image.open(save_figure(figure, tmp_path / "sheet.png")) as image:
        assert image.format == "PNG"


def test_an_index_outside_the_dataset_names_the_valid_range(dataset):
    _, samples = dataset
    with pytest.raises(IndexError, match=r"index: the dataset has samples 0\.\.39, got 40"):
        plot_sample(samples, 40)
