"""Fine-tuning: partial loads with a report, branch initialisation, freezing, parameter groups."""

import pytest
import torch

import fusionzoo
from fusionzoo import CheckpointError
from fusionzoo.weights.finetune import frozen_to_eval, load_branch, load_matching

SMALL = {"hidden": (12,), "image_size": 16}


def small(name, **overrides):
    return fusionzoo.create(name, **{**SMALL, "widths": (4, 6, 8), **overrides})


def test_changing_num_outputs_keeps_every_other_tensor():
    torch.manual_seed(0)
    source = small("matmul")
    target = small("matmul", num_outputs=3)
    fresh = {k: v.clone() for k, v in target.state_dict().items()}
    report = load_matching(target, source.state_dict())
    assert set(report.dropped) == {"head.layers.3.weight", "head.layers.3.bias"}
    assert not report.skipped and not report.missing and not report.unexpected
    for key, value in target.state_dict().items():
        expected = fresh[key] if key in report.dropped else source.state_dict()[key]
        assert torch.equal(value, expected), key


def test_changing_input_channels_keeps_every_weight_that_fits():
    source = small("concat")
    target = small("concat", rgb_channels=3)
    report = load_matching(target, source.state_dict())
    assert list(report.adapted) == ["encoders.rgb.layers.0.weight"] and not report.skipped
    assert "encoders.rgb.layers.0.bias" in report.loaded


def test_report_lists_missing_and_unexpected_tensors():
    model = small("matmul")
    state = dict(model.state_dict())
    state.pop("head.layers.1.bias")
    state["extra.weight"] = torch.zeros(2)
    report = load_matching(model, state)
    assert report.missing == ["head.layers.1.bias"]
    assert report.unexpected == ["extra.weight"]
    assert "missing (kept fresh init) head.layers.1.bias" in str(report)


def test_strict_mode_fails_on_anything_but_a_full_match_and_changes_nothing():
    source, target = small("matmul"), small("matmul", num_outputs=3)
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointError, match="head.layers.3.weight"):
        load_matching(target, source.state_dict(), strict=True)
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())
    assert load_matching(small("matmul"), source.state_dict(), strict=True).complete


def test_single_modality_network_initialises_the_late_branch_exactly():
    rgb = small("rgb", widths=(4, 6, 8))
    late = small("late", widths=(4, 6, 8))
    load_branch(late, "rgb", rgb)
    for key, value in rgb.net.state_dict().items():
        assert torch.equal(late.branches["rgb"].state_dict()[key], value)
    x = torch.rand(2, 4, 16, 16)
    torch.testing.assert_close(late.branches["rgb"](x), rgb(x, None))


def test_encoder_of_one_model_initialises_the_branch_of_another():
    lidar = small("lidar", widths=(4, 6, 8))
    matmul = small("matmul", widths=(4, 6, 8))
    load_branch(matmul, "lidar", lidar)
    for key, value in lidar.net.encoder.state_dict().items():
        assert torch.equal(matmul.encoders["lidar"].state_dict()[key], value)


def test_branch_loading_says_why_shapes_do_not_agree():
    with pytest.raises(CheckpointError, match="layers.0.weight"):
        load_branch(small("matmul", widths=(4, 6, 8)), "rgb", small("rgb", widths=(5, 6, 8)))
    with pytest.raises(CheckpointError, match="no 'rgb' branch"):
        load_branch(small("matmul"), "rgb", small("lidar"))
    with pytest.raises(CheckpointError, match="no 'rgb' branch"):
        load_branch(small("early"), "rgb", small("rgb"))


@pytest.mark.parametrize(("name", "part"), [("matmul", "encoders"), ("late", "rgb"), ("concat", "head"), ("early", "encoders")])
def test_freeze_and_unfreeze_address_parts_by_name(name, part):
    model = small(name)
    fusionzoo.freeze(model, part)
    frozen = {id(p) for p in model.parts()[part].parameters()}
    assert all(p.requires_grad == (id(p) not in frozen) for p in model.parameters())
    fusionzoo.unfreeze(model, part)
    assert all(p.requires_grad for p in model.parameters())


def test_unknown_part_lists_the_parts():
    with pytest.raises(KeyError, match="unknown part 'decoder'.*encoders.*fusion.*head"):
        fusionzoo.freeze(small("matmul"), "decoder")


def test_frozen_modules_go_to_eval_mode_and_the_rest_stay_in_training():
    model = small("attention")
    fusionzoo.freeze(model, "encoders")
    model.train()
    frozen_to_eval(model)
    assert not model.encoders.training and not model.encoders["rgb"].training
    assert model.head.training and model.fusion.training


def test_param_groups_give_each_part_its_rate_and_leave_frozen_ones_out():
    model = small("matmul")
    fusionzoo.freeze(model, "lidar")
    groups = fusionzoo.param_groups(model, {"rgb": 1e-5, "head": 1e-3})
    assert [(g["name"], g.get("lr")) for g in groups] == [("rgb", 1e-5), ("head", 1e-3)]
    grouped = {id(p) for g in groups for p in g["params"]}
    assert grouped == {id(p) for p in model.parameters() if p.requires_grad}
    optimizer = torch.optim.Adam(groups, lr=1e-4)
    assert [g["lr"] for g in optimizer.param_groups] == [1e-5, 1e-3]


def test_param_groups_put_unnamed_parameters_in_a_rest_group_and_refuse_overlaps():
    model = small("gated")
    groups = fusionzoo.param_groups(model, {"encoders": 1e-5})
    assert groups[-1]["name"] == "rest" and "lr" not in groups[-1]
    with pytest.raises(ValueError, match="shares"):
        fusionzoo.param_groups(model, {"encoders": 1e-5, "rgb": 1e-4})
