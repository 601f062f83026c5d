"""benchmarks/scale.py runs at a tiny size and writes the figures it promises (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "scale.py"


def test_scale_benchmark_generates_compares_mapped_and_loaded_training_and_read_orders(tmp_path):
    out = tmp_path / "scale.json"
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), "--part", "generate", "--part", "throughput", "--part", "order",
         "--samples", "360", "--rows", "32", "--batches", "4", "--repeat", "1", "--threads", "1", "--dir", str(tmp_path), "--json", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(out.read_text())
    generate, throughput, order = figures["generate"], figures["throughput"], figures["order"]
    assert generate["identical_files"] and generate["speedup_2_over_1"] > 0
    assert set(generate["cpu_seconds"]) == {"1", "2"} and len(generate["speedup_per_round"]) == 1
    assert 0 < generate["cores_busy_2_workers"][0] <= 2.1
    assert throughput["identical_batches"] and throughput["map_over_load"] > 0
    assert set(throughput["best_samples_per_s"]) == {"load", "map"}
    # reading each batch's rows in file order gives the same batches as reading them as drawn
    assert order["identical_batches"] and order["batches"] == 4 and set(order["median_s"]) == {"shuffled", "sorted"}
    assert not list(tmp_path.glob("scale-generate-*"))  # the generated folders are gone


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_the_peak_sampler_sees_anonymous_memory_from_the_cheap_counters_as_from_smaps():
    spec = importlib.util.spec_from_file_location("scale_benchmark", BENCHMARK)
    scale = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(scale)
    before = scale.status_memory()["RssAnon"]
    with scale.PeakSampler(interval=0.01, rollup_every=3600) as peak:  # smaps_rollup only at both ends
        block = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
        time.sleep(0.2)
        del block
    assert peak.peak["RssAnon"] - before >= 60 * 2**20  # the counters saw the block come and go
    assert peak.anonymous >= peak.peak["RssAnon"] and peak.resident >= peak.peak["VmRSS"]
    counters, walked = scale.status_memory()["RssAnon"], scale.rollup()["Anonymous"]
    assert abs(counters - walked) < 16 * 2**20  # the two sources agree on the same process
