"""The feature and head surface (timm's names): forward_features / forward_head / features,
get_head and reset_head, for every registered model."""

import pytest
import torch

import fusionzoo
from fusionzoo import ShapeError

SMALL = {"widths": (4, 6, 8), "hidden": (12,), "image_size": 16}
NAMES = fusionzoo.list_models()


def small(name: str, **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return fusionzoo.create(name, **{**SMALL, **overrides}).eval()


def inputs(batch: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return torch.rand(batch, 4, 16, 16, generator=generator), 50 * torch.rand(batch, 4, 16, 16, generator=generator)


@pytest.mark.parametrize("name", NAMES)
def test_forward_head_of_forward_features_is_the_model(name):
    model, (rgb, xyza) = small(name), inputs()
    with torch.no_grad():
        assert torch.equal(model.forward_head(model.forward_features(rgb, xyza)), model(rgb, xyza))


@pytest.mark.parametrize("name", NAMES)
def test_features_name_each_stage_and_fused_is_what_the_head_reads(name):
    model, (rgb, xyza) = small(name), inputs()
    with torch.no_grad():
        features = model.features(rgb, xyza)
        assert torch.equal(features["fused"], model.forward_features(rgb, xyza))
    expected = {"early": {"fused"}, "rgb": {"rgb", "fused"}, "lidar": {"lidar", "fused"}}.get(name, {"rgb", "lidar", "fused"})
    assert set(features) == expected
    assert all(f.shape[0] == 3 for f in features.values())
    assert features["fused"][0].numel() == model.get_head().in_features


def test_intermediate_features_are_the_maps_the_operator_receives():
    model, (rgb, xyza) = small("gated", feature_norm=True), inputs()
    with torch.no_grad():
        features = model.features(rgb, xyza)
        lidar = model.feature_norms["lidar"](model.encoders["lidar"](xyza)).transpose(-1, -2)
        assert torch.equal(features["lidar"], lidar)
        assert torch.equal(features["fused"], model.fusion(features["rgb"], features["lidar"]))


@pytest.mark.parametrize("name", ["matmul", "late", "rgb"])
def test_pre_logits_are_the_activations_the_output_layer_reads(name):
    model, (rgb, xyza) = small(name), inputs()
    with torch.no_grad():
        pre = model.forward_head(model.forward_features(rgb, xyza), pre_logits=True)
        assert pre.shape == (3, model.get_head().output_layer.in_features)
        assert torch.equal(model.get_head().output_layer(pre), model(rgb, xyza))


@pytest.mark.parametrize("name", NAMES)
def test_reset_head_changes_only_the_output_layer_and_the_config(name, tmp_path):
    model, (rgb, xyza) = small(name), inputs()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layer = model.head_output_layer
    model.reset_head(3)
    assert model(rgb, xyza).shape == (3, 3) and model.num_outputs == 3
    after = model.state_dict()
    assert set(after) == set(before)
    changed = {k for k in after if after[k].shape != before[k].shape or not torch.equal(after[k], before[k])}
    assert changed == {f"{layer}.weight", f"{layer}.bias"}
    assert fusionzoo.model_config(model).options["num_outputs"] == 3
    # The config rebuilds what the model now is: a checkpoint round trip gives the same outputs.
    path = fusionzoo.save(model, tmp_path / "reset.safetensors")
    with torch.no_grad():
        assert torch.equal(fusionzoo.load(path)(rgb, xyza), model(rgb, xyza))


def test_late_reset_head_keeps_each_branch_predicting_the_old_targets():
    model = small("late")
    model.reset_head(3)
    assert model.branches["rgb"].head.out_features == 9 and model.get_head().in_features == 18
    options = fusionzoo.model_config(model).options
    assert (options["branch_outputs"], options["fusion_hidden"]) == (9, [90])


def test_the_head_output_layer_is_named_in_the_state_dict():
    assert small("matmul").head_output_layer == "head.layers.3"
    assert small("rgb").head_output_layer == "net.head.layers.3"
    assert fusionzoo.create("matmul").head_output_layer == "head.layers.5"


@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "3"])
def test_reset_head_refuses_a_count_that_is_not_a_positive_int(bad):
    model = small("matmul")
    with pytest.raises(ShapeError, match="num_outputs must be a positive int"):
        model.reset_head(bad)
    assert model.num_outputs == 9
