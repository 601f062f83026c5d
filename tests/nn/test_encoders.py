"""The reusable conv encoder and MLP head."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fusionzoo import ConvEncoder, MLPHead, ShapeError


@settings(max_examples=25, deadline=None)
@given(
    channels=st.integers(1, 5),
    widths=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    kernel=st.sampled_from([1, 3, 5]),
    height=st.integers(8, 20),
    width=st.integers(8, 20),
)
def test_encoder_reports_its_real_output_shape(channels, widths, kernel, height, width):
    encoder = ConvEncoder(channels, widths, kernel)
    out = encoder(torch.rand(2, channels, height, width))
    assert out.shape[1:] == encoder.output_shape((height, width))


def test_course_encoder_layout():
    encoder = ConvEncoder(4, (25, 50, 100))
    convs = [m for m in encoder.layers if isinstance(m, torch.nn.Conv2d)]
    assert [tuple(c.weight.shape) for c in convs] == [(25, 4, 3, 3), (50, 25, 3, 3), (100, 50, 3, 3)]
    assert all(c.padding == (1, 1) for c in convs)
    assert encoder.output_shape(64) == (100, 8, 8)


@pytest.mark.parametrize(
    ("args", "message"),
    [((0, (4,), 3), "in_channels"), ((4, (), 3), "widths"), ((4, (4, 0), 3), "widths"), ((4, (4,), 2), "kernel_size")],
)
def test_encoder_rejects_bad_arguments(args, message):
    with pytest.raises(ShapeError, match=message):
        ConvEncoder(*args)


def test_encoder_rejects_inputs_too_small_for_its_pooling():
    with pytest.raises(ShapeError, match="at least 8 pixels"):
        ConvEncoder(4, (4, 4, 4)).output_shape(7)


@settings(max_examples=15, deadline=None)
@given(in_features=st.integers(1, 40), hidden=st.lists(st.integers(1, 20), max_size=3), out=st.integers(1, 9))
def test_head_maps_flattened_features_to_outputs(in_features, hidden, out):
    head = MLPHead(in_features, hidden, out)
    linears = [m for m in head.layers if isinstance(m, torch.nn.Linear)]
    assert [lin.out_features for lin in linears] == [*hidden, out]
    assert head(torch.rand(3, in_features)).shape == (3, out)


def test_head_rejects_non_positive_sizes():
    with pytest.raises(ShapeError, match="positive"):
        MLPHead(0, (4,), 9)
