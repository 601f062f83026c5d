"""Every example runs end to end on tiny settings."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TINY = ["--samples", "360", "--epochs", "1", "--image-size", "16"]
CASES = {
    "reproduce_notebook.py": (TINY, ["best valid MSE", "matmul", "lidar", "curves:"]),
    "finetune_frozen_encoders.py": (TINY, ["frozen encoders unchanged: True"]),
    "finetune_own_data.py": ([*TINY, "--pretrain-samples", "360", "--pretrain-epochs", "1"],
                             ["starting model: a short matmul run", "from arrays rgb (360, 16, 16, 4) uint8", "| 1 |",
                              "from the cubes weights", "best valid MSE"]),
    "custom_fusion.py": (TINY, ["maxout", "best valid MSE"]),
    "inspect_sample.py": ([], ["red   cube at", "LiDAR returns", "saved"]),
}


def test_every_example_is_tested():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_example_runs(name, tmp_path):
    args, expected = CASES[name]
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args, "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for text in expected:
        assert text in result.stdout, result.stdout
    assert (tmp_path / "out").is_dir()


def test_fine_tuning_from_the_catalogue_says_how_to_build_weights_not_built_yet(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "finetune_own_data.py"), *TINY, "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
        env={**os.environ, "FUSIONZOO_HOME": str(tmp_path / "empty-cache")},
    )
    assert result.returncode != 0
    assert "starting model: the catalogue's matmul.cubes" in result.stdout
    assert "fusionzoo pretrain matmul.cubes" in result.stderr
    assert not (tmp_path / "out" / "new-scene").exists()  # refused before any work
