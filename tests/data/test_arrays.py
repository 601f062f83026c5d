"""Samples from a user's own arrays (issue #23): any image size, RGB with or without alpha, LiDAR with
extra channels; every shape or dtype that does not fit is a ``DatasetError`` naming the argument."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fusionzoo
from fusionzoo.data import TensorSamples, from_arrays
from fusionzoo.errors import DatasetError

N, S = 6, 16


def arrays(rgb_channels: int = 3, lidar_channels: int = 4, size: int = S, rgb_dtype=np.uint8):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (N, rgb_channels, size, size)).astype(rgb_dtype)
    xyza = rng.normal(size=(N, lidar_channels, size, size)).astype(np.float32)
    return rgb, xyza, rng.normal(size=(N, 9)).astype(np.float32)


def test_uint8_rgb_becomes_float_in_unit_range_and_shapes_are_kept():
    rgb, xyza, targets = arrays()
    samples = from_arrays(rgb, xyza, targets)
    assert isinstance(samples, TensorSamples) and len(samples) == N
    assert samples.rgb.dtype == samples.xyza.dtype == samples.targets.dtype == torch.float32
    assert samples.rgb.shape == (N, 3, S, S) and samples.xyza.shape == (N, 4, S, S)
    torch.testing.assert_close(samples.rgb, torch.from_numpy(rgb).float() / 255)


def test_torch_tensors_and_float_rgb_in_unit_range_are_taken_as_they_are():
    rgb = torch.rand(N, 4, S, S, dtype=torch.float64)
    samples = from_arrays(rgb, torch.randn(N, 4, S, S), torch.randn(N, 9))
    torch.testing.assert_close(samples.rgb, rgb.float())


def test_channels_last_arrays_with_layout_nhwc():
    rgb, xyza, targets = arrays(rgb_channels=4, lidar_channels=5)
    samples = from_arrays(rgb.transpose(0, 2, 3, 1), xyza.transpose(0, 2, 3, 1), targets, layout="NHWC")
    torch.testing.assert_close(samples.rgb, torch.from_numpy(rgb).float() / 255)
    torch.testing.assert_close(samples.xyza, torch.from_numpy(xyza))
    assert samples.rgb.is_contiguous()


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_grey_rgb_and_rgba_train_a_model_built_for_them(channels):
    samples = from_arrays(*arrays(rgb_channels=channels, lidar_channels=5))
    model = fusionzoo.create("matmul", image_size=S, rgb_channels=channels, lidar_channels=5, widths=(4, 6, 8), hidden=(12,))
    rgb, xyza, targets = samples.batch(torch.arange(2))
    assert model(rgb, xyza).shape == targets.shape


def test_any_image_size_is_resized_with_image_size():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (N, 40, 30, 3), dtype=np.uint8)
    xyza = rng.normal(size=(N, 24, 24, 4)).astype(np.float32)
    samples = from_arrays(rgb, xyza, np.zeros(N, np.float32), layout="NHWC", image_size=S)
    assert samples.rgb.shape == (N, 3, S, S) and samples.xyza.shape == (N, 4, S, S)
    assert samples.targets.shape == (N, 1)
    assert 0.0 <= float(samples.rgb.min()) and float(samples.rgb.max()) <= 1.0
    # nearest: every resized LiDAR point is one of the grid's own points
    assert set(samples.xyza[0, 0].flatten().tolist()) <= set(xyza[0, :, :, 0].flatten().tolist())


def test_a_reversed_numpy_view_is_read():
    rgb, xyza, targets = arrays()
    samples = from_arrays(rgb[::-1], xyza, targets)
    torch.testing.assert_close(samples.rgb[0], torch.from_numpy(rgb[-1]).float() / 255)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r, x, t: (r[0], x, t), r"rgb: expected a 4-D array \(N, C, H, W\) \(NCHW\), got shape \(3, 16, 16\) \(one sample\?"),
        (lambda r, x, t: (r.transpose(0, 2, 3, 1), x, t), r"rgb: expected 1 \(grey\), 3 \(RGB\) or 4 \(RGBA\) channels, got 16 .*pass layout='NHWC'"),
        (lambda r, x, t: (np.concatenate([r, r], 1), x, t), r"rgb: expected 1 \(grey\), 3 \(RGB\) or 4 \(RGBA\) channels, got 6"),
        (lambda r, x, t: (r, x[:, :2], t), r"xyza: expected at least 3 \(X, Y, Z.*channels, got 2"),
        (lambda r, x, t: (r, x, t[:-1]), r"sample counts differ \(rgb 6, xyza 6, targets 5\)"),
        (lambda r, x, t: (r[:0], x[:0], t[:0]), r"no samples"),
        (lambda r, x, t: (r.astype(np.int64), x, t), r"rgb: dtype torch.int64 found; expected uint8 \(0..255\) or float in \[0, 1\]"),
        (lambda r, x, t: (r.astype(np.float32), x, t), r"rgb: float values in \[0, 2\d\d\] found; expected \[0, 1\]: divide by 255"),
        (lambda r, x, t: (r, x.astype(np.int32), t), r"xyza: dtype torch.int32 found; expected floating point"),
        (lambda r, x, t: (r, x, t.astype(np.int64)), r"targets: dtype torch.int64 found; the models regress float targets"),
        (lambda r, x, t: (r, x, t[:, :, None]), r"targets: expected \(N, T\) or \(N,\), got shape \(6, 9, 1\)"),
        (lambda r, x, t: (r, np.where(x > 2, np.nan, x), t), r"xyza: \d+ of \d+ values are NaN or infinite"),
        (lambda r, x, t: (r, x, np.full_like(t, np.inf)), r"targets: 54 of 54 values are NaN or infinite"),
        (lambda r, x, t: (r[:, :, :, :8], x, t), r"rgb: images of 16 x 8 found; the models take square S x S images: pass image_size"),
        (lambda r, x, t: (r, x[:, :, :8, :8], t), r"xyza: grids of 8 x 8 found, the images are 16 x 16.*image_size"),
        (lambda r, x, t: (r.tolist(), x, t), r"rgb: expected a numpy array or a torch tensor, got list"),
    ],
)
def test_arrays_that_do_not_fit_are_named_errors(change, message):
    with pytest.raises(DatasetError, match=message):
        from_arrays(*change(*arrays()))


def test_layout_and_image_size_are_checked():
    with pytest.raises(DatasetError, match=r"layout: expected one of \('NCHW', 'NHWC'\), got 'CHW'"):
        from_arrays(*arrays(), layout="CHW")
    with pytest.raises(DatasetError, match="image_size: expected a positive int"):
        from_arrays(*arrays(), image_size=0)
