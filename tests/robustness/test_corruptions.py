"""The sensor corruptions: identity at severity 0, deterministic under a seed, touching only the
sensor they claim, monotone in severity, and encoding a LiDAR scan exactly as the data do."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fusionzoo.data.xyza import DEFAULT_HIT_THRESHOLD, depth_to_xyza
from fusionzoo.robustness import MISS_RANGE, corrupt, get_corruption, list_corruptions
from fusionzoo.sim.scenes import SceneConfig

NAMES = list_corruptions()
ISSUE_NAMES = ["camera_noise", "camera_brightness", "camera_darkness", "camera_blur", "camera_occlusion", "camera_missing",
               "camera_stuck", "lidar_beam_dropout", "lidar_point_dropout", "lidar_range_noise", "lidar_fov_loss",
               "lidar_missing", "misalignment"]
SIZE = 16


def batch(count: int = 6, seed: int = 0, size: int = SIZE) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A batch as the reader makes it: RGBA in [0, 1] with alpha 1, and XYZA from depth grids in which
    about half the beams return (depth 15 to 35) and the others miss at the generator's max range."""
    g = torch.Generator().manual_seed(seed)
    rgb = torch.rand(count, 4, size, size, generator=g)
    rgb[:, 3] = 1.0
    depth = torch.where(torch.rand(count, size, size, generator=g) < 0.5,
                        15 + 20 * torch.rand(count, size, size, generator=g), torch.full((count, size, size), MISS_RANGE))
    azimuth, zenith = torch.linspace(-0.4, 0.4, size), torch.linspace(-0.35, 0.35, size)
    return rgb, depth_to_xyza(depth, azimuth, zenith), depth


def test_the_registry_names_the_issues_corruptions_camera_first():
    assert NAMES == ISSUE_NAMES
    assert list_corruptions("both") == ["misalignment"]
    assert all(get_corruption(n).family == "lidar" for n in list_corruptions("lidar"))


def test_unknown_names_and_severities_are_refused_naming_the_choices():
    rgb, xyza, _ = batch()
    with pytest.raises(KeyError, match="camera_noise"):
        corrupt("camera_nois", rgb, xyza)
    with pytest.raises(ValueError, match="severity"):
        corrupt("camera_noise", rgb, xyza, severity=6)
    with pytest.raises(ValueError, match="xyza"):
        corrupt("camera_noise", rgb, xyza[:, :3])


def test_the_miss_range_is_the_generators():
    assert MISS_RANGE == SceneConfig().max_range


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=5, deadline=None)
@given(count=st.integers(1, 5), seed=st.integers(0, 2**31))
def test_severity_zero_is_the_identity(name, count, seed):
    rgb, xyza, _ = batch(count, seed % 1000)
    out_rgb, out_xyza = corrupt(name, rgb, xyza, severity=0, seed=seed)
    assert torch.equal(out_rgb, rgb) and torch.equal(out_xyza, xyza)
    assert out_rgb is not rgb and out_xyza is not xyza


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=4, deadline=None)
@given(severity=st.integers(1, 5), seed=st.integers(0, 2**31))
def test_a_seed_gives_the_same_corruption_and_the_inputs_are_untouched(name, severity, seed):
    rgb, xyza, _ = batch()
    before = rgb.clone(), xyza.clone()
    first, second = corrupt(name, rgb, xyza, severity=severity, seed=seed), corrupt(name, rgb, xyza, severity=severity, seed=seed)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert torch.equal(rgb, before[0]) and torch.equal(xyza, before[1])
    assert first[0].shape == rgb.shape and first[1].shape == xyza.shape


@pytest.mark.parametrize("name", NAMES)
def test_each_corruption_changes_only_the_sensor_it_claims(name):
    rgb, xyza, _ = batch()
    out_rgb, out_xyza = corrupt(name, rgb, xyza, severity=5, seed=1)
    family = get_corruption(name).family
    assert torch.equal(out_xyza, xyza) == (family in ("camera", "both"))
    assert torch.equal(out_rgb, rgb) == (family == "lidar")


def test_missing_lidar_leaves_the_camera_bit_identical_and_zeros_the_scan():
    rgb, xyza, _ = batch()
    out_rgb, out_xyza = corrupt("lidar_missing", rgb, xyza, severity=5)
    assert torch.equal(out_rgb, rgb) and not out_xyza.any()


def test_missing_camera_is_all_zeros_and_stuck_camera_shows_another_samples_frame():
    rgb, xyza, _ = batch()
    assert not corrupt("camera_missing", rgb, xyza, severity=5)[0].any()
    stuck = corrupt("camera_stuck", rgb, xyza, severity=5, seed=3)[0]
    for i, frame in enumerate(stuck):
        matches = [j for j in range(len(rgb)) if torch.equal(frame, rgb[j])]
        assert len(matches) == 1 and matches[0] != i


def test_camera_values_stay_in_the_image_range():
    rgb, xyza, _ = batch()
    for name in list_corruptions("camera") + ["misalignment"]:
        out = corrupt(name, rgb, xyza, severity=5, seed=2)[0]
        assert out.min() >= 0 and out.max() <= 1, name


@pytest.mark.parametrize("name", NAMES)
def test_severities_are_monotone_in_their_parameter(name):
    values = get_corruption(name).severities
    columns = list(zip(*values)) if isinstance(values[0], tuple) else [values]
    for column in columns:
        steps = [b - a for a, b in zip(column, column[1:])]
        assert all(s > 0 for s in steps) or all(s < 0 for s in steps), (name, column)


@pytest.mark.parametrize("name", ["camera_noise", "camera_brightness", "camera_darkness", "camera_blur", "camera_occlusion",
                                  "camera_missing", "lidar_point_dropout", "lidar_range_noise", "lidar_fov_loss",
                                  "lidar_missing", "misalignment"])
def test_the_change_grows_with_severity(name):
    rgb, xyza, _ = batch(count=32)
    changes = []
    for severity in range(6):
        out_rgb, out_xyza = corrupt(name, rgb, xyza, severity=severity, seed=0)
        changes.append(float((out_rgb - rgb).abs().mean() + (out_xyza - xyza).abs().mean()))
    assert all(a < b for a, b in zip(changes, changes[1:])), changes


@pytest.mark.parametrize("name", ["lidar_point_dropout", "lidar_beam_dropout", "lidar_fov_loss"])
def test_a_lost_return_becomes_exactly_the_datas_miss(name):
    rgb, xyza, depth = batch()
    out = corrupt(name, rgb, xyza, severity=3, seed=4)[1]
    lost = (xyza[:, 3] == 1) & (out[:, 3] == 0)
    assert lost.any()
    azimuth, zenith = torch.linspace(-0.4, 0.4, SIZE), torch.linspace(-0.35, 0.35, SIZE)
    expected = depth_to_xyza(torch.where(lost, torch.tensor(MISS_RANGE), depth), azimuth, zenith)
    assert torch.equal(out[:, 3], expected[:, 3])
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-4)
    kept = ~lost.unsqueeze(1).expand_as(xyza)
    assert torch.equal(out[kept], xyza[kept])  # returns kept and misses already there: bit-identical


def test_beam_dropout_loses_every_kth_row():
    rgb, xyza, _ = batch()
    out = corrupt("lidar_beam_dropout", rgb, xyza, severity=5, seed=0)[1]  # k = 2
    for sample in out:
        lost_rows = [r for r in range(SIZE) if not sample[3, r].any()]
        assert len(lost_rows) >= SIZE // 2 and {r % 2 for r in lost_rows[: SIZE // 2]} in ({0}, {1})


def test_range_noise_moves_each_return_along_its_beam():
    rgb, xyza, _ = batch()
    out = corrupt("lidar_range_noise", rgb, xyza, severity=5, seed=0)[1]
    returns = (xyza[:, 3] == 1).unsqueeze(1).expand(-1, 3, -1, -1)
    before, after = xyza[:, :3], out[:, :3]
    direction = lambda v: v / torch.linalg.vector_norm(v, dim=1, keepdim=True)  # noqa: E731
    torch.testing.assert_close(direction(after)[returns], direction(before)[returns], rtol=0, atol=1e-5)
    moved = torch.linalg.vector_norm(after - before, dim=1)[xyza[:, 3] == 1]
    assert 0.3 < float(moved.std()) < 1.5  # severity 5: 0.8 scene units
    misses = xyza[:, 3] == 0
    assert torch.equal(out.permute(1, 0, 2, 3)[:, misses], xyza.permute(1, 0, 2, 3)[:, misses])
    assert (torch.linalg.vector_norm(after, dim=1)[out[:, 3] == 1] < DEFAULT_HIT_THRESHOLD).all()


def test_corruptions_follow_the_batch_to_its_device_and_dtype():
    rgb, xyza, _ = batch()
    for name in NAMES:
        out_rgb, out_xyza = corrupt(name, rgb.double(), xyza.double(), severity=2)
        assert out_rgb.dtype == out_xyza.dtype == torch.float64, name
