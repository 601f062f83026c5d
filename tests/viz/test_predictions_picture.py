"""The course's picture of predictions: 3-D panels written as PNG and as a turning GIF."""

import numpy as np
import pytest
import torch
from PIL import Image

import fusionzoo
from fusionzoo.errors import DatasetError
from fusionzoo.sim import generate_scenes
from fusionzoo.viz import Predictions, animate_predictions, plot_predictions, predict_samples, save_figure
from fusionzoo.viz.predictions import split_predictions


def some_predictions(count: int) -> Predictions:
    rng = np.random.default_rng(0)
    truth = rng.uniform(-5, 5, (count, 3, 3))
    return Predictions(np.arange(count) + 100, truth, truth + rng.normal(0, 1, truth.shape))


def test_predictions_png_has_one_equally_scaled_3d_panel_per_sample(tmp_path):
    figure = plot_predictions(some_predictions(3))
    panels = [ax for ax in figure.axes if ax.name == "3d"]
    assert len(panels) == 3
    for ax in panels:
        low, high = ax.get_xlim()
        assert ax.get_ylim() == ax.get_zlim() == (low, high) and low == -high and high >= 6  # the course's, or wider
        assert np.allclose(ax.get_box_aspect() / ax.get_box_aspect()[0], 1)
    path = save_figure(figure, tmp_path / "predictions.png")
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) > 100


def test_the_error_beside_each_prediction_is_its_distance_to_the_truth():
    predictions = some_predictions(1)
    texts = sorted(float(t.get_text()) for t in plot_predictions(predictions).axes[0].texts)
    assert texts == pytest.approx(sorted(np.round(predictions.errors[0], 1)))


def test_predictions_gif_has_the_requested_number_of_frames(tmp_path):
    path = animate_predictions(some_predictions(1), tmp_path / "predictions.gif", frames=3)
    with Image.open(path) as image:
        assert image.format == "GIF" and image.n_frames == 3
    assert [p.name for p in tmp_path.iterdir()] == ["predictions.gif"]  # no partial files left behind


def test_a_still_picture_refuses_an_extension_it_cannot_write(tmp_path):
    with pytest.raises(ValueError, match=r"predictions\.jpg.*\.png"):
        save_figure(plot_predictions(some_predictions(1)), tmp_path / "predictions.jpg")


def test_predictions_are_the_models_on_the_chosen_samples(tmp_path):
    root = generate_scenes(tmp_path / "d", samples=40, image_size=16, lidar_grid=(16, 16), progress=False)
    model = fusionzoo.create("matmul", widths=(4, 6, 8), hidden=(12,), image_size=16)
    predictions, samples, first = split_predictions(model, root, split="all", count=2)
    assert first == 0 and list(predictions.indices) == [0, 1]
    rgb, xyza, target = samples.batch(torch.arange(2))
    assert np.allclose(predictions.predicted.reshape(2, 9), fusionzoo.predict(model, rgb, xyza).numpy(), atol=1e-6)
    assert np.allclose(predictions.truth.reshape(2, 9), target.numpy())
    with pytest.raises(DatasetError, match="at least 352 samples"):
        split_predictions(model, root, split="valid")
    with pytest.raises(IndexError, match="0..39"):
        predict_samples(model, samples, [40])
