"""The show and export commands: pictures of predictions and of data, and deployable files."""

import shutil

import pytest
from PIL import Image

import fusionzoo
from fusionzoo.cli import main
from fusionzoo.sim import generate_scenes


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate_scenes(tmp_path_factory.mktemp("show") / "d", samples=40, image_size=16, lidar_grid=(16, 16),
                           progress=False)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("checkpoint") / "best.safetensors"
    return fusionzoo.save(fusionzoo.create("matmul", widths=(4, 6, 8), hidden=(12,), image_size=16), path)


def test_show_predictions_writes_a_gif_of_the_requested_frames(data, checkpoint, tmp_path, capsys):
    out = tmp_path / "predictions.gif"
    assert main(["show", "predictions", str(checkpoint), "--data", str(data), "--out", str(out), "--split", "all",
                 "--samples", "2", "--frames", "3"]) == 0
    with Image.open(out) as image:
        assert image.format == "GIF" and image.n_frames == 3
    assert "2 all samples, mean error" in capsys.readouterr().out


def test_show_predictions_on_the_sensors_writes_a_png(data, checkpoint, tmp_path):
    out = tmp_path / "sensors.png"
    assert main(["show", "predictions", str(checkpoint), "--data", str(data), "--out", str(out), "--split", "all",
                 "--samples", "2", "--view", "sensors"]) == 0
    with Image.open(out) as image:
        assert image.format == "PNG"


def test_data_without_sensor_placement_get_the_3d_picture_only_said_plainly(data, checkpoint, tmp_path, capsys):
    course = shutil.copytree(data, tmp_path / "course", ignore=shutil.ignore_patterns("scene.json", ".fusionzoo-cache"))
    common = ["show", "predictions", str(checkpoint), "--data", str(course), "--split", "all", "--samples", "1"]
    assert main([*common, "--out", str(tmp_path / "p.png")]) == 0
    assert "no scene.json (sensor placement): the 3-D picture is all" in capsys.readouterr().out
    assert main([*common, "--out", str(tmp_path / "s.png"), "--view", "sensors"]) == 1
    assert "has no scene.json" in capsys.readouterr().err and not (tmp_path / "s.png").exists()


def test_show_data_writes_one_sample_or_a_contact_sheet(data, tmp_path):
    for flags, name in ((["--index", "7"], "sample.png"), (["--grid", "6"], "sheet.png")):
        out = tmp_path / name
        assert main(["show", "data", str(data), "--image-size", "16", "--out", str(out), *flags]) == 0
        with Image.open(out) as image:
            assert image.format == "PNG"


def test_show_data_names_the_valid_indices(data, tmp_path, capsys):
    assert main(["show", "data", str(data), "--image-size", "16", "--index", "40", "--out", str(tmp_path / "x.png")]) == 1
    assert "0..39, got 40" in capsys.readouterr().err


def test_export_writes_onnx_that_matches_pytorch(checkpoint, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    assert main(["export", str(checkpoint), "--format", "onnx", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.is_file() and "onnxruntime matches PyTorch" in printed and "tolerance 0.0001" in printed


def test_export_writes_an_exported_program(checkpoint, tmp_path):
    out = tmp_path / "model.pt2"
    assert main(["export", str(checkpoint), "--format", "exported-program", "--out", str(out)]) == 0
    assert out.is_file()
