"""The regularised recipe on the command line: ``--weight-decay``, ``--mirror``, ``--schedule``,
``--warmup``, ``--ema`` (and ``--set head_dropout=P``) reach ``fit`` from ``train`` and ``compare``
and are recorded; a resume with another value is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

import fusionzoo
from fusionzoo.cli import main
from fusionzoo.weights.checkpoint import read_config

TINY_SCENE = ["--samples", "360", "--image-size", "16", "--lidar-grid", "16", "16", "--supersample", "1", "--no-progress"]
TINY_MODEL = ["--image-size", "16", "--set", "image_size=16", "--set", "widths=[4,8]", "--set", "hidden=[8]", "--no-progress"]
RECIPE = ["--weight-decay", "0.1", "--mirror", "0.5", "--schedule", "cosine", "--warmup", "0.5", "--ema", "0.9",
          "--set", "head_dropout=0.1"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("regularised-cli") / "cubes"
    assert main(["generate", str(folder), *TINY_SCENE]) == 0
    return folder


def recorded(path: Path) -> dict:
    recipe = fusionzoo.read_record(path).record.recipe
    return {k: recipe[k] for k in ("weight_decay", "mirror", "schedule", "warmup", "ema")}


EXPECTED = {"weight_decay": 0.1, "mirror": 0.5, "schedule": "cosine", "warmup": 0.5, "ema": 0.9}


def test_train_takes_the_recipe_records_it_and_refuses_a_resume_with_another(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "matmul", "--data", str(tiny_data), "--out", str(out), "--epochs", "1", "--keep-state",
                 *TINY_MODEL, *RECIPE]) == 0
    assert recorded(out / "best.safetensors") == EXPECTED
    assert read_config(out / "best.safetensors").options["head_dropout"] == 0.1
    capsys.readouterr()
    assert main(["train", "matmul", "--data", str(tiny_data), "--out", str(out), "--epochs", "1", "--resume",
                 *TINY_MODEL, *RECIPE[:-4], "--ema", "0.5", "--set", "head_dropout=0.1"]) == 1
    assert "ema=0.5 given, the run used ema=0.9" in capsys.readouterr().err


def test_compare_takes_the_recipe_for_every_run(tiny_data, tmp_path):
    out = tmp_path / "compare"
    assert main(["compare", "--data", str(tiny_data), "--models", "matmul", "--epochs", "1", "--out", str(out),
                 "--no-plot", *TINY_MODEL, *RECIPE]) == 0
    assert recorded(out / "matmul" / "seed0" / "best.safetensors") == EXPECTED


def test_mirror_on_data_that_do_not_allow_it_is_an_error_that_says_why(tmp_path, capsys):
    folder = tmp_path / "offset"
    assert main(["generate", str(folder), *TINY_SCENE, "--lidar-position", "2", "-24", "8"]) == 0
    assert main(["train", "matmul", "--data", str(folder), "--out", str(tmp_path / "run"), "--epochs", "1",
                 "--mirror", "0.5", *TINY_MODEL]) == 1
    assert "lidar_position is [2.0, -24.0, 8.0], off the mirror plane x = 0" in capsys.readouterr().err
