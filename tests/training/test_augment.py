"""Mirror augmentation: a mirrored sample is, bit for bit, the sample the generator renders of the
mirrored scene; which samples are mirrored is decided per sample index from (seed, epoch); data
whose geometry does not make the mirror exact are refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import fusionzoo
from fusionzoo.data import ReplicatorDataset, Samples
from fusionzoo.sim.render import Lighting, Objects
from fusionzoo.sim.scenes import SceneConfig, Scenes, draw_scenes, write_scenes
from fusionzoo.training.augment import MirrorPlan, NotMirrorSymmetricError, check_mirror_symmetric, mirror_batch
from fusionzoo.training.run import epoch_generator
from random_samples import random_samples

SIZE, COUNT = 16, 12
FLIP_X = np.diag([-1.0, 1.0, 1.0])  # the mirror through the world's plane x = 0


def mirrored(scenes: Scenes) -> Scenes:
    """The scenes mirrored through x = 0: centres' and the light's x negated, each rotation R
    conjugated (M R M, a rotation again; the shapes are their own mirror images), and each LiDAR
    beam's range noise moved to the mirrored beam (rows are azimuth)."""
    o, light = scenes.objects, scenes.lighting
    return Scenes(
        Objects(o.shapes, o.colors, o.centers @ FLIP_X, o.sizes, FLIP_X @ o.rotations @ FLIP_X),
        Lighting(light.direction @ FLIP_X, light.diffuse, light.ambient),
        scenes.range_noise[:, ::-1, :].copy(),
    )


def read(root) -> Samples:
    return ReplicatorDataset(root, image_size=SIZE, cache=False)


SCENES = {
    "default cubes": {},
    "floor, full rotations": {"background": "floor", "rotation": "full"},
    "sphere, torus, cube": {"shapes": ("sphere", "torus", "cube")},
    "a wider LiDAR grid": {"lidar_grid": (SIZE, 24)},
}


@pytest.mark.parametrize("knobs", SCENES.values(), ids=SCENES.keys())
def test_a_mirrored_sample_is_the_render_of_the_mirrored_scene_bit_for_bit(knobs, tmp_path):
    """Written and read back as the trainer reads any dataset: PNG, depth grids, positions.csv.
    Exact, not close: the camera's pixel rays and the LiDAR's azimuths are symmetric to the last bit,
    so the mirrored scene's rays are the original's mirrored, and every hit the same distance."""
    config = SceneConfig(samples=COUNT, image_size=SIZE, **{"lidar_grid": (SIZE, SIZE), **knobs})
    scenes = draw_scenes(config, range(COUNT))
    original = read(write_scenes(tmp_path / "original", config, scenes))
    expected = read(write_scenes(tmp_path / "mirrored", config, mirrored(scenes)))
    check_mirror_symmetric(original)
    index = torch.arange(COUNT)
    for name, got, want in zip(("rgb", "xyza", "targets"), mirror_batch(*original.batch(index)), expected.batch(index)):
        assert torch.equal(got, want), name
    assert (original.depth < 50).any()  # the LiDAR saw objects: the comparison is not of empty grids


def test_mirror_batch_flips_the_image_reverses_the_azimuths_and_negates_x():
    rgb, xyza, target = torch.rand(2, 4, 3, 5), torch.rand(2, 4, 6, 7), torch.rand(2, 9)
    m_rgb, m_xyza, m_target = mirror_batch(rgb, xyza, target)
    assert torch.equal(m_rgb[..., 0], rgb[..., -1])
    assert torch.equal(m_xyza[:, 0, 0], -xyza[:, 0, -1]) and torch.equal(m_xyza[:, 1:, 0], xyza[:, 1:, -1])
    assert torch.equal(m_target[:, 0::3], -target[:, 0::3]) and torch.equal(m_target[:, 1::3], target[:, 1::3])
    assert torch.equal(mirror_batch(m_rgb, m_xyza, m_target)[1], xyza)  # twice is the identity


def test_the_plan_is_decided_per_sample_so_any_share_of_a_batch_gets_the_same():
    plan = MirrorPlan.draw(seed=3, epoch=2, count=40, p=0.5)
    assert plan.mirrored.float().mean() == pytest.approx(0.5, abs=0.2)
    assert torch.equal(plan.mirrored, MirrorPlan.draw(3, 2, 40, 0.5).mirrored)
    assert not torch.equal(plan.mirrored, MirrorPlan.draw(3, 3, 40, 0.5).mirrored)
    index = torch.randperm(40)[:16]
    batch = (torch.rand(16, 4, 8, 8), torch.rand(16, 4, 8, 8), torch.rand(16, 9))
    whole = plan.apply(index, *batch)
    for share in (slice(0, 8), slice(8, 16)):  # two processes' halves of the global batch
        halves = plan.apply(index[share], *(t[share] for t in batch))
        assert all(torch.equal(h, w[share]) for h, w in zip(halves, whole))
    chosen = plan.mirrored[index]
    assert torch.equal(whole[2][chosen], mirror_batch(*batch)[2][chosen]) and torch.equal(whole[2][~chosen], batch[2][~chosen])
    assert not MirrorPlan.draw(3, 2, 40, 0.0).mirrored.any() and MirrorPlan.draw(3, 2, 40, 1.0).mirrored.all()


def test_fit_mirrors_generated_scenes_and_records_it(tmp_path):
    config = SceneConfig(samples=48, image_size=SIZE, lidar_grid=(SIZE, SIZE), supersample=1)
    data = read(write_scenes(tmp_path / "cubes", config, draw_scenes(config, range(48))))
    seen = []
    torch.manual_seed(0)
    model = fusionzoo.create("matmul", image_size=SIZE, widths=(4, 8), hidden=(16,))
    model.register_forward_pre_hook(lambda module, args: seen.append(args[0].detach().clone()))
    fusionzoo.fit(model, data, epochs=1, batch_size=16, mirror=1.0, checkpoint_dir=tmp_path / "run", progress=False,
                  channels_last=False, device="cpu")
    first = torch.randperm(48, generator=epoch_generator(0, 1))[:16]
    assert torch.equal(seen[0], data.batch(first)[0].flip(-1))  # every sample mirrored at p = 1
    assert fusionzoo.read_record(tmp_path / "run" / "best.safetensors").record.recipe["mirror"] == 1.0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_mirroring_a_batch_makes_the_host_wait_for_nothing():
    """A wait per step made mirrored runs train 2.3x as long as the rest with 16 runs sharing one GPU."""
    index = torch.arange(8)
    batch = random_samples(8, 0, SIZE).batch(index)
    plan = MirrorPlan.draw(seed=3, epoch=2, count=8, p=0.5)
    assert 0 < int(plan.mirrored.sum()) < 8  # some mirrored, some not: both branches run
    on_device = [t.cuda() for t in batch]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        got = plan.apply(index, *on_device)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    for name, a, b in zip(("rgb", "xyza", "target"), got, plan.apply(index, *batch)):
        assert torch.equal(a.cpu(), b), name


def _refusal(samples: Samples) -> str:
    with pytest.raises(NotMirrorSymmetricError) as caught:
        check_mirror_symmetric(samples)
    return str(caught.value)


def test_data_whose_sensors_are_off_the_mirror_plane_are_refused(tmp_path):
    config = SceneConfig(samples=4, image_size=SIZE, lidar_grid=(SIZE, SIZE), camera_position=(3.0, -24.0, 8.0))
    data = read(write_scenes(tmp_path / "cubes", config, draw_scenes(config, range(4))))
    assert "camera_position is [3.0, -24.0, 8.0], off the mirror plane x = 0" in _refusal(data)
    with pytest.raises(NotMirrorSymmetricError, match="camera_position"):
        fusionzoo.fit(fusionzoo.create("matmul", image_size=SIZE, widths=(4,), hidden=(4,)), data, epochs=1,
                      batch_size=4, mirror=0.5, progress=False, device="cpu")


def test_data_without_a_generator_config_or_with_asymmetric_beams_or_unknown_shapes_are_refused():
    assert "no generator config comes with them" in _refusal(random_samples(4, 0, SIZE))
    lopsided = random_samples(4, 0, SIZE)
    lopsided.azimuth = torch.linspace(-1.0, 0.5, SIZE)
    lopsided.source = {"dataset": {"scene": {"config": {"camera_position": [0, -24, 8], "lidar_position": [0, -24, 8],
                                                         "look_at": [0, 0, 0], "shapes": ["cube", "pyramid", "cube"]}}}}
    message = _refusal(lopsided)
    assert "azimuths (-57.3 to 28.6 degrees) are not symmetric about 0" in message
    assert "shapes ['pyramid'] are not known to be their own mirror image" in message
    with pytest.raises(ValueError, match="mirror must be a probability"):
        fusionzoo.fit(fusionzoo.create("matmul", image_size=SIZE), random_samples(4, 0, SIZE), mirror=2.0, progress=False, device="cpu")
