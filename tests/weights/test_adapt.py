"""Loading weights into a model with other inputs or outputs (issue #23): the head's output layer is
dropped by name, each modality's input convolution is adapted by a stated rule, with a warning."""

from __future__ import annotations

import logging

import pytest
import torch

import fusionzoo
from fusionzoo import CheckpointError
from fusionzoo.weights import load_matching, load_weights
from fusionzoo.weights.adapt import stored_channels

TINY = {"widths": (4, 6, 8), "hidden": (12,), "image_size": 16}


def tiny(name: str = "matmul", **overrides):
    return fusionzoo.create(name, **{**TINY, **overrides})


@pytest.fixture
def matmul_file(tmp_path):
    torch.manual_seed(0)
    return fusionzoo.save(tiny(), tmp_path / "matmul.safetensors")


def weights(path):
    return fusionzoo.weights.read_weights(path)


# --- the head's output layer, by name ------------------------------------------------------------


def test_another_number_of_outputs_drops_the_declared_output_layer_by_name(matmul_file):
    model = tiny(num_outputs=3)
    report = load_weights(model, matmul_file)
    assert model.head_output_layer == "head.layers.3"
    assert set(report.dropped) == {"head.layers.3.weight", "head.layers.3.bias"}
    assert "9 outputs in the source and 3 in the model" in report.dropped["head.layers.3.bias"]
    assert not report.skipped and not report.adapted
    assert "dropped head.layers.3.bias: the head's output layer" in str(report)
    assert not report.complete


def test_a_mismatch_outside_the_output_layer_is_still_reported_as_skipped(matmul_file):
    report = load_weights(tiny(num_outputs=3, image_size=32), matmul_file, strict=False)
    assert set(report.dropped) == {"head.layers.3.weight", "head.layers.3.bias"}
    assert list(report.skipped) == ["head.layers.1.weight"]


def test_late_fusion_drops_only_its_own_output_layer_and_skips_the_branches_outputs(tmp_path):
    path = fusionzoo.save(tiny("late"), tmp_path / "late.safetensors")
    report = load_weights(tiny("late", num_outputs=3), path, strict=False)
    assert set(report.dropped) == {"head.layers.3.weight", "head.layers.3.bias"}
    # The branches predict num_outputs targets too, but their layers are not the model's output.
    assert "branches.rgb.head.layers.3.weight" in report.skipped


def test_the_same_number_of_outputs_loads_the_output_layer(matmul_file):
    report = load_weights(tiny(), matmul_file, strict=True)
    assert report.complete and not report.dropped


# --- input channels: the stated rule ------------------------------------------------------------------


def test_a_model_without_alpha_keeps_the_files_rgb_filters_and_drops_alpha_with_a_warning(matmul_file, caplog):
    model = tiny(rgb_channels=3)
    with caplog.at_level(logging.WARNING, logger="fusionzoo"):
        report = load_weights(model, matmul_file)
    stored = weights(matmul_file)
    key = "encoders.rgb.layers.0.weight"
    assert list(report.adapted) == [key] and not report.skipped
    assert torch.equal(model.state_dict()[key], stored[key][:, :3])
    assert "rgb 4 -> 3 input channels" in report.adapted[key] and "dropped channel 3" in report.adapted[key]
    assert "adapted the input convolution encoders.rgb.layers.0.weight" in caplog.text
    assert "dropped channel 3" in caplog.text
    model(torch.rand(2, 3, 16, 16), torch.rand(2, 4, 16, 16))


def test_a_new_lidar_channel_starts_as_the_mean_of_the_files_lidar_channels(matmul_file, caplog):
    model = tiny(lidar_channels=5)
    with caplog.at_level(logging.WARNING, logger="fusionzoo"):
        report = load_weights(model, matmul_file)
    stored = weights(matmul_file)["encoders.lidar.layers.0.weight"]
    adapted = model.state_dict()["encoders.lidar.layers.0.weight"]
    torch.testing.assert_close(adapted[:, :4], stored)
    torch.testing.assert_close(adapted[:, 4], stored.mean(dim=1))
    assert "new channel 4 = the mean of the file's 4" in report.adapted["encoders.lidar.layers.0.weight"]
    assert "lidar 4 -> 5 input channels" in caplog.text
    assert report.share > 0.99  # the adapted layer counts as loaded


def test_early_fusion_splits_its_one_convolution_by_the_files_stored_channels(tmp_path):
    torch.manual_seed(0)
    path = fusionzoo.save(tiny("early"), tmp_path / "early.safetensors")
    model = tiny("early", rgb_channels=3, lidar_channels=5)
    assert model.input_layers == {"rgb": ("net.encoder.layers.0", 0, 3), "lidar": ("net.encoder.layers.0", 3, 8)}
    report = load_weights(model, path)
    stored = weights(path)["net.encoder.layers.0.weight"]  # rgb channels 0-3, lidar 4-7
    adapted = model.state_dict()["net.encoder.layers.0.weight"]
    torch.testing.assert_close(adapted[:, 0:3], stored[:, 0:3])
    torch.testing.assert_close(adapted[:, 3:7], stored[:, 4:8])
    torch.testing.assert_close(adapted[:, 7], stored[:, 4:8].mean(dim=1))
    assert report.adapted["net.encoder.layers.0.weight"].startswith("rgb 4 -> 3 input channels")


def test_early_fusion_without_stored_channels_is_skipped_not_guessed():
    source = tiny("early")
    report = load_matching(tiny("early", rgb_channels=3), source.state_dict())
    assert not report.adapted and list(report.skipped) == ["net.encoder.layers.0.weight"]
    report = load_matching(tiny("early", rgb_channels=3), source.state_dict(), channels={"rgb": 4, "lidar": 4})
    assert list(report.adapted) == ["net.encoder.layers.0.weight"]


def test_stored_channel_counts_that_disagree_with_the_tensor_adapt_nothing():
    source = tiny("early")
    report = load_matching(tiny("early", rgb_channels=3), source.state_dict(), channels={"rgb": 3, "lidar": 3})
    assert not report.adapted and "net.encoder.layers.0.weight" in report.skipped


@pytest.mark.parametrize(("name", "key"), [("rgb", "net.encoder.layers.0.weight"), ("late", "branches.rgb.encoder.layers.0.weight")])
def test_single_modality_and_late_models_adapt_their_rgb_input(name, key, tmp_path):
    path = fusionzoo.save(tiny(name), tmp_path / f"{name}.safetensors")
    model = tiny(name, rgb_channels=1)
    report = load_weights(model, path)
    assert list(report.adapted) == [key]
    torch.testing.assert_close(model.state_dict()[key], weights(path)[key][:, :1])


def test_other_filters_are_not_adapted_but_skipped():
    report = load_matching(tiny(rgb_channels=3, widths=(5, 6, 8)), tiny().state_dict())
    assert not report.adapted and "encoders.rgb.layers.0.weight" in report.skipped


def test_strict_refuses_an_adaptation_before_changing_the_model(matmul_file):
    model = tiny(rgb_channels=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match="adapted encoders.rgb.layers.0.weight"):
        load_weights(model, matmul_file, strict=True)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_an_adapted_weight_is_checked_like_a_loaded_one():
    state = dict(tiny().state_dict())
    state["encoders.rgb.layers.0.weight"] = state["encoders.rgb.layers.0.weight"].clone()
    state["encoders.rgb.layers.0.weight"][0, 0, 0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="encoders.rgb.layers.0.weight"):
        load_matching(tiny(rgb_channels=3), state)
    state["encoders.rgb.layers.0.weight"] = torch.zeros(4, 4, 3, 3, dtype=torch.int64)
    with pytest.raises(CheckpointError, match="another kind of dtype"):
        load_matching(tiny(rgb_channels=3), state)


def test_create_with_a_checkpoint_adapts_channels_and_drops_the_head_together(matmul_file):
    model = fusionzoo.create("matmul", rgb_channels=3, lidar_channels=5, num_outputs=3, checkpoint=matmul_file, **TINY)
    assert model(torch.rand(2, 3, 16, 16), torch.rand(2, 5, 16, 16)).shape == (2, 3)


def test_stored_channels_reads_only_positive_int_counts():
    assert stored_channels({"rgb_channels": 3, "lidar_channels": 5}) == {"rgb": 3, "lidar": 5}
    assert stored_channels({"rgb_channels": "3", "lidar_channels": True}) == {}
    assert stored_channels({}) == {}
