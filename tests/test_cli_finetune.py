"""Fine-tuning from the command line (issue #23): ``--image-size`` builds the model at that size, and
``train --init`` reports the head's output layer dropped by name and input convolutions adapted."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import fusionzoo
import fusionzoo.training
from fusionzoo.cli import main

TINY_SCENE = ["--samples", "360", "--image-size", "16", "--lidar-grid", "16", "16", "--supersample", "1", "--no-progress"]
SMALL = ["--set", "widths=[4,6,8]", "--set", "hidden=[12]", "--no-progress"]


class Stop(Exception):
    """Raised by the stand-in for ``fit``: the test has what it needs once the model is built."""


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("cli-finetune") / "cubes"
    assert main(["generate", str(folder), *TINY_SCENE]) == 0
    return folder


@pytest.fixture
def built(monkeypatch) -> list[torch.nn.Module]:
    """The models ``fusionzoo train`` builds, in place of training them."""
    models = []

    def capture(model, *args, **kwargs):
        models.append(model)
        raise Stop("stopped before training (test)")

    monkeypatch.setattr(fusionzoo.training, "fit", capture)
    return models


def test_image_size_builds_the_model_at_that_size_and_trains(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "matmul", "--data", str(tiny_data), "--epochs", "1", "--image-size", "16", *SMALL,
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert fusionzoo.model_config(fusionzoo.load(out / "best.safetensors")).options["image_size"] == 16


def test_set_image_size_still_says_otherwise(tiny_data, tmp_path, built):
    assert main(["train", "matmul", "--data", str(tiny_data), "--image-size", "16", "--set", "image_size=32", *SMALL,
                 "--out", str(tmp_path / "run")]) == 1
    assert built[0].image_size == 32


def test_train_init_drops_the_output_layer_by_name_and_adapts_the_input_convolution(tiny_data, tmp_path, built, capsys):
    torch.manual_seed(0)
    checkpoint = fusionzoo.save(fusionzoo.create("matmul", image_size=16, widths=(4, 6, 8), hidden=(12,)),
                                tmp_path / "matmul.safetensors")
    assert main(["train", "matmul", "--data", str(tiny_data), "--image-size", "16", "--init", str(checkpoint),
                 "--set", "num_outputs=3", "--set", "rgb_channels=3", *SMALL, "--out", str(tmp_path / "run")]) == 1
    printed = capsys.readouterr().out
    assert "dropped head.layers.3.weight: the head's output layer, 9 outputs in the source and 3 in the model" in printed
    assert "adapted encoders.rgb.layers.0.weight: rgb 4 -> 3 input channels" in printed
    assert "skipped" not in printed
    stored = fusionzoo.weights.read_weights(checkpoint)["encoders.rgb.layers.0.weight"]
    assert torch.equal(built[0].state_dict()["encoders.rgb.layers.0.weight"], stored[:, :3])
