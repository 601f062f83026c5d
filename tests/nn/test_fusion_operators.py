"""Every registered fusion operator and the models built on the new ones: shapes, weights, gradients,
training, and the parameter counts in docs/fusion-operators.md."""

import re
from pathlib import Path

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import fusionzoo
from fusionzoo import ShapeError, create_fusion, list_fusions

ROOT = Path(__file__).resolve().parents[2]
NEW_MODELS = ["attention", "bilinear", "film", "gated", "se"]
# Operators that pair the two maps position by position, and whose models transpose the LiDAR map.
PIXEL_ALIGNED_MODELS = {"bilinear", "gated", "se"}
VECTOR_OPERATORS = {"bilinear", "concat", "film", "gated", "hadamard", "se", "sum"}
SMALL = {"widths": (4, 8), "hidden": (16,), "image_size": 16}

sizes = st.integers(1, 5)
positions = st.one_of(st.just(()), st.tuples(sizes, sizes))  # a vector, or an H x W map


@st.composite
def same_shapes(draw):
    shape = (draw(sizes), *draw(positions))
    return [shape, shape], {}, shape


@st.composite
def concat_shapes(draw):
    rest = draw(positions)
    c1, c2 = draw(sizes), draw(sizes)
    return [(c1, *rest), (c2, *rest)], {}, (c1 + c2, *rest)


@st.composite
def aligned_shapes(draw, option=None):
    rest = draw(positions)
    shapes = [(draw(sizes), *rest), (draw(sizes), *rest)]
    options = {option: draw(st.integers(1, 6))} if option else {}
    return shapes, options, shapes[0]


@st.composite
def film_shapes(draw):
    shapes = [(draw(sizes), *draw(positions)), (draw(sizes), *draw(positions))]
    return shapes, {}, shapes[0]


@st.composite
def matmul_shapes(draw):
    c, h, k, w = (draw(sizes) for _ in range(4))
    return [(c, h, k), (c, k, w)], {}, (c, h, w)


@st.composite
def attention_shapes(draw):
    heads = draw(st.integers(1, 3))
    shapes = [(heads * draw(sizes), draw(sizes), draw(sizes)), (draw(sizes), draw(sizes), draw(sizes))]
    return shapes, {"heads": heads}, shapes[0]


# For each operator: (shapes, options, expected output shape) it accepts.
ACCEPTS = {
    "attention": attention_shapes(),
    "bilinear": aligned_shapes("rank"),
    "concat": concat_shapes(),
    "film": film_shapes(),
    "gated": aligned_shapes(),
    "hadamard": same_shapes(),
    "matmul": matmul_shapes(),
    "se": aligned_shapes("reduction"),
    "sum": same_shapes(),
}

# One small valid call per operator, with unequal channel counts wherever the operator allows them.
EXAMPLES = {
    "attention": ([(4, 3, 3), (3, 2, 2)], {"heads": 2}),
    "bilinear": ([(4, 3, 3), (3, 3, 3)], {"rank": 5}),
    "concat": ([(4, 3, 3), (3, 3, 3)], {}),
    "film": ([(4, 3, 3), (3, 2, 2)], {}),
    "gated": ([(4, 3, 3), (3, 3, 3)], {}),
    "hadamard": ([(4, 3, 3), (4, 3, 3)], {}),
    "matmul": ([(4, 3, 2), (4, 2, 3)], {}),
    "se": ([(4, 3, 3), (3, 3, 3)], {"reduction": 2}),
    "sum": ([(4, 3, 3), (4, 3, 3)], {}),
}


def test_every_registered_operator_has_a_specification_here():
    assert set(list_fusions()) == set(ACCEPTS) == set(EXAMPLES)


@pytest.mark.parametrize("name", sorted(ACCEPTS))
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_declared_output_shape_is_the_expected_and_the_real_one(name, data):
    shapes, options, expected = data.draw(ACCEPTS[name])
    op = create_fusion(name, shapes, **options)
    assert op.out_shape == expected
    assert op(*(torch.randn(2, *s) for s in shapes)).shape == (2, *expected)


@pytest.mark.parametrize(
    ("name", "shapes", "options", "message"),
    [
        ("film", [(4, 3, 3)] * 3, {}, "exactly two inputs"),
        ("film", [(4, 3, 3)], {}, "at least two inputs"),
        ("gated", [(4, 3, 3), (4, 3, 2)], {}, "equal shapes after the channel axis"),
        ("bilinear", [(4, 3, 3), (4,)], {}, "equal shapes after the channel axis"),
        ("se", [(4, 2, 3), (4, 3, 2)], {}, "equal shapes after the channel axis"),
        ("gated", [(4, 3, 3)] * 3, {}, "exactly two inputs"),
        ("attention", [(6, 3, 3)] * 2, {"heads": 4}, "heads must divide"),
        ("attention", [(6,), (6,)], {}, r"\(C, H, W\) feature maps"),
        ("attention", [(4, 3, 3), (4, 9)], {}, r"\(C, H, W\) feature maps"),
    ],
)
def test_operators_refuse_shapes_they_cannot_take(name, shapes, options, message):
    with pytest.raises(ShapeError, match=message):
        create_fusion(name, shapes, **options)


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(sorted(PIXEL_ALIGNED_MODELS)), first=positions, second=positions)
def test_pixel_aligned_operators_refuse_inputs_whose_positions_differ(name, first, second):
    assume(first != second)
    with pytest.raises(ShapeError, match="position by position"):
        create_fusion(name, [(3, *first), (3, *second)])


@pytest.mark.parametrize(
    ("name", "option", "value"),
    [("bilinear", "rank", 0), ("attention", "heads", 0), ("se", "reduction", -1), ("se", "reduction", 2.5)],
)
def test_bad_options_are_refused_by_name(name, option, value):
    with pytest.raises(ValueError, match=f"{option} must be a positive int"):
        create_fusion(name, [(4, 2, 2)] * 2, **{option: value})


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_vectors_are_fused_exactly_where_documented(name):
    shapes = [(4,), (4,)]
    if name in VECTOR_OPERATORS:
        op = create_fusion(name, shapes)
        assert op(torch.randn(3, 4), torch.randn(3, 4)).shape == (3, *op.out_shape)
    else:
        with pytest.raises(ShapeError, match=r"\(C, H, W\) feature maps"):
            create_fusion(name, shapes)


def _unregistered_tensors(module: torch.nn.Module) -> list[str]:
    return [
        f"{prefix}.{attr}"
        for prefix, sub in module.named_modules()
        for attr, value in vars(sub).items()
        if isinstance(value, torch.Tensor)
    ]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_every_weight_is_registered_and_moves_with_to(name):
    shapes, options = EXAMPLES[name]
    op = create_fusion(name, shapes, **options)
    assert _unregistered_tensors(op) == []
    op.to(torch.float64)
    assert all(t.dtype == torch.float64 for t in [*op.parameters(), *op.buffers()])
    assert op(*(torch.randn(2, *s, dtype=torch.float64) for s in shapes)).dtype == torch.float64


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_gradients_reach_both_inputs_and_every_weight(name):
    torch.manual_seed(0)
    shapes, options = EXAMPLES[name]
    op = create_fusion(name, shapes, **options)
    xs = [torch.randn(2, *s, requires_grad=True) for s in shapes]
    out = op(*xs)
    # Random weights: a plain sum would have zero gradient through a LayerNorm.
    (out * torch.randn_like(out)).sum().backward()
    assert all(x.grad is not None and x.grad.abs().sum() > 0 for x in xs)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in op.parameters())


def _batch(n: int, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.rand(n, 4, size, size), torch.rand(n, 4, size, size)


@pytest.mark.parametrize("name", NEW_MODELS)
def test_new_model_runs_forward_and_backward(name):
    model = fusionzoo.create(name, **SMALL)
    rgb, xyza = _batch(2)
    out = model(rgb, xyza)
    assert out.shape == (2, 9)
    out.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("name", ["concat", "matmul", "hadamard", "sum", *NEW_MODELS])
def test_models_transpose_the_lidar_map_exactly_when_their_operator_is_pixel_aligned(name):
    model = fusionzoo.create(name, **SMALL)
    assert model.lidar_transpose == (name in PIXEL_ALIGNED_MODELS)
    rgb, xyza = _batch(2)
    for transpose in (False, True):
        model.lidar_transpose = transpose
        seen = []
        hook = model.fusion.register_forward_pre_hook(lambda module, args: seen.append(args[1]))
        model(rgb, xyza)
        hook.remove()
        lidar = model.encoders["lidar"](xyza)
        torch.testing.assert_close(seen[0], lidar.transpose(-1, -2) if transpose else lidar, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["matmul", "gated"])
def test_feature_norm_hands_the_operator_standardised_maps_of_both_encoders(name):
    plain = fusionzoo.create(name, **SMALL)
    model = fusionzoo.create(name, **SMALL, feature_norm=True)
    channels = SMALL["widths"][-1]
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in plain.parameters()) + 2 * 2 * channels
    torch.manual_seed(0)
    rgb, xyza = _batch(3)
    xyza = 50 * xyza  # LiDAR-sized inputs: the scale the norm removes
    seen = []
    hook = model.fusion.register_forward_pre_hook(lambda module, args: seen.extend(args))
    model(rgb, xyza)
    hook.remove()
    for features, (modality, encoder), x in zip(seen, model.encoders.items(), (rgb, xyza)):
        raw = encoder(x)  # each sample's whole map standardised; at initialisation the affine is the identity
        mean, var = raw.mean(dim=(1, 2, 3), keepdim=True), raw.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
        expected = (raw - mean) / torch.sqrt(var + 1e-5)
        if modality == "lidar" and model.lidar_transpose:
            expected = expected.transpose(-1, -2)
        torch.testing.assert_close(features, expected)
    fusionzoo.freeze(model, "fusion")
    assert not any(p.requires_grad for p in model.feature_norms.parameters())
    assert all(p.requires_grad for p in model.encoders.parameters())


@pytest.mark.parametrize("name", NEW_MODELS)
def test_new_model_learns_a_linear_function_of_channel_means(name):
    torch.manual_seed(0)
    # Each channel is a per-sample level plus noise; the target is centred, so predicting its mean
    # gains nothing and the loss can only fall by reading the levels through the fusion.
    inputs = torch.rand(64, 8, 1, 1) + 0.1 * torch.randn(64, 8, 16, 16)
    rgb, xyza = inputs[:, :4], inputs[:, 4:]
    means = inputs.mean(dim=(2, 3))
    target = 3 * (means - means.mean(0)) @ torch.randn(8, 9)
    model = fusionzoo.create(name, **SMALL)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.mse_loss(model(rgb, xyza), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0], losses


def test_attention_is_pre_norm_so_its_residual_carries_the_first_map_unchanged():
    # A post-norm LayerNorm(t_1 + attention) divided the encoders' gradients by the features' scale
    # and kept the model at chance on the default scene; with the attention's output zeroed, a
    # pre-norm block returns its first input plus the positional embedding, at any scale.
    torch.manual_seed(0)
    op = create_fusion("attention", [(8, 3, 3), (4, 2, 2)], heads=2)
    with torch.no_grad():
        op.attend.out_proj.weight.zero_()
        op.attend.out_proj.bias.zero_()
    a, b = 50 * torch.rand(5, 8, 3, 3), 50 * torch.rand(5, 4, 2, 2)
    expected = a + op.positions[0].detach().transpose(0, 1).reshape(8, 3, 3)
    torch.testing.assert_close(op(a, b), expected)


@pytest.mark.parametrize(
    ("name", "overrides"),
    [(name, {}) for name in NEW_MODELS]
    + [("bilinear", {"fusion_options": {"rank": 3}}), ("gated", {"lidar_transpose": False}), ("gated", {"feature_norm": True})],
)
def test_new_model_round_trips_through_a_checkpoint(name, overrides, tmp_path):
    model = fusionzoo.create(name, **SMALL, **overrides).eval()
    loaded = fusionzoo.load(fusionzoo.save(model, tmp_path / "model.safetensors"))
    assert fusionzoo.model_config(loaded) == fusionzoo.model_config(model)
    assert loaded.lidar_transpose == model.lidar_transpose
    rgb, xyza = _batch(3)
    with torch.no_grad():
        torch.testing.assert_close(loaded(rgb, xyza), model(rgb, xyza), rtol=0, atol=0)


# docs/fusion-operators.md: the summary table's counts must be what the registry computes.
DOC = ROOT / "docs" / "fusion-operators.md"
DOC_MAP = (100, 8, 8)


def _doc_table() -> dict[str, dict[str, str]]:
    lines = [line for line in DOC.read_text().split("## Summary", 1)[1].splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = [dict(zip(header, (cell.strip() for cell in line.strip("|").split("|")))) for line in lines[2:]]
    return {row["operator"].strip("`"): row for row in rows}


def _count(cell: str) -> int:
    assert re.fullmatch(r"[+-]?(\d{1,3}(,\d{3})+|\d+)", cell), f"not a count: {cell!r}"
    return int(cell.replace(",", ""))


def test_docs_list_every_operator_and_its_model():
    assert set(_doc_table()) == set(list_fusions())


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_docs_parameter_counts_are_the_registrys(name):
    row = _doc_table()[name]
    op = create_fusion(name, [DOC_MAP, DOC_MAP])
    model = fusionzoo.info(name)
    assert _count(row["operator parameters"]) == sum(p.numel() for p in op.parameters())
    assert _count(row["model parameters"]) == model.num_params
    assert _count(row["vs matmul"]) == model.num_params - fusionzoo.info("matmul").num_params
    assert row["lidar_transpose"] == str(model.defaults["lidar_transpose"])


def _model_params(name: str, **overrides) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in fusionzoo.create(name, **overrides).parameters())


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_docs_budget_hidden_is_the_widest_head_within_matmuls_count(name):
    width = _count(_doc_table()[name]["budget hidden"])
    budget = fusionzoo.info("matmul").num_params
    assert _model_params(name, hidden=(width, 100)) <= budget < _model_params(name, hidden=(width + 1, 100))
