"""The throughput and latency benchmarks run on tiny settings and write the figures they promise.

No timing is asserted: the figures depend on the machine. Only that the scripts run, report every
measurement as a positive rate, and refuse what they cannot measure.
"""

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
COURSE_MODELS = ["early", "late", "concat", "matmul"]
# On the CPU whatever the machine has, a few steps of 16 x 16 samples, one round.
TINY = ["--device", "cpu", "--steps", "2", "--warmup", "1", "--repeat", "1", "--image-size", "16"]


def run(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCHMARKS / script), *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def test_throughput_measures_every_course_model_and_writes_its_json(tmp_path):
    out = tmp_path / "throughput.json"
    result = run("throughput.py", *TINY, "--samples", "64", "--variants", "channels_last", "bf16", "--json", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(b)/(a)" in result.stdout and "(b)/(c)" in result.stdout
    figures = json.loads(out.read_text())
    assert figures["device"] == "cpu"
    assert figures["samples"] == 64 and figures["image_size"] == 16 and figures["threads"] >= 1
    assert list(figures["models"]) == COURSE_MODELS
    rates = {"limit", "fit", "course", "course_valid", "evaluate_256", "evaluate_32", "fit_channels_last", "fit_bf16"}
    for name, model in figures["models"].items():
        assert set(model["samples_per_s"]) == rates, name
        assert all(v > 0 and math.isfinite(v) for v in model["samples_per_s"].values())
        assert model["fit_over_limit"] == pytest.approx(model["samples_per_s"]["fit"] / model["samples_per_s"]["limit"])
        assert model["fit_over_course"] == pytest.approx(model["samples_per_s"]["fit"] / model["samples_per_s"]["course"])
        assert set(model["evaluate_over_course_valid"]) == {"256", "32"}
        assert set(model["variants_over_fit"]) == {"channels_last", "bf16"}
        assert all(len(runs) == 1 for runs in model["runs"].values())


def test_throughput_reads_a_dataset_folder(tmp_path):
    from fusionzoo.sim import generate_scenes

    data = generate_scenes(tmp_path / "data", samples=40, image_size=16, lidar_grid=(16, 16), progress=False)
    out = tmp_path / "throughput.json"
    result = run("throughput.py", *TINY, "--samples", "32", "--models", "matmul", "--data", str(data),
                 "--valid-batch-sizes", "32", "--json", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["data"] == str(data) and figures["samples"] == 32
    assert set(figures["models"]["matmul"]["samples_per_s"]) == {"limit", "fit", "course", "course_valid", "evaluate_32"}


def test_throughput_refuses_a_dataset_whose_grid_the_models_cannot_take(tmp_path):
    from fusionzoo.sim import generate_scenes

    data = generate_scenes(tmp_path / "data", samples=40, image_size=16, lidar_grid=(16, 8), progress=False)
    result = run("throughput.py", *TINY, "--samples", "32", "--models", "matmul", "--data", str(data), cwd=tmp_path)
    assert result.returncode != 0 and "LiDAR grids of (16, 8)" in result.stderr


def test_latency_reports_median_and_p90_per_model_and_device(tmp_path):
    out = tmp_path / "latency.json"
    result = run("latency.py", "--runs", "5", "--warmup", "1", "--image-size", "16", "--json", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert "cpu" in figures["latency"] and figures["image_size"] == 16 and figures["runs"] == 5
    for device, by_model in figures["latency"].items():
        assert list(by_model) == COURSE_MODELS, device
        for name, r in by_model.items():
            assert 0 < r["min_ms"] <= r["median_ms"] <= r["p90_ms"], (device, name)
            assert r["parameters"] > 0
    assert "median ms" in result.stdout and "p90 ms" in result.stdout


def test_latency_with_onnx_times_onnxruntime_beside_eager_for_every_course_model(tmp_path):
    out = tmp_path / "latency.json"
    result = run("latency.py", "--runs", "3", "--warmup", "1", "--image-size", "16", "--devices", "cpu", "--onnx",
                 "--json", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert list(figures["onnx"]) == COURSE_MODELS
    for name, r in figures["onnx"].items():
        for kind in ("eager", "onnxruntime"):
            assert 0 < r[kind]["min_ms"] <= r[kind]["median_ms"] <= r[kind]["p90_ms"], (name, kind)
        assert r["eager_over_onnxruntime"] == pytest.approx(r["eager"]["median_ms"] / r["onnxruntime"]["median_ms"])
    assert "eager/onnxruntime" in result.stdout
    assert list(tmp_path.iterdir()) == [out]  # the exported files were temporary


def test_latency_needs_two_runs_for_its_percentiles(tmp_path):
    result = run("latency.py", "--runs", "1", "--models", "matmul", "--image-size", "16", cwd=tmp_path)
    assert result.returncode == 2 and "--runs" in result.stderr


def test_scene_generation_benchmark_runs_on_tiny_settings(tmp_path):
    result = run("generate_scenes.py", "--samples", "40", "--image-size", "16", "--lidar-size", "16", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "10,000" in result.stdout or "10000" in result.stdout


def test_scene_calibration_runs_on_tiny_settings_and_judges_every_claim(tmp_path):
    out = tmp_path / "calibration.json"
    result = run("calibrate_scene.py", "--samples", "360", "--epochs", "1", "--set", "image_size=16",
                 "--set", "lidar_grid=[16,16]", "--set", "supersample=1", "--json", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert set(figures["results"]) == {"rgb", "lidar", "early", "matmul"}
    assert len(figures["checks"]) == 3 and all(isinstance(v, bool) for v in figures["checks"].values())
    assert figures["floors"]["colour_blind"] < figures["floors"]["chance"]


def test_the_ablation_runs_its_variants_on_tiny_settings_and_writes_its_table(tmp_path):
    result = run("ablation.py", "--quick", "--bases", "matmul", "--variants", "base", "lr", "all", "--scenes", "course",
                 "--combine", "lr", "mirror", "--out", str(tmp_path / "out"), "--data-dir", str(tmp_path / "data"),
                 "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    table = (tmp_path / "out" / "ablation.md").read_text()
    assert [line.split(" | ")[:3] for line in table.splitlines() if line.startswith("| course")] == [
        ["| course", "matmul", "base"], ["| course", "matmul", "lr"], ["| course", "matmul", "lr+mirror"]]
    # Each variant's command: the protocol's rate, unless the 'lr' ingredient raises it.
    commands = [line for line in table.splitlines() if line.startswith("fusionzoo compare")]
    assert len(commands) == 3 and "--lr 0.0001" in commands[0] and "--mirror" not in commands[0]
    assert "--lr 0.0003" in commands[1] and "--lr 0.0003 --mirror 0.5" in commands[2]
    assert all(command.count("--lr") == 1 for command in commands)
    rows = (tmp_path / "out" / "ablation.csv").read_text().splitlines()
    assert len(rows) == 1 + 3  # header, base, lr and lr+mirror
    assert (tmp_path / "out" / "course" / "matmul" / "lr+mirror" / "matmul" / "seed0" / "best.safetensors").is_file()
    # --report reads the same runs back, training nothing; a seed never run is left out.
    (tmp_path / "out" / "ablation.csv").unlink()
    report = run("ablation.py", "--quick", "--report", "--bases", "matmul", "--variants", "base", "lr", "all", "--scenes", "course",
                 "--combine", "lr", "mirror", "--seeds", "0", "1", "--out", str(tmp_path / "out"), "--data-dir", str(tmp_path / "nowhere"), cwd=tmp_path)
    assert report.returncode == 0, report.stderr[-3000:]
    assert (tmp_path / "out" / "ablation.csv").read_text().splitlines() == rows
    assert not (tmp_path / "nowhere").exists()


def test_the_ablation_runs_side_by_side_as_one_process_would(tmp_path):
    common = ["--quick", "--bases", "matmul", "--variants", "base", "lr", "--scenes", "course", "--data-dir", str(tmp_path / "data"),
              "--no-progress"]
    for out, jobs in (("one", "1"), ("two", "2")):
        result = run("ablation.py", *common, "--out", str(tmp_path / out), "--jobs", jobs, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    one, two = (list(csv.DictReader((tmp_path / out / "ablation.csv").open())) for out in ("one", "two"))
    assert [(r["variant"], r["seed"]) for r in two] == [(r["variant"], r["seed"]) for r in one] == [("base", "0"), ("lr", "0")]
    for a, b in zip(two, one):  # one thread per child against the parent's two: summation order may differ
        assert float(a["best_valid_mse"]) == pytest.approx(float(b["best_valid_mse"]), rel=1e-4)
    assert sorted(p.name for p in (tmp_path / "two" / "logs").iterdir()) == ["course-matmul-base-seed0.log", "course-matmul-lr-seed0.log"]
    refused = run("ablation.py", "--quick", "--jobs", "0", "--out", str(tmp_path / "never"), cwd=tmp_path)
    assert refused.returncode == 2 and "--jobs must be at least 1, got 0" in refused.stderr
