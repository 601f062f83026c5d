"""The command line's robustness surface: ``fusionzoo robustness``, ``compare --robustness`` and
``--modality-dropout``."""

from __future__ import annotations

import csv

import pytest
import torch

import fusionzoo

from fusionzoo.cli import main
from fusionzoo.robustness import list_corruptions
from fusionzoo.sim import generate_scenes

SIZE = 16
TINY = ["--image-size", str(SIZE), "--set", f"image_size={SIZE}", "--set", "widths=[4,6,8]", "--set", "hidden=[12]"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate_scenes(tmp_path_factory.mktemp("scenes") / "cubes", samples=360, image_size=SIZE,
                           lidar_grid=(SIZE, SIZE), progress=False)


@pytest.fixture(scope="module")
def compared(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("compare")
    code = main(["compare", "--data", str(data), "--models", "matmul", "--epochs", "1", "--out", str(out), "--no-progress",
                 "--modality-dropout", "0.5", "--robustness", *TINY])
    return code, out


def test_compare_with_robustness_writes_its_table_csv_markdown_and_plot(compared):
    code, out = compared
    assert code == 0
    rows = list(csv.DictReader(open(out / "robustness.csv")))
    corruptions = {r["corruption"] for r in rows}
    assert corruptions == {"clean", *list_corruptions()}
    assert len(rows) == 1 + 13 * 5
    assert "mean relative robustness" in (out / "robustness.md").read_text()
    assert (out / "robustness.png").stat().st_size > 1000


def test_modality_dropout_reaches_the_run_and_is_recorded(compared):
    _, out = compared
    record = fusionzoo.read_record(out / "matmul" / "seed0" / "best.safetensors").record
    assert record.recipe["modality_dropout"] == 0.5


def test_robustness_command_takes_run_folders_and_checkpoints(compared, data, tmp_path, capsys):
    _, out = compared
    checkpoint = fusionzoo.save(fusionzoo.load(out / "matmul" / "seed0" / "best.safetensors"), tmp_path / "matmul.safetensors")
    code = main(["robustness", str(out / "matmul" / "seed0"), str(checkpoint), "--data", str(data),
                 "--out", str(tmp_path), "--corruptions", "lidar_missing", "camera_blur", "--no-plot"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "mean relative robustness" in printed and "seed0" in printed and "lidar_missing" in printed
    rows = list(csv.DictReader(open(tmp_path / "robustness.csv")))
    assert len(rows) == 2 * (1 + 2 * 5) and not (tmp_path / "robustness.png").exists()


def test_robustness_command_names_a_missing_checkpoint(data, tmp_path, capsys):
    assert main(["robustness", str(tmp_path / "nothing"), "--data", str(data), "--out", str(tmp_path)]) != 0
    assert "nothing" in capsys.readouterr().err


def test_a_modality_dropout_outside_zero_to_one_is_refused(data, tmp_path, capsys):
    assert main(["train", "matmul", "--data", str(data), "--epochs", "1", "--out", str(tmp_path / "r"),
                 "--modality-dropout", "2", "--no-progress", *TINY]) != 0
    assert "modality_dropout" in capsys.readouterr().err


def test_a_label_given_to_several_runs_groups_them_as_seeds_of_one_model(data, tmp_path, capsys):
    from fusionzoo.data import course_splits

    train, valid = course_splits(data, image_size=SIZE)
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = fusionzoo.create("matmul", image_size=SIZE, widths=(4, 6, 8), hidden=(12,))
        fusionzoo.fit(model, train, valid, epochs=1, seed=seed, checkpoint_dir=tmp_path / f"seed{seed}", progress=False, device="cpu")
    runs = [str(tmp_path / "seed0"), str(tmp_path / "seed1")]
    args = ["robustness", *runs, "--data", str(data), "--corruptions", "lidar_missing", "--severities", "5", "--no-plot"]
    assert main([*args, "--labels", "matmul", "matmul", "--out", str(tmp_path / "grouped")]) == 0
    rows = list(csv.DictReader(open(tmp_path / "grouped" / "robustness.csv")))
    assert sorted((r["model"], r["seed"]) for r in rows if r["corruption"] == "clean") == [("matmul", "0"), ("matmul", "1")]
    summary = (tmp_path / "grouped" / "robustness.md").read_text()
    assert "| matmul | 2 |" in summary and summary.count(" ± ") == 2  # clean MSE and mean robustness, over the seeds
    # The same seed twice under one label is not two seeds of one model.
    capsys.readouterr()
    assert main(["robustness", runs[0], runs[0] + "/best.safetensors", "--data", str(data), "--labels", "m", "m",
                 "--corruptions", "lidar_missing", "--out", str(tmp_path / "twice"), "--no-plot"]) == 1
    assert "another checkpoint labelled 'm' was also trained with seed 0" in capsys.readouterr().err
