"""Every file the trainer writes carries its record: metrics, recipe and input contract."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

import fusionzoo
from fusionzoo import CheckpointError
from fusionzoo.cli import main
from fusionzoo.data import TensorSamples, course_splits
from fusionzoo.sim import generate_scenes
from fusionzoo.weights.record import DATA_CONFIG, METRICS, RECIPE

TINY = {"widths": (4, 6, 8), "hidden": (12,), "image_size": 16}


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return generate_scenes(tmp_path_factory.mktemp("scene") / "cubes", samples=360, image_size=16, lidar_grid=(16, 16),
                           progress=False)


@pytest.fixture(scope="module")
def run(scene, tmp_path_factory):
    train, valid = course_splits(scene, image_size=16)
    torch.manual_seed(0)
    model = fusionzoo.create("matmul", **TINY)
    out = tmp_path_factory.mktemp("run") / "matmul"
    fusionzoo.fit(model, train, valid, epochs=2, seed=3, checkpoint_dir=out, progress=False, device="cpu", keep_state=True)
    return out


def metadata(path):
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata())


@pytest.mark.parametrize("file", ["last.safetensors", "best.safetensors", "state.safetensors"])
def test_every_file_fit_writes_holds_metrics_recipe_data_config_and_format_pt(run, file):
    stored = metadata(run / file)
    assert stored["format"] == "pt"
    metrics, recipe, contract = (json.loads(stored[k]) for k in (METRICS, RECIPE, DATA_CONFIG))
    assert set(metrics) >= {"epoch", "best_epoch", "valid_mse", "position_error", "train_loss"}
    assert {k: recipe[k] for k in ("epochs", "lr", "batch_size", "precision", "device", "world_size", "seed")} == {
        "epochs": 2, "lr": 1e-4, "batch_size": 32, "precision": "fp32", "device": "cpu", "world_size": 1, "seed": 3}
    assert recipe["torch"] == torch.__version__ and recipe["fusionzoo"] == fusionzoo.__version__
    assert contract["rgb"]["range"] == [0.0, 1.0] and contract["rgb"]["shape"] == [4, 16, 16]
    assert contract["xyza"]["channels"] == ["x", "y", "z", "a"] and "azimuth" in contract["xyza"]["grid"]
    assert contract["outputs"]["names"][0] == "red_x" and contract["outputs"]["names"][-1] == "blue_z"


def test_the_recipe_names_the_generated_scene_and_the_course_split(run, scene):
    recipe = fusionzoo.read_record(run / "best.safetensors").record.recipe
    data = recipe["data"]
    assert data["scene"]["config"]["samples"] == 360 and data["scene"]["config"]["seed"] == 0
    assert data["folder"] == str(scene) and len(data["fingerprint"]) == 64
    assert recipe["split"]["train"]["rows"] == [0, 40] and recipe["split"]["valid"]["rows"] == [40, 360]


def test_best_records_its_own_epoch_and_last_the_final_one(run):
    best = fusionzoo.read_record(run / "best.safetensors").record.metrics
    last = fusionzoo.read_record(run / "last.safetensors").record.metrics
    assert last["epoch"] == 2 and best["epoch"] == best["best_epoch"] == last["best_epoch"]
    history = fusionzoo.History.from_csv(run / "history.csv")
    assert best["valid_mse"] == pytest.approx(history.epochs[best["epoch"] - 1].valid_loss)


def test_data_without_a_source_is_unrecorded(tmp_path):
    samples = TensorSamples(torch.rand(40, 4, 16, 16), torch.rand(40, 4, 16, 16), torch.rand(40, 9))
    model = fusionzoo.create("matmul", **TINY)
    fusionzoo.fit(model, samples, samples, epochs=1, checkpoint_dir=tmp_path, progress=False, device="cpu")
    record = fusionzoo.read_record(tmp_path / "best.safetensors").record
    assert record.recipe["data"] == "unrecorded" and record.recipe["split"]["train"] == "unrecorded"
    assert record.data_config["rgb"]["shape"] == [4, 16, 16]


def test_fusionzoo_info_prints_a_files_record(run, capsys):
    assert main(["info", str(run / "best.safetensors")]) == 0
    out = capsys.readouterr().out
    assert "valid_mse" in out and "generated scene, 360 samples, generator seed 0" in out
    assert "red_x" in out and "rows 0-40 of 360" in out
    assert main(["info", "matmul"]) == 0 and "parameters: 6,616,659" in capsys.readouterr().out


def test_a_damaged_record_is_a_checkpoint_error_naming_the_file(run, tmp_path):
    from safetensors_files import rewrite

    damaged = tmp_path / "damaged.safetensors"
    rewrite(run / "last.safetensors", damaged, **{METRICS: "[1, 2"})
    with pytest.raises(CheckpointError, match="damaged.safetensors: its fusionzoo.metrics is not JSON"):
        fusionzoo.read_record(damaged)
