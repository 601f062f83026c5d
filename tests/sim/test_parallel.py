"""Parallel generation: the same files byte for byte for any number of workers, and as the serial
generator wrote them before it had workers; an interrupted run leaves no dataset behind."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import PIL
import pytest
from PIL import Image

from fusionzoo.cli import main
from fusionzoo.sim import generate_scenes
from fusionzoo.sim import scenes as scenes_module

# Digests of datasets written by the serial generator before it had workers (fusionzoo 0.1.0,
# Pillow 13.0.0, numpy 2.4.6): every file but scene.json, as "name\0bytes" in name order; and, not
# depending on the PNG encoder's zlib, the non-PNG files' bytes and the PNGs' decoded pixels.
DEFAULT = dict(samples=70, image_size=16, lidar_grid=(8, 8))
MIXED = dict(samples=40, seed=3, image_size=16, lidar_grid=(8, 6), shapes=("cube", "sphere", "torus"),
             background="floor", rotation="full")
RECORDED = {
    "default": ("7224f694d8aba155f02775063fc25582c829b4e5c6b1352365526a43b4202a2e",
                "510d3582ee96754abf7a27adad1800fdbcd670278e807df55c9abee297497454",
                "8dbd0b2a3e8503c7008cfbf21e70eda73f71c68713c81f2575b33bfcca0beb5d"),
    "mixed": ("b8aa133ce8f57d085b3375e266776c3c9f86726da32a6a66060c61ff73c11c09",
              "4272ee509f0fddbe6d2abe5a26b63cf38c2d6191a8a41ee33fc9faaf20fb0360",
              "401e1ad885aa4a5742c021f83f576788dd8f516d526a2b675fa8379c615813cd"),
}
RECORDED_WITH_PILLOW = "13.0.0"


def files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def digests(root: Path) -> tuple[str, str, str]:
    whole, data, pixels = hashlib.sha256(), hashlib.sha256(), hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name == "scene.json":
            continue
        name = str(path.relative_to(root)).encode()
        whole.update(name + b"\0" + path.read_bytes())
        if path.suffix == ".png":
            pixels.update(name + b"\0" + np.asarray(Image.open(path)).tobytes())
        else:
            data.update(name + b"\0" + path.read_bytes())
    return whole.hexdigest(), data.hexdigest(), pixels.hexdigest()


@pytest.fixture
def small_tasks(monkeypatch):
    """One batch of 32 scenes per task, so that 70 scenes make three tasks shared by the workers."""
    monkeypatch.setattr(scenes_module, "_TASK_BATCHES", 1)


@pytest.mark.parametrize("name,knobs", [("default", DEFAULT), ("mixed", MIXED)])
def test_one_and_two_workers_write_the_bytes_the_serial_generator_wrote(tmp_path, small_tasks, name, knobs):
    one = generate_scenes(tmp_path / "one", progress=False, workers=1, **knobs)
    two = generate_scenes(tmp_path / "two", progress=False, workers=2, **knobs)
    assert files(one) == files(two)
    whole, data, pixels = digests(two)
    assert (data, pixels) == RECORDED[name][1:]
    if PIL.__version__ == RECORDED_WITH_PILLOW:  # PNG bytes depend on the zlib Pillow was built with
        assert whole == RECORDED[name][0]


def test_more_workers_than_tasks_and_a_last_short_batch_change_nothing(tmp_path, small_tasks):
    reference = files(generate_scenes(tmp_path / "one", samples=33, image_size=8, lidar_grid=(4, 4), workers=1,
                                      progress=False))
    assert files(generate_scenes(tmp_path / "four", samples=33, image_size=8, lidar_grid=(4, 4), workers=4,
                                 progress=False)) == reference


def test_a_worker_that_fails_leaves_no_dataset_and_no_partial_folder(tmp_path, small_tasks, monkeypatch):
    render = scenes_module.render_scenes

    def failing(config, scenes):
        if _first_index(config, scenes) >= 32:  # the second and third tasks
            raise RuntimeError("renderer crashed")
        return render(config, scenes)

    monkeypatch.setattr(scenes_module, "render_scenes", failing)  # forked workers inherit it
    with pytest.raises(RuntimeError, match="renderer crashed"):
        generate_scenes(tmp_path / "cubes", progress=False, workers=2, **DEFAULT)
    assert list(tmp_path.iterdir()) == []


def _first_index(config, scenes) -> int:
    """Which sample a drawn batch starts at, found by matching its first scene's draw."""
    for start in range(0, config.samples, 32):
        if np.array_equal(scenes_module.draw_scenes(config, [start]).positions[0], scenes.positions[0]):
            return start
    return -1


def test_the_folder_a_killed_run_left_is_removed_by_the_next_run(tmp_path):
    dead = tmp_path / f".cubes.partial-{2**22 + 12345}-abcd1234"  # beyond Linux's default pid_max
    (dead / "rgb").mkdir(parents=True)
    (dead / "rgb" / "0000.png").write_bytes(b"half a dataset")
    running = tmp_path / f".cubes.partial-{os.getpid()}-efgh5678"  # a run still going: kept
    running.mkdir()
    other = tmp_path / ".elsewhere.partial-1-x"  # another dataset's: not ours to judge
    other.mkdir()
    generate_scenes(tmp_path / "cubes", samples=2, image_size=8, lidar_grid=(4, 4), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["cubes", running.name, other.name])


@pytest.mark.parametrize("workers", [0, -1, 1.5, True, "2"])
def test_bad_worker_counts_are_refused_by_name(tmp_path, workers):
    with pytest.raises(ValueError, match="workers must be a positive int"):
        generate_scenes(tmp_path / "never", samples=2, workers=workers, progress=False)


def test_the_cli_renders_with_the_workers_it_is_given(tmp_path, small_tasks, capsys):
    assert main(["generate", str(tmp_path / "cli"), "--samples", "70", "--image-size", "16", "--lidar-grid", "8", "8",
                 "--workers", "2", "--no-progress"]) == 0
    assert "dataset ready" in capsys.readouterr().out
    assert digests(tmp_path / "cli")[1:] == RECORDED["default"][1:]
