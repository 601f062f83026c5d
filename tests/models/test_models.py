"""The registered models: the course's architectures exactly, and every model's common contract."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fusionzoo
from fusionzoo.errors import ShapeError
from fusionzoo.registry import ModelConfig
from fusionzoo.weights.course import convert_course_state_dict

from course_reference import course_model

COURSE_PARAMETER_COUNTS = {
    "early": 13_130_959,
    "late": 26_260_847,
    "concat": 13_016_659,
    "matmul": 6_616_659,
    "rgb": 13_129_159,
    "lidar": 13_129_159,
}
COURSE_MODELS = sorted(COURSE_PARAMETER_COUNTS)


def small(name: str, **overrides) -> torch.nn.Module:
    """A registered model shrunk so tests stay fast (same structure, fewer channels)."""
    options = {"widths": (4, 6, 8), "hidden": (12,), "image_size": 16}
    options.update(overrides)
    return fusionzoo.create(name, **options)


def inputs(model, batch: int = 2, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(batch, 4, size, size), torch.rand(batch, 4, size, size)


@pytest.mark.parametrize("name", COURSE_MODELS)
def test_default_model_matches_course_parameter_count(name):
    model = fusionzoo.create(name)
    assert sum(p.numel() for p in model.parameters()) == COURSE_PARAMETER_COUNTS[name]
    assert fusionzoo.info(name).num_params == COURSE_PARAMETER_COUNTS[name]


@pytest.mark.parametrize("name", COURSE_MODELS)
def test_default_model_has_the_course_layer_shapes_and_outputs(name):
    torch.manual_seed(0)
    reference, reference_state = course_model(name)
    ours = fusionzoo.create(name)
    converted = convert_course_state_dict(name, reference_state())
    assert {k: v.shape for k, v in converted.items()} == {k: v.shape for k, v in ours.state_dict().items()}
    ours.load_state_dict(converted)
    rgb, xyza = torch.rand(3, 4, 64, 64), torch.rand(3, 4, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ours(rgb, xyza), reference(rgb, xyza), rtol=0, atol=0)


def test_course_conversion_rejects_foreign_tensors():
    with pytest.raises(fusionzoo.CheckpointError, match="fc9"):
        convert_course_state_dict("matmul", {"fc9.weight": torch.zeros(1)})
    with pytest.raises(KeyError, match="hadamard"):
        convert_course_state_dict("hadamard", {})


@settings(max_examples=12, deadline=None)
@given(
    name=st.sampled_from(fusionzoo.list_models()),
    batch=st.integers(1, 3),
    size=st.sampled_from([8, 16, 24]),
)
def test_every_model_runs_forward_and_backward(name, batch, size):
    model = small(name, image_size=size)
    rgb, xyza = inputs(model, batch, size)
    out = model(rgb, xyza)
    assert out.shape == (batch, 9)
    out.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


TWO_BRANCH = [n for n in fusionzoo.list_models() if set(fusionzoo.info(n).inputs) == {"rgb", "xyza"}]


@pytest.mark.parametrize("name", TWO_BRANCH)
def test_gradients_reach_both_inputs_of_every_two_branch_model(name):
    torch.manual_seed(0)
    model = small(name)
    rgb, xyza = (x.requires_grad_() for x in inputs(model))
    model(rgb, xyza).sum().backward()
    assert rgb.grad.abs().sum() > 0
    assert xyza.grad.abs().sum() > 0
    for part in ("rgb", "lidar"):
        if part in model.parts():
            grads = [p.grad for p in model.parts()[part].parameters()]
            assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", ["rgb", "lidar"])
def test_single_modality_models_read_only_their_input(name):
    model = small(name)
    rgb, xyza = inputs(model)
    expected = model(rgb, xyza)
    ignored = {"rgb": {"xyza": None}, "lidar": {"rgb": None}}[name]
    given = {"rgb": rgb, "xyza": xyza, **ignored}
    torch.testing.assert_close(model(**given), expected)


def test_overrides_change_outputs_and_image_size():
    model = fusionzoo.create("concat", num_outputs=3, image_size=128)
    assert model.head.in_features == 200 * 16 * 16
    assert model(torch.rand(2, 4, 128, 128), torch.rand(2, 4, 128, 128)).shape == (2, 3)
    model = fusionzoo.create("matmul", rgb_channels=3, lidar_channels=5, widths=(8, 16), image_size=32)
    assert model.head.in_features == 16 * 8 * 8
    assert model(torch.rand(1, 3, 32, 32), torch.rand(1, 5, 32, 32)).shape == (1, 9)


def test_fusion_override_swaps_the_operator():
    model = small("concat", fusion="hadamard")
    assert type(model.fusion) is type(small("hadamard").fusion)
    assert model.head.in_features == 8 * 2 * 2


def test_late_fusion_head_scales_with_num_outputs():
    model = small("late", num_outputs=3)
    assert [m.in_features for m in model.head.layers if isinstance(m, torch.nn.Linear)] == [6, 30]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kernel_size": 4}, "kernel_size"),
        ({"image_size": 4}, "too small"),
        ({"num_outputs": 0}, "num_outputs"),
        ({"widths": ()}, "widths"),
    ],
)
def test_bad_overrides_fail_at_construction_with_a_reason(overrides, message):
    with pytest.raises(ShapeError, match=message):
        fusionzoo.create("concat", **overrides)




def test_wrong_input_shape_names_the_argument():
    model = small("matmul")
    with pytest.raises(ShapeError, match=r"xyza: expected a tensor of shape \(B, 4, 16, 16\)"):
        model(torch.rand(2, 4, 16, 16), torch.rand(2, 3, 16, 16))
    # One absent input is filled by the model's policy (tests/robustness/test_missing_modality.py); both is an error.
    with pytest.raises(ShapeError, match="None for both inputs"):
        model(None, None)


@pytest.mark.parametrize("name", fusionzoo.list_models())
def test_config_round_trip_rebuilds_the_same_architecture(name):
    model = small(name, num_outputs=6)
    config = fusionzoo.model_config(model)
    rebuilt = ModelConfig.from_json(config.to_json()).build()
    assert fusionzoo.model_config(rebuilt) == config
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert str(rebuilt) == str(model)


@pytest.mark.parametrize("name", fusionzoo.list_models())
def test_every_model_names_its_parts(name):
    model = small(name)
    parts = model.parts()
    assert {"encoders", "head"} <= set(parts)
    owned = {id(p) for p in model.parameters()}
    for part in parts.values():
        assert {id(p) for p in part.parameters()} <= owned
    covered = {id(p) for key in ("encoders", "fusion", "head", "branches") if key in parts for p in parts[key].parameters()}
    assert covered == owned, "every parameter belongs to a named part"


def test_early_input_norm_hands_the_convolution_batch_standardised_channels(tmp_path):
    plain, model = small("early"), small("early", input_norm=True)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in plain.parameters()) + 2 * 8
    assert plain.input_norm is None
    torch.manual_seed(0)
    rgb, xyza = torch.rand(5, 4, 16, 16), 60 * torch.rand(5, 4, 16, 16)  # the default scene's scales
    seen = []
    hook = model.net.encoder.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    model.train()(rgb, xyza)
    hook.remove()
    x = torch.cat([rgb, xyza], dim=1)  # each channel over the batch and positions, not per sample
    mean, var = x.mean(dim=(0, 2, 3), keepdim=True), x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    torch.testing.assert_close(seen[0], (x - mean) / torch.sqrt(var + 1e-5))
    # The running statistics are state: a checkpoint gives the same eval-mode outputs.
    model.eval()
    loaded = fusionzoo.load(fusionzoo.save(model, tmp_path / "early.safetensors"))
    assert fusionzoo.model_config(loaded).options["input_norm"] is True
    torch.testing.assert_close(loaded.input_norm.running_mean, model.input_norm.running_mean, rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(loaded(rgb, xyza), model(rgb, xyza), rtol=0, atol=0)
    fusionzoo.freeze(model, "fusion")
    assert not any(p.requires_grad for p in model.input_norm.parameters())
    assert all(p.requires_grad for p in model.net.parameters())


def test_info_describes_inputs_outputs_and_source():
    info = fusionzoo.info("matmul")
    assert info.inputs == {"rgb": (4, 64, 64), "xyza": (4, 64, 64)}
    assert info.num_outputs == 9
    assert "MatmulIntermediateNet" in info.reproduces
    assert info.defaults["widths"] == (25, 50, 100)
    assert fusionzoo.info("lidar").inputs == {"xyza": (4, 64, 64)}
    assert "6,616,659" in str(info)
    assert math.prod(fusionzoo.create("matmul").fusion.out_shape) == 6400
