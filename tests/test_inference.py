"""fusionzoo.predict: the model's outputs for single samples and batches, with shapes checked up front."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fusionzoo
from fusionzoo import ShapeError, predict

SIZE = 16
SMALL = {"image_size": SIZE, "widths": (4, 8), "hidden": (16,)}


def model(name: str = "concat", **overrides) -> torch.nn.Module:
    torch.manual_seed(0)
    return fusionzoo.create(name, **{**SMALL, **overrides})


def inputs(batch: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    shape = (SIZE, SIZE) if batch is None else (batch, SIZE, SIZE)
    generator = torch.Generator().manual_seed(batch or 0)
    rgb = torch.rand(*shape[:-2], 4, *shape[-2:], generator=generator)
    xyza = torch.randn(*shape[:-2], 4, *shape[-2:], generator=generator)
    return rgb, xyza


@pytest.mark.parametrize("name", ["early", "late", "concat", "matmul"])
def test_predict_equals_the_model_under_no_grad(name):
    net = model(name)
    rgb, xyza = inputs(5)
    with torch.no_grad():
        expected = net.eval()(rgb, xyza)
    out = predict(net, rgb, xyza)
    assert out.shape == (5, 9)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)


@settings(max_examples=10, deadline=None)
@given(batch=st.integers(1, 9), batch_size=st.integers(1, 4))
def test_batches_split_into_chunks_give_the_same_outputs(batch, batch_size):
    net = model()
    rgb, xyza = inputs(batch)
    whole = predict(net, rgb, xyza, batch_size=batch)
    torch.testing.assert_close(predict(net, rgb, xyza, batch_size=batch_size), whole, rtol=1e-5, atol=1e-6)


def test_a_single_sample_gives_one_output_row_equal_to_its_batched_result():
    net = model()
    rgb, xyza = inputs(3)
    batch = predict(net, rgb, xyza)
    single = predict(net, rgb[1], xyza[1])
    assert single.shape == (9,)
    torch.testing.assert_close(single, batch[1], rtol=1e-5, atol=1e-6)


def test_the_model_runs_in_eval_mode_and_gets_its_training_flags_back():
    net = model("concat", hidden=(16,))
    net.head = torch.nn.Sequential(torch.nn.Dropout(0.9), net.head)  # eval mode makes dropout a no-op
    net.train()
    net.encoders["rgb"].eval()  # a frozen part, as fit keeps it
    rgb, xyza = inputs(4)
    first, second = predict(net, rgb, xyza), predict(net, rgb, xyza)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert net.training and net.head.training and not net.encoders["rgb"].training


def test_outputs_carry_no_gradient_history_and_may_feed_autograd():
    rgb, xyza = inputs(2)
    out = predict(model(), rgb.requires_grad_(), xyza)
    assert not out.requires_grad and not out.is_inference()
    weight = torch.ones(9, requires_grad=True)
    (out * weight).sum().backward()
    torch.testing.assert_close(weight.grad, out.sum(0))


def test_the_unused_input_of_a_single_modality_model_may_be_none():
    net = model("rgb")
    rgb, _ = inputs(2)
    with torch.no_grad():
        expected = net.eval()(rgb)
    torch.testing.assert_close(predict(net, rgb, None), expected, rtol=0, atol=0)


def test_a_model_input_given_as_none_is_named_when_the_model_declares_no_fill():
    # Zoo models fill an absent input by their policy (tests/robustness/test_missing_modality.py);
    # a module that declares its inputs but no fill still needs every one.
    class NoFill(torch.nn.Module):
        input_shapes = {"rgb": (4, SIZE, SIZE), "xyza": (4, SIZE, SIZE)}

        def forward(self, rgb, xyza):
            return rgb.flatten(1)[:, :9] + xyza.flatten(1)[:, :9]

    rgb, _ = inputs(2)
    with pytest.raises(ShapeError, match="xyza"):
        predict(NoFill(), rgb, None)


@pytest.mark.parametrize(
    ("rgb_shape", "xyza_shape", "named"),
    [
        ((2, 3, SIZE, SIZE), (2, 4, SIZE, SIZE), "rgb"),  # wrong channel count
        ((2, 4, SIZE, SIZE), (2, 4, SIZE, 8), "xyza"),  # wrong grid size
        ((4, SIZE), (4, SIZE, SIZE), "rgb"),  # neither a sample nor a batch
        ((4, SIZE, SIZE), (2, 4, SIZE, SIZE), "rgb, xyza"),  # one single, one batched
        ((2, 4, SIZE, SIZE), (3, 4, SIZE, SIZE), "rgb, xyza"),  # batch sizes differ
    ],
)
def test_bad_shapes_raise_shape_error_naming_the_argument(rgb_shape, xyza_shape, named):
    with pytest.raises(ShapeError, match=f"^{named}:"):
        predict(model(), torch.rand(rgb_shape), torch.rand(xyza_shape))


def test_integer_images_are_refused_rather_than_read_unscaled():
    _, xyza = inputs(2)
    with pytest.raises(TypeError, match="rgb: .*uint8"):
        predict(model(), torch.zeros(2, 4, SIZE, SIZE, dtype=torch.uint8), xyza)


def test_an_empty_batch_is_refused():
    with pytest.raises(ShapeError, match="empty batch"):
        predict(model(), torch.rand(0, 4, SIZE, SIZE), torch.rand(0, 4, SIZE, SIZE))


def test_a_device_argument_moves_the_model_and_the_result_comes_back_where_the_inputs_were():
    net = model()
    rgb, xyza = inputs(2)
    out = predict(net, rgb, xyza, device="cpu")
    assert out.device == rgb.device
    assert next(net.parameters()).device.type == "cpu"
    with pytest.raises(ValueError, match="batch_size"):
        predict(net, rgb, xyza, batch_size=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_host_inputs_to_a_cuda_model_come_back_on_the_host():
    net = model().cuda()
    rgb, xyza = inputs(3)
    out = predict(net, rgb, xyza)
    assert out.device.type == "cpu"
    torch.testing.assert_close(out, predict(net.cpu(), rgb, xyza), rtol=1e-4, atol=1e-4)
