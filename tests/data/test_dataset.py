"""ReplicatorDataset: reading the course's layout, XYZA, splits, the decode-once cache, bad input."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from safetensors import safe_open

from fusionzoo.data import BatchLoader, ReplicatorDataset, Samples, course_loaders, depth_to_xyza, course_splits
from fusionzoo.data import cache as tensor_cache
from fusionzoo.errors import DatasetError

REPO = Path(__file__).resolve().parents[2]
CACHE = ".fusionzoo-cache"


def write_dataset(
    root: Path, n: int = 5, png: int = 8, lidar: tuple[int, int] = (3, 4), mode: str = "RGBA", seed: int = 0
):
    """A dataset in the course's layout; returns what was written, for comparison."""
    rng = np.random.default_rng(seed)
    (root / "rgb").mkdir(parents=True)
    (root / "lidar").mkdir()
    azimuth = rng.uniform(-1, 1, lidar[0]).astype(np.float32)
    zenith = rng.uniform(-1, 1, lidar[1]).astype(np.float32)
    np.save(root / "azimuth.npy", azimuth)
    np.save(root / "zenith.npy", zenith)
    targets = rng.uniform(-5, 5, (n, 9))
    write_csv(root, targets)
    channels = len(mode)
    images = rng.integers(0, 256, (n, png, png, channels), dtype=np.uint8)
    depths = rng.uniform(0.5, 60.0, (n, *lidar)).astype(np.float32)
    for i in range(n):
        Image.fromarray(images[i], mode).save(root / "rgb" / f"{i:04d}.png")
        np.save(root / "lidar" / f"{i:04d}.npy", depths[i])
    return {"images": images, "depths": depths, "targets": targets, "azimuth": azimuth, "zenith": zenith}


def write_csv(root: Path, rows) -> None:
    lines = ["red x,red y,red z,green x,green y,green z,blue x,blue y,blue z"]
    lines += [",".join(repr(float(v)) for v in row) for row in rows]
    (root / "positions.csv").write_text("\n".join(lines) + "\n")


def course_xyza(depth: torch.Tensor, azimuth: torch.Tensor, zenith: torch.Tensor) -> torch.Tensor:
    """The course's conversion, as written in the lab (FORMAT.md), for one (H, W) grid."""
    x = depth * torch.sin(-azimuth[:, None]) * torch.cos(-zenith[None, :])
    y = depth * torch.cos(-azimuth[:, None]) * torch.cos(-zenith[None, :])
    z = depth * torch.sin(-zenith[None, :])
    a = torch.where(depth < 50.0, torch.ones_like(depth), torch.zeros_like(depth))
    return torch.stack((x, y, z, a))


def tensors_of(samples: Samples) -> dict[str, torch.Tensor]:
    return {name: getattr(samples, name) for name in ("rgb", "depth", "targets", "azimuth", "zenith")}


def files_of(root: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


# --- reading -------------------------------------------------------------------------------------


def test_reads_every_sample_as_course_shaped_tensors(tmp_path):
    written = write_dataset(tmp_path, n=5, png=8, lidar=(3, 4))
    ds = ReplicatorDataset(tmp_path, image_size=8)
    assert len(ds) == 5
    rgb, xyza, target = ds[2]
    assert rgb.shape == (4, 8, 8) and rgb.dtype == torch.float32
    assert xyza.shape == (4, 3, 4) and target.shape == (9,) and target.dtype == torch.float32
    assert ds.rgb.dtype == torch.uint8  # held 4x smaller than float
    assert torch.equal(ds.rgb, torch.from_numpy(written["images"]).permute(0, 3, 1, 2))
    assert torch.equal(rgb, torch.from_numpy(written["images"][2]).permute(2, 0, 1).float() / 255)
    assert torch.equal(ds.depth, torch.from_numpy(written["depths"]))
    assert torch.equal(ds.targets, torch.tensor(written["targets"], dtype=torch.float32))


def test_resize_matches_the_course_pil_pipeline(tmp_path):
    write_dataset(tmp_path, n=3, png=20, mode="RGB")
    ds = ReplicatorDataset(tmp_path, image_size=8, channels=3)
    course = T.Compose([T.Resize(8), T.ToTensor()])
    for i in range(3):
        expected = course(Image.open(tmp_path / "rgb" / f"{i:04d}.png"))
        assert ds[i][0].shape == expected.shape == (3, 8, 8)
        assert (ds[i][0] - expected).abs().max() <= 1 / 255 + 1e-6


def test_rgb_png_gets_an_opaque_alpha_channel_when_four_are_asked(tmp_path):
    written = write_dataset(tmp_path, n=3, png=8, mode="RGB")
    ds = ReplicatorDataset(tmp_path, image_size=8, channels=4)
    assert torch.equal(ds.rgb[:, :3], torch.from_numpy(written["images"]).permute(0, 3, 1, 2))
    assert torch.all(ds.rgb[:, 3] == 255)


def write_png_16bit_rgb(path: Path, image: np.ndarray) -> None:
    """A 16-bit RGB PNG (which PIL cannot write), chunk by chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    height, width, _ = image.shape
    rows = b"".join(b"\x00" + image[y].astype(">u2").tobytes() for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    chunks = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunks)


def test_16_bit_png_keeps_its_high_byte_like_pil(tmp_path):
    write_dataset(tmp_path, n=2, png=8, mode="RGB")
    deep = np.random.default_rng(1).integers(0, 65536, (8, 8, 3), dtype=np.uint16)
    write_png_16bit_rgb(tmp_path / "rgb" / "0001.png", deep)
    ds = ReplicatorDataset(tmp_path, image_size=8, channels=3)
    assert torch.equal(ds.rgb[1], torch.from_numpy((deep >> 8).astype(np.uint8)).permute(2, 0, 1))
    pil = np.array(Image.open(tmp_path / "rgb" / "0001.png").convert("RGB"))
    assert torch.equal(ds.rgb[1], torch.from_numpy(pil).permute(2, 0, 1))


def test_samples_api_comes_with_the_dataset(tmp_path):
    written = write_dataset(tmp_path, n=5)
    ds = ReplicatorDataset(tmp_path, image_size=8)
    part = ds.subset([3, 0])
    assert torch.equal(part.targets, torch.tensor(written["targets"][[3, 0]], dtype=torch.float32))
    rgb, xyza, targets = ds.batch(torch.tensor([4, 1]))
    assert rgb.shape == (2, 4, 8, 8) and xyza.shape == (2, 4, 3, 4)
    assert torch.equal(targets, ds.targets[[4, 1]])
    assert torch.equal(ds[-1][2], ds.targets[4]) and torch.equal(ds[np.int64(1)][2], ds.targets[1])
    with pytest.raises(IndexError, match="5 out of range for 5"):
        ds[5]
    with pytest.raises(TypeError, match=r"integer, got slice.*\.batch"):
        ds[:2]
    with pytest.raises(IndexError, match=r"batch index must hold integers in \[0, 5\)"):
        ds.batch(torch.tensor([0, 5]))
    with pytest.raises(IndexError, match=r"in \[0, 5\)"):
        ds.batch(torch.tensor([0.0]))


@pytest.mark.parametrize("argument", [{"image_size": 0}, {"image_size": 8.5}, {"channels": 2}])
def test_bad_read_arguments_are_refused_by_name(tmp_path, argument):
    write_dataset(tmp_path)
    name = next(iter(argument))
    with pytest.raises(ValueError, match=name):
        ReplicatorDataset(tmp_path, **argument)


# --- XYZA ----------------------------------------------------------------------------------------

angles = st.floats(-3.0, 3.0, width=32)
depths = st.floats(0.0, 100.0, width=32)


@settings(max_examples=60, deadline=None)
@given(st.data(), st.integers(1, 5), st.integers(1, 5))
def test_xyza_equals_the_course_formula_elementwise(data, h, w):
    azimuth = torch.from_numpy(data.draw(arrays(np.float32, h, elements=angles)))
    zenith = torch.from_numpy(data.draw(arrays(np.float32, w, elements=angles)))
    depth = torch.from_numpy(data.draw(arrays(np.float32, (2, h, w), elements=depths)))
    xyza = depth_to_xyza(depth, azimuth, zenith)
    for i in range(2):
        assert torch.equal(xyza[i], course_xyza(depth[i], azimuth, zenith))
    # The differentiable form (taken when depth needs a gradient) gives the same bits.
    assert torch.equal(depth_to_xyza(depth.clone().requires_grad_(), azimuth, zenith).detach(), xyza)


def test_xyza_is_differentiable_in_depth():
    azimuth, zenith = torch.tensor([-0.4, 0.1, 0.7], dtype=torch.float64), torch.tensor([-0.2, 0.3], dtype=torch.float64)
    depth = torch.full((3, 2), 5.0, dtype=torch.float64, requires_grad=True)
    torch.autograd.gradcheck(lambda d: depth_to_xyza(d, azimuth, zenith)[:3], (depth,))


def test_xyza_is_differentiable_in_the_beam_angles():
    azimuth = torch.tensor([-0.4, 0.1, 0.7], dtype=torch.float64, requires_grad=True)
    zenith = torch.tensor([-0.2, 0.3], dtype=torch.float64, requires_grad=True)
    depth = torch.full((3, 2), 5.0, dtype=torch.float64)
    torch.autograd.gradcheck(lambda az, ze: depth_to_xyza(depth, az, ze)[:3], (azimuth, zenith))


def float64(*values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


@settings(max_examples=60, deadline=None)
@given(st.floats(-math.pi, math.pi), st.floats(-math.pi / 2, math.pi / 2), st.floats(0.01, 49.9))
def test_a_hit_lies_at_its_depth_along_its_beam(azimuth, zenith, depth):
    xyza = depth_to_xyza(float64([depth]), float64(azimuth), float64(zenith))
    point = xyza[:3, 0, 0]
    beam = torch.tensor([
        math.sin(-azimuth) * math.cos(-zenith), math.cos(-azimuth) * math.cos(-zenith), math.sin(-zenith)
    ], dtype=torch.float64)
    assert xyza[3, 0, 0] == 1
    assert torch.linalg.vector_norm(point).item() == pytest.approx(depth, rel=1e-6)
    torch.testing.assert_close(point, depth * beam, rtol=1e-6, atol=1e-6)


def test_dataset_xyza_uses_the_course_formula_and_the_given_threshold(tmp_path):
    written = write_dataset(tmp_path, n=3, lidar=(5, 6))
    azimuth, zenith = torch.from_numpy(written["azimuth"]), torch.from_numpy(written["zenith"])
    ds = ReplicatorDataset(tmp_path, image_size=8)
    for i in range(3):
        assert torch.equal(ds[i][1], course_xyza(torch.from_numpy(written["depths"][i]), azimuth, zenith))
    near = ReplicatorDataset(tmp_path, image_size=8, hit_threshold=10.0)
    assert torch.equal(near.batch(torch.arange(3))[1][:, 3], (torch.from_numpy(written["depths"]) < 10.0).float())



def test_new_beam_angles_take_effect_and_misfits_are_refused_by_name(tmp_path):
    written = write_dataset(tmp_path, n=2, lidar=(5, 6))
    samples = ReplicatorDataset(tmp_path, image_size=8)
    azimuth, zenith = torch.linspace(-0.5, 0.5, 5), torch.linspace(-0.2, 0.3, 6)
    samples.azimuth, samples.zenith = azimuth, zenith
    depth = torch.from_numpy(written["depths"][1])
    assert torch.equal(samples[1][1], course_xyza(depth, azimuth, zenith))
    with pytest.raises(DatasetError, match=r"len\(azimuth\).*\(N, 4, 6\).*\(2, 5, 6\)"):
        samples.azimuth = torch.zeros(4)
    with pytest.raises(DatasetError, match=r"len\(zenith\).*\(N, 5, 7\)"):
        samples.zenith = torch.zeros(7)
    assert torch.equal(samples[1][1], course_xyza(depth, azimuth, zenith))  # a refused angle changes nothing

# --- splits and loaders --------------------------------------------------------------------------


def numbered_samples(n: int) -> Samples:
    """``n`` tiny samples whose first target is their index."""
    targets = torch.zeros(n, 9)
    targets[:, 0] = torch.arange(n)
    rgb = torch.zeros(n, 4, 2, 2, dtype=torch.uint8)
    return Samples(rgb, torch.ones(n, 2, 3), targets, torch.zeros(2), torch.zeros(3))


def test_course_splits_keep_the_last_320_samples_for_validation_in_order():
    samples = numbered_samples(400)
    train, valid = course_splits(samples)
    assert (len(train), len(valid)) == (80, 320)
    assert torch.equal(train.targets[:, 0], torch.arange(80.0))
    assert torch.equal(valid.targets[:, 0], torch.arange(80.0, 400.0))
    assert train.rgb.data_ptr() == samples.rgb.data_ptr()  # views, not copies


def test_course_splits_read_a_folder(tmp_path):
    written = write_dataset(tmp_path, n=352, png=4, lidar=(2, 2))
    train, valid = course_splits(tmp_path, image_size=4)
    assert (len(train), len(valid)) == (32, 320)
    assert torch.equal(valid.targets, torch.tensor(written["targets"][32:], dtype=torch.float32))


def test_course_splits_refuse_too_few_samples_naming_the_count():
    with pytest.raises(DatasetError, match="has 351"):
        course_splits(numbered_samples(351))


def test_course_splits_refuse_read_options_for_samples_already_read():
    with pytest.raises(TypeError, match="image_size"):
        course_splits(numbered_samples(400), image_size=8)


def test_course_loaders_shuffle_train_and_drop_last_batches():
    train, valid = course_splits(numbered_samples(400))
    train_batches, valid_batches = course_loaders(train, valid, generator=torch.Generator().manual_seed(0))
    assert isinstance(train_batches, BatchLoader) and (len(train_batches), len(valid_batches)) == (2, 10)
    seen = torch.cat([targets[:, 0] for _, _, targets in train_batches])
    assert len(seen) == 64 and len(seen.unique()) == 64 and not torch.equal(seen, torch.arange(64.0))
    again, _ = course_loaders(train, valid, generator=torch.Generator().manual_seed(0))
    assert torch.equal(seen, torch.cat([targets[:, 0] for _, _, targets in again]))
    assert torch.equal(torch.cat([t[:, 0] for _, _, t in valid_batches]), torch.arange(80.0, 400.0))


# --- the cache -----------------------------------------------------------------------------------


def test_warm_open_reads_the_cache_bit_for_bit_like_a_cold_read(tmp_path):
    write_dataset(tmp_path, n=6, png=12)
    cold = ReplicatorDataset(tmp_path, image_size=8)
    warm = ReplicatorDataset(tmp_path, image_size=8)
    uncached = ReplicatorDataset(tmp_path, image_size=8, cache=False)
    assert (cold.from_cache, warm.from_cache, uncached.from_cache) == (False, True, False)
    for name, tensor in tensors_of(cold).items():
        assert torch.equal(tensors_of(warm)[name], tensor), name
        assert torch.equal(tensors_of(uncached)[name], tensor), name
        assert tensors_of(warm)[name].dtype == tensor.dtype


def test_reader_writes_nothing_but_its_cache_into_the_data_folder(tmp_path):
    write_dataset(tmp_path)
    before = files_of(tmp_path)
    ReplicatorDataset(tmp_path, image_size=8)
    ReplicatorDataset(tmp_path, image_size=4)
    after = files_of(tmp_path)
    cached = {name for name in after if name.startswith(CACHE + "/")}
    assert {name: after[name] for name in after.keys() - cached} == before
    assert cached == {f"{CACHE}/replicator-8px-4ch.safetensors", f"{CACHE}/replicator-4px-4ch.safetensors"}


def test_cache_false_reads_and_writes_no_cache(tmp_path):
    write_dataset(tmp_path)
    ReplicatorDataset(tmp_path, image_size=8)
    os.utime(tmp_path / "rgb" / "0000.png", ns=(1, 1))  # were the cache consulted, it would be stale
    ds = ReplicatorDataset(tmp_path, image_size=8, cache=False)
    assert ds.cache_file is None and not ds.from_cache
    shutil.rmtree(tmp_path / CACHE)
    ReplicatorDataset(tmp_path, image_size=8, cache=False)
    assert not (tmp_path / CACHE).exists()


def test_cache_dir_keeps_the_data_folder_untouched_and_datasets_apart(tmp_path):
    first, second, caches = tmp_path / "a" / "data", tmp_path / "b" / "data", tmp_path / "caches"
    write_dataset(first, seed=1)
    write_dataset(second, seed=2)
    a = ReplicatorDataset(first, image_size=8, cache_dir=caches)
    b = ReplicatorDataset(second, image_size=8, cache_dir=caches)
    assert not (first / CACHE).exists() and len(list(caches.iterdir())) == 2
    assert ReplicatorDataset(first, image_size=8, cache_dir=caches).from_cache
    assert torch.equal(ReplicatorDataset(second, image_size=8, cache_dir=caches).targets, b.targets)
    assert not torch.equal(a.targets, b.targets)


def test_changed_image_invalidates_the_cache(tmp_path):
    write_dataset(tmp_path)
    ReplicatorDataset(tmp_path, image_size=8)
    new = np.full((8, 8, 4), 7, dtype=np.uint8)
    Image.fromarray(new, "RGBA").save(tmp_path / "rgb" / "0003.png")
    ds = ReplicatorDataset(tmp_path, image_size=8)
    assert not ds.from_cache and torch.all(ds.rgb[3] == 7)
    assert ReplicatorDataset(tmp_path, image_size=8).from_cache  # rebuilt for the new files


@pytest.mark.parametrize("name", ["lidar/0001.npy", "positions.csv", "azimuth.npy", "zenith.npy"])
def test_touched_file_invalidates_the_cache(tmp_path, name):
    write_dataset(tmp_path)
    ReplicatorDataset(tmp_path, image_size=8)
    stat = (tmp_path / name).stat()
    os.utime(tmp_path / name, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert not ReplicatorDataset(tmp_path, image_size=8).from_cache


def test_changed_targets_are_read_after_the_csv_changes(tmp_path):
    written = write_dataset(tmp_path)
    ReplicatorDataset(tmp_path, image_size=8)
    write_csv(tmp_path, written["targets"] + 1)
    ds = ReplicatorDataset(tmp_path, image_size=8)
    assert torch.equal(ds.targets, torch.tensor(written["targets"] + 1, dtype=torch.float32))


def test_stale_cache_is_not_used_when_a_file_went_bad(tmp_path):
    write_dataset(tmp_path)
    ReplicatorDataset(tmp_path, image_size=8)
    (tmp_path / "rgb" / "0002.png").write_bytes(b"not a png at all")
    with pytest.raises(DatasetError, match="0002.png"):
        ReplicatorDataset(tmp_path, image_size=8)


def cache_path(root: Path) -> Path:
    return root / CACHE / "replicator-8px-4ch.safetensors"


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_partial_or_unreadable_cache_is_ignored_and_rewritten(tmp_path, caplog, damage):
    write_dataset(tmp_path)
    cold = ReplicatorDataset(tmp_path, image_size=8)
    data = cache_path(tmp_path).read_bytes()
    broken = {"truncate": data[: len(data) // 2], "garbage": os.urandom(len(data)), "empty": b""}[damage]
    cache_path(tmp_path).write_bytes(broken)
    with caplog.at_level(logging.WARNING, logger="fusionzoo"):
        ds = ReplicatorDataset(tmp_path, image_size=8)
    assert not ds.from_cache and "ignoring unreadable cache" in caplog.text
    assert torch.equal(ds.rgb, cold.rgb)
    assert ReplicatorDataset(tmp_path, image_size=8).from_cache


def test_cache_with_missing_or_misshapen_tensors_is_ignored(tmp_path):
    write_dataset(tmp_path)
    cold = ReplicatorDataset(tmp_path, image_size=8)
    with safe_open(cache_path(tmp_path), framework="pt") as cached:
        key = cached.metadata()["key"]
    tensors = {name: tensor.clone() for name, tensor in tensors_of(cold).items()}
    del tensors["depth"]
    tensor_cache.save(cache_path(tmp_path), tensors, key)
    assert not ReplicatorDataset(tmp_path, image_size=8).from_cache
    tensors = {name: tensor.clone() for name, tensor in tensors_of(cold).items()}
    tensors["rgb"] = tensors["rgb"][:, :3].contiguous()
    tensor_cache.save(cache_path(tmp_path), tensors, key)
    ds = ReplicatorDataset(tmp_path, image_size=8)
    assert not ds.from_cache and torch.equal(ds.rgb, cold.rgb)


def test_cache_for_other_settings_is_not_used(tmp_path):
    write_dataset(tmp_path, mode="RGB")
    ReplicatorDataset(tmp_path, image_size=8, channels=3)
    four = cache_path(tmp_path)
    shutil.copy(tmp_path / CACHE / "replicator-8px-3ch.safetensors", four)  # as if written for channels=3
    ds = ReplicatorDataset(tmp_path, image_size=8, channels=4)
    assert not ds.from_cache and ds.rgb.shape[1] == 4


def test_crash_while_writing_the_cache_leaves_no_half_cache(tmp_path, monkeypatch):
    write_dataset(tmp_path)

    def crash(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a cache")
        raise KeyboardInterrupt

    monkeypatch.setattr(tensor_cache, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        ReplicatorDataset(tmp_path, image_size=8)
    assert list((tmp_path / CACHE).iterdir()) == []


def test_crash_while_rewriting_keeps_the_previous_cache_whole(tmp_path, monkeypatch):
    write_dataset(tmp_path)
    ReplicatorDataset(tmp_path, image_size=8)
    previous = cache_path(tmp_path).read_bytes()
    os.utime(tmp_path / "lidar" / "0000.npy", ns=(1, 1))
    monkeypatch.setattr(tensor_cache, "save_file", lambda *args, **kwargs: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        ReplicatorDataset(tmp_path, image_size=8)
    assert [p.name for p in (tmp_path / CACHE).iterdir()] == [cache_path(tmp_path).name]
    assert cache_path(tmp_path).read_bytes() == previous


def test_unwritable_cache_is_logged_and_the_samples_still_read(tmp_path, caplog):
    written = write_dataset(tmp_path / "data")
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    with caplog.at_level(logging.WARNING, logger="fusionzoo"):
        ds = ReplicatorDataset(tmp_path / "data", image_size=8, cache_dir=blocker / "cache")
    assert "could not write the cache" in caplog.text
    assert torch.equal(ds.depth, torch.from_numpy(written["depths"]))


def test_progress_bar_shows_only_when_asked(tmp_path, capsys):
    write_dataset(tmp_path)
    ReplicatorDataset(tmp_path, image_size=8, cache=False)  # stderr is not a terminal here: no bar
    assert "sample" not in capsys.readouterr().err
    ReplicatorDataset(tmp_path, image_size=8, cache=False, progress=True)
    assert "5/5" in capsys.readouterr().err


# --- bad input -----------------------------------------------------------------------------------


def save_png(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    Image.fromarray(array, mode).save(path)


def rewrite_csv_line(root: Path, line: int, text: str) -> None:
    lines = (root / "positions.csv").read_text().splitlines()
    lines[line - 1] = text
    (root / "positions.csv").write_text("\n".join(lines) + "\n")


def palette_png(path: Path) -> None:
    image = Image.new("P", (8, 8))
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.save(path)


def declared_png(path: Path, width: int, height: int) -> None:
    """A PNG header declaring ``width`` x ``height`` RGB pixels, with no image data after it."""
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr)))


def symlink_loop(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    path.symlink_to(path.name)


BAD_INPUTS = {
    "missing csv": (lambda r: (r / "positions.csv").unlink(), "positions.csv"),
    "missing azimuth": (lambda r: (r / "azimuth.npy").unlink(), "azimuth.npy"),
    "missing zenith": (lambda r: (r / "zenith.npy").unlink(), "zenith.npy"),
    "missing rgb folder": (lambda r: shutil.rmtree(r / "rgb"), "rgb/"),
    "missing lidar folder": (lambda r: shutil.rmtree(r / "lidar"), "lidar/"),
    "missing image": (lambda r: (r / "rgb" / "0002.png").unlink(), "0002.png"),
    "missing depth": (lambda r: (r / "lidar" / "0004.npy").unlink(), "0004.npy"),
    "extra image": (lambda r: shutil.copy(r / "rgb" / "0000.png", r / "rgb" / "0005.png"), "0005.png"),
    "extra depth": (lambda r: shutil.copy(r / "lidar" / "0000.npy", r / "lidar" / "00001.npy"), "00001.npy"),
    "stray file": (lambda r: (r / "lidar" / "notes.txt").write_text("x"), "notes.txt"),
    "fewer csv rows than samples": (
        lambda r: (r / "positions.csv").write_text("\n".join((r / "positions.csv").read_text().splitlines()[:-1])),
        "0004.png",
    ),
    "more csv rows than samples": (
        lambda r: (r / "positions.csv").write_text((r / "positions.csv").read_text() + ",".join(["1"] * 9) + "\n"),
        "rgb/0005.png",
    ),
    "csv row of 8": (lambda r: rewrite_csv_line(r, 3, "1," * 7 + "1"), "positions.csv line 3: expected 9 numbers, got 8"),
    "csv row of 10": (lambda r: rewrite_csv_line(r, 2, "1," * 9 + "1"), "positions.csv line 2: expected 9 numbers, got 10"),
    "csv blank row": (lambda r: rewrite_csv_line(r, 4, ""), "positions.csv line 4: expected 9 numbers, got 0"),
    "csv non-number": (lambda r: rewrite_csv_line(r, 2, "1,2,3,4,abc,6,7,8,9"), "line 2: 'abc' is not a number"),
    "csv nan": (lambda r: rewrite_csv_line(r, 5, "1,2,3,4,nan,6,7,8,9"), "positions.csv line 5"),
    "csv inf": (lambda r: rewrite_csv_line(r, 6, "1,2,3,4,5,6,7,8,-inf"), "positions.csv line 6"),
    "csv empty": (lambda r: (r / "positions.csv").write_text(""), "positions.csv is empty"),
    "csv not text": (lambda r: (r / "positions.csv").write_bytes(b"\xff\xfe\x00bad"), "positions.csv"),
    "nan depth": (lambda r: np.save(r / "lidar" / "0001.npy", np.full((3, 4), np.nan, np.float32)), "0001.npy"),
    "inf depth": (lambda r: np.save(r / "lidar" / "0001.npy", np.full((3, 4), np.inf)), "0001.npy"),
    "depth beyond float32": (lambda r: np.save(r / "lidar" / "0003.npy", np.full((3, 4), 1e300)), "0003.npy"),
    "depth of wrong shape": (lambda r: np.save(r / "lidar" / "0003.npy", np.ones((4, 3))), "0003.npy: depth of shape (4, 3)"),
    "depth of one dimension": (lambda r: np.save(r / "lidar" / "0003.npy", np.ones(12, np.float32)), "0003.npy"),
    "depth of text": (lambda r: np.save(r / "lidar" / "0003.npy", np.full((3, 4), "a")), "0003.npy"),
    "pickled depth": (lambda r: np.save(r / "lidar" / "0003.npy", np.array([{}], dtype=object)), "0003.npy"),
    "truncated depth": (
        lambda r: (r / "lidar" / "0002.npy").write_bytes((r / "lidar" / "0002.npy").read_bytes()[:-8]),
        "0002.npy",
    ),
    "azimuth of two dimensions": (lambda r: np.save(r / "azimuth.npy", np.zeros((3, 1), np.float32)), "azimuth.npy"),
    "zenith scalar": (lambda r: np.save(r / "zenith.npy", np.float32(0.5)), "zenith.npy"),
    "empty azimuth": (lambda r: np.save(r / "azimuth.npy", np.zeros(0, np.float32)), "azimuth.npy"),
    "nan zenith": (lambda r: np.save(r / "zenith.npy", np.array([0, np.nan, 0, 0], np.float32)), "zenith.npy"),
    "corrupt png": (lambda r: (r / "rgb" / "0001.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(64)), "0001.png"),
    "empty png": (lambda r: (r / "rgb" / "0001.png").write_bytes(b""), "0001.png"),
    "png cut in half": (
        lambda r: (r / "rgb" / "0004.png").write_bytes((r / "rgb" / "0004.png").read_bytes()[:60]),
        "0004.png",
    ),
    "png without its end": (
        lambda r: (r / "rgb" / "0004.png").write_bytes((r / "rgb" / "0004.png").read_bytes()[:-12]),
        "0004.png: truncated PNG",
    ),
    "grey png": (lambda r: save_png(r / "rgb" / "0002.png", np.zeros((8, 8), np.uint8)), "0002.png: image has 1 chan"),
    "grey + alpha png": (lambda r: save_png(r / "rgb" / "0002.png", np.zeros((8, 8, 2), np.uint8), "LA"), "0002.png"),
    "palette png": (lambda r: palette_png(r / "rgb" / "0003.png"), "0003.png: palette"),
    "non-square png": (lambda r: save_png(r / "rgb" / "0001.png", np.zeros((8, 6, 4), np.uint8)), "0001.png: image is 6"),
    "png declaring 20000 x 20000": (
        lambda r: declared_png(r / "rgb" / "0003.png", 20000, 20000), "0003.png: PNG header declares 20000 x 20000 pixels"
    ),
    "png declaring 1 x 20000": (lambda r: declared_png(r / "rgb" / "0003.png", 1, 20000), "0003.png: image is 1 x 20000"),
    "not a png": (lambda r: (r / "rgb" / "0001.png").write_bytes(b"GIF89a" + bytes(40)), "0001.png: not a PNG"),
    "csv symlink loop": (lambda r: symlink_loop(r / "positions.csv"), "positions.csv is a symbolic link loop"),
    "broken csv symlink": (
        lambda r: ((r / "positions.csv").unlink(), (r / "positions.csv").symlink_to("gone.csv")),
        "positions.csv is a broken symbolic link (its target -> gone.csv does not exist)",
    ),
    "csv is a folder": (lambda r: ((r / "positions.csv").unlink(), (r / "positions.csv").mkdir()), "positions.csv is a folder"),
    "rgb symlink loop": (lambda r: symlink_loop(r / "rgb"), "rgb/ is a symbolic link loop"),
    "image symlink loop": (lambda r: symlink_loop(r / "rgb" / "0002.png"), "0002.png is a symbolic link loop"),
    "depth symlink to nowhere": (
        lambda r: ((r / "lidar" / "0001.npy").unlink(), (r / "lidar" / "0001.npy").symlink_to("/no/such.npy")),
        "0001.npy is a broken symbolic link",
    ),
    "file name not valid utf-8": (
        lambda r: open(os.path.join(os.fsencode(r / "rgb"), b"\xff\xfe.png"), "wb").close(), "rgb/\\xff\\xfe.png"
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_raises_dataset_error_naming_the_file(tmp_path, case):
    root = tmp_path / "data"
    write_dataset(root, n=5, png=8, lidar=(3, 4))
    damage, expected = BAD_INPUTS[case]
    damage(root)
    with pytest.raises(DatasetError) as raised:
        ReplicatorDataset(root, image_size=8)
    assert expected in str(raised.value)
    assert not (root / CACHE).exists() or not any((root / CACHE).iterdir())  # only validated data is cached


def test_a_folder_whose_name_is_not_utf8_is_read_and_cached_in_cache_dir(tmp_path, caplog):
    root = Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9"))  # Latin-1, as an old archive may name it
    written = write_dataset(root)
    with caplog.at_level(logging.WARNING, logger="fusionzoo"):
        ds = ReplicatorDataset(root, image_size=8)
    assert "not caching" in caplog.text and "caf\\xe9" in caplog.text  # safetensors opens UTF-8 paths only
    assert torch.equal(ds.depth, torch.from_numpy(written["depths"]))
    assert not ReplicatorDataset(root, image_size=8, cache_dir=tmp_path / "cache").from_cache
    assert ReplicatorDataset(root, image_size=8, cache_dir=tmp_path / "cache").from_cache


def test_rgba_png_refused_when_three_channels_are_asked(tmp_path):
    write_dataset(tmp_path, mode="RGBA")
    with pytest.raises(DatasetError, match=r"0000\.png: image has 4 channel\(s\) \(RGBA\), but channels=3"):
        ReplicatorDataset(tmp_path, image_size=8, channels=3)


def test_missing_dataset_folder_is_named(tmp_path):
    with pytest.raises(DatasetError, match="nowhere"):
        ReplicatorDataset(tmp_path / "nowhere")
    (tmp_path / "file").write_text("")
    with pytest.raises(DatasetError, match="is not a folder"):
        ReplicatorDataset(tmp_path / "file")


def test_empty_dataset_is_refused(tmp_path):
    write_dataset(tmp_path, n=0)
    with pytest.raises(DatasetError, match="positions.csv has a header but no sample rows"):
        ReplicatorDataset(tmp_path)


def test_first_bad_file_in_sample_order_is_reported(tmp_path):
    write_dataset(tmp_path, n=12)
    for name in ("0009.png", "0004.png", "0010.png"):
        (tmp_path / "rgb" / name).write_bytes(b"broken")
    with pytest.raises(DatasetError, match="0004.png"):
        ReplicatorDataset(tmp_path, image_size=8)


# --- benchmark -----------------------------------------------------------------------------------


def test_load_benchmark_runs_at_tiny_size():
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "dataset_load.py"), "--samples", "40", "--image-size", "16",
         "--lidar-size", "8", "--repeat", "1", "--json"],
        capture_output=True, text=True, timeout=300, check=True,
    )
    figures = json.loads(done.stdout)
    assert figures["samples"] == 40
    assert not figures["cold"]["from_cache"] and figures["warm"]["from_cache"]
    assert figures["speedup_cold"] > 0 and figures["speedup_warm"] > 0
    assert figures["agreement"]["rgb_max_diff_levels"] <= 1 and figures["agreement"]["xyza_max_abs_diff"] == 0
    assert figures["batch_assembly"]["identical"] and figures["speedup_batch_assembly"] > 0
