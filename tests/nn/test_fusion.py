"""The course's fusion operators: exact semantics, declared shapes, and errors."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fusionzoo import Fusion, ShapeError, create_fusion, list_fusions, register_fusion
from fusionzoo.nn.fusion import base as fusion_module


def test_course_operators_are_registered():
    assert {"concat", "matmul", "hadamard", "sum"} <= set(list_fusions())


def test_matmul_is_the_courses_per_channel_matrix_product():
    a, b = torch.rand(2, 100, 8, 8), torch.rand(2, 100, 8, 8)
    op = create_fusion("matmul", [(100, 8, 8), (100, 8, 8)])
    assert op.out_shape == (100, 8, 8)
    torch.testing.assert_close(op(a, b), torch.matmul(a, b), rtol=0, atol=0)


def test_concat_sum_and_hadamard_values():
    a, b = torch.rand(2, 3, 4, 4), torch.rand(2, 3, 4, 4)
    torch.testing.assert_close(create_fusion("concat", [(3, 4, 4)] * 2)(a, b), torch.cat((a, b), 1))
    torch.testing.assert_close(create_fusion("sum", [(3, 4, 4)] * 2)(a, b), a + b)
    torch.testing.assert_close(create_fusion("hadamard", [(3, 4, 4)] * 2)(a, b), a * b)


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(["concat", "matmul", "hadamard", "sum"]),
    channels=st.integers(1, 6),
    height=st.integers(1, 6),
    width=st.integers(1, 6),
    inner=st.integers(1, 6),
)
def test_course_operators_declare_their_real_output_shape(name, channels, height, width, inner):
    shapes = [(channels, height, inner), (channels, inner, width)] if name == "matmul" else [(channels, height, width)] * 2
    op = create_fusion(name, shapes)
    out = op(*(torch.rand(3, *s) for s in shapes))
    assert out.shape == (3, *op.out_shape)


@pytest.mark.parametrize(
    ("name", "shapes", "message"),
    [
        ("matmul", [(4, 8, 4), (4, 8, 4)], "first input's width must equal the second's height"),
        ("matmul", [(4, 8, 8), (5, 8, 8)], "same channel count"),
        ("matmul", [(9,), (9,)], r"\(C, H, W\) feature maps"),
        ("matmul", [(4, 8, 8)] * 3, "exactly two inputs"),
        ("concat", [(4, 8, 8), (4, 4, 4)], "equal shapes after the channel axis"),
        ("sum", [(4, 8, 8), (5, 8, 8)], "inputs of one shape"),
        ("hadamard", [(4, 8, 8)], "at least two inputs"),
    ],
)
def test_operators_refuse_shapes_they_cannot_take(name, shapes, message):
    with pytest.raises(ShapeError, match=message):
        create_fusion(name, shapes)


def test_concat_also_fuses_vectors():
    op = create_fusion("concat", [(9,), (9,)])
    assert op.out_shape == (18,)


def test_unknown_operator_lists_the_choices():
    with pytest.raises(KeyError, match="Did you mean 'matmul'"):
        create_fusion("matmal", [(1, 2, 2)] * 2)


def test_register_fusion_rejects_duplicates_and_non_operators(monkeypatch):
    monkeypatch.setattr(fusion_module, "_FUSIONS", dict(fusion_module._FUSIONS))
    with pytest.raises(ValueError, match="already registered"):
        register_fusion("concat")(type("Other", (Fusion,), {}))
    with pytest.raises(TypeError, match="Fusion subclass"):
        register_fusion("not_an_op")(int)


def test_a_third_party_operator_plugs_into_the_models(monkeypatch):
    import fusionzoo

    monkeypatch.setattr(fusion_module, "_FUSIONS", dict(fusion_module._FUSIONS))

    @register_fusion("maximum")
    class Maximum(Fusion):
        def infer_shape(self, shapes):
            return self._require_equal(shapes)

        def forward(self, a, b):
            return torch.maximum(a, b)

    model = fusionzoo.create("concat", fusion="maximum", widths=(4, 8), hidden=(8,), image_size=16)
    assert isinstance(model.fusion, Maximum)
    assert model.head.in_features == 8 * 4 * 4
