"""``fusionzoo train`` on a run folder, as a user runs it: resumes with other options, resumes of
folders that are not there."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from fusionzoo.cli import main

TINY_SCENE = ["--samples", "360", "--image-size", "16", "--lidar-grid", "16", "16", "--supersample", "1", "--no-progress"]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("train-cli") / "cubes"
    assert main(["generate", str(folder), *TINY_SCENE]) == 0
    return folder


def train(data: Path, out: Path, *flags: str) -> int:
    return main(["train", "rgb", "--data", str(data), "--image-size", "16", "--set", "image_size=16", "--set", "hidden=[8]",
                 "--out", str(out), "--no-progress", *flags])


def lrs(out: Path) -> list[float]:
    with open(out / "history.csv") as f:
        return [float(row["lr"]) for row in csv.DictReader(f)]


def test_train_resume_with_another_lr_is_refused_naming_both_values_and_the_run_is_untouched(tiny_data, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(tiny_data, out, "--epochs", "1", "--lr", "1e-3", "--keep-state") == 0
    state = (out / "state.safetensors").read_bytes()
    capsys.readouterr()
    assert train(tiny_data, out, "--epochs", "2", "--lr", "1e9", "--resume") == 1
    error = capsys.readouterr().err
    assert error.startswith(f"fusionzoo train: error: {out / 'state.safetensors'}: resuming with other options than the run's")
    assert "lr=1000000000.0 given, the run used lr=0.001" in error and "resume with lr=0.001" in error
    assert (out / "state.safetensors").read_bytes() == state and lrs(out) == [1e-3]
    assert train(tiny_data, out, "--epochs", "2", "--lr", "1e-3", "--resume") == 0  # the run's own lr continues it
    assert lrs(out) == [1e-3, 1e-3]


def test_train_resume_of_a_missing_folder_names_it_and_creates_nothing(tiny_data, tmp_path, capsys):
    out = tmp_path / "runs" / "nowhere"
    assert train(tiny_data, out, "--epochs", "1", "--resume") == 1
    assert f"fusionzoo train: error: resume: {out} does not exist: there is no such run folder" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
