"""Run-time cost of one prediction: batch-1 ``fusionzoo.predict`` latency per model, per device.

For each model, one sample of the course's shapes (RGBA image and XYZA grid, ``--image-size`` square)
is held on the host, as a robot's sensor data would be, and ``predict`` is timed ``--runs`` times after
``--warmup`` untimed calls: the figure is the whole call (moving the inputs to the model's device,
the forward pass under ``inference_mode``, and bringing the result back to the host). Reports the
median and the 90th percentile in milliseconds, on the CPU and, when present, on CUDA.

``--onnx`` also exports each model (``fusionzoo.export``) and times onnxruntime on the CPU side by side
with PyTorch eager: the two alternate in blocks of ``BLOCK`` calls, so both see the same machine load
(blocks, not single calls: either runtime's worker threads keep spinning a moment after a call and
would slow the other's next call), and the ratio of their medians is reported. The onnxruntime call is the whole call too (tensors to
arrays, the session's run, the result back as a tensor), with as many threads as torch uses.

Run ``python benchmarks/latency.py`` (about a minute on 2 cores) or ``--json latency.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import fusionzoo

COURSE_MODELS = ("early", "late", "concat", "matmul")
BLOCK = 10  # calls of one runtime before the other takes over (--onnx)


def default_devices() -> list[str]:
    return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile of ``values`` (linear interpolation between the nearest ranks)."""
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


def latency(name: str, device: torch.device, image_size: int, runs: int, warmup: int) -> dict:
    """Seconds of ``runs`` batch-1 ``predict`` calls of model ``name`` on ``device``, host inputs."""
    torch.manual_seed(0)
    model = fusionzoo.create(name, image_size=image_size).to(device).eval()  # deployed, as a robot would run it
    rgb = torch.rand(4, image_size, image_size)
    xyza = torch.randn(4, image_size, image_size)
    for _ in range(warmup):
        fusionzoo.predict(model, rgb, xyza)
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        fusionzoo.predict(model, rgb, xyza)  # returns a host tensor, so the device has finished
        seconds.append(time.perf_counter() - started)
    return {**summary(seconds), "parameters": sum(p.numel() for p in model.parameters())}


def summary(seconds: list[float]) -> dict:
    return {
        "median_ms": 1e3 * statistics.median(seconds),
        "p90_ms": 1e3 * percentile(seconds, 0.9),
        "min_ms": 1e3 * min(seconds),
    }


def onnx_latency(name: str, image_size: int, runs: int, warmup: int, folder: Path) -> dict:
    """Batch-1 seconds of PyTorch eager ``predict`` and of onnxruntime on the exported model, on the
    CPU, alternating in blocks of ``BLOCK`` calls so that both see the same load."""
    torch.manual_seed(0)
    model = fusionzoo.create(name, image_size=image_size).eval()
    onnx = fusionzoo.OnnxModel(fusionzoo.export(model, folder / f"{name}.onnx"), threads=torch.get_num_threads())
    rgb = torch.rand(4, image_size, image_size)
    xyza = torch.randn(4, image_size, image_size)
    calls = {"eager": lambda: fusionzoo.predict(model, rgb, xyza), "onnxruntime": lambda: onnx(rgb[None], xyza[None])}
    for _ in range(warmup):
        for call in calls.values():
            call()
    seconds: dict[str, list[float]] = {kind: [] for kind in calls}
    for block in range(0, runs, BLOCK):
        for kind, call in calls.items():
            for _ in range(min(BLOCK, runs - block)):
                started = time.perf_counter()
                call()
                seconds[kind].append(time.perf_counter() - started)
    result = {kind: summary(values) for kind, values in seconds.items()}
    return {**result, "eager_over_onnxruntime": result["eager"]["median_ms"] / result["onnxruntime"]["median_ms"]}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        return next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        return device.type


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(COURSE_MODELS), help="registered model names (default: the course's four)")
    parser.add_argument("--devices", nargs="+", default=default_devices(), help="default: cpu, and cuda when present")
    parser.add_argument("--image-size", type=int, default=64, help="image and LiDAR grid side (default 64, the course's)")
    parser.add_argument("--runs", type=int, default=200, help="timed calls per model (default 200)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls first (default 20)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--onnx", action="store_true",
                        help="also time onnxruntime against PyTorch eager on the CPU, side by side (needs fusionzoo[export])")
    args = parser.parse_args(argv)
    if args.runs < 2:
        parser.error("--runs must be at least 2 (for the percentiles)")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    devices = [fusionzoo.resolve_device(d) for d in args.devices]
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None
    results = {str(d): {name: latency(name, d, args.image_size, args.runs, args.warmup) for name in args.models} for d in devices}
    result = {
        "torch": torch.__version__, "threads": torch.get_num_threads(), "image_size": args.image_size,
        "runs": args.runs, "warmup": args.warmup, "device_names": {str(d): device_name(d) for d in devices},
        "load_average": {"before": load_before, "after": os.getloadavg() if hasattr(os, "getloadavg") else None},
        "latency": results,
    }
    if args.onnx:
        with tempfile.TemporaryDirectory() as folder:
            result["onnx"] = {name: onnx_latency(name, args.image_size, args.runs, args.warmup, Path(folder))
                              for name in args.models}
        result["load_average"]["after"] = os.getloadavg() if hasattr(os, "getloadavg") else None
    lines = [f"batch-1 fusionzoo.predict, {args.image_size}x{args.image_size} inputs on the host, {args.runs} runs after "
             f"{args.warmup} warm-up; torch {torch.__version__}, {torch.get_num_threads()} threads; load average "
             f"{_rounded(result['load_average']['before'])} -> {_rounded(result['load_average']['after'])}"]
    for device, by_model in results.items():
        lines += ["", f"{result['device_names'][device]} ({device})", "  model      parameters  median ms  p90 ms"]
        lines += [f"  {name:<10} {r['parameters']:>10,} {r['median_ms']:10.2f} {r['p90_ms']:7.2f}" for name, r in by_model.items()]
    if args.onnx:
        lines += ["", f"{device_name(torch.device('cpu'))} (cpu): PyTorch eager and onnxruntime, alternating blocks, medians",
                  "  model      eager ms  onnxruntime ms  eager/onnxruntime"]
        lines += [f"  {name:<10} {r['eager']['median_ms']:8.2f} {r['onnxruntime']['median_ms']:15.2f} "
                  f"{r['eager_over_onnxruntime']:18.2f}" for name, r in result["onnx"].items()]
    print("\n".join(lines))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _rounded(values: tuple[float, ...] | None) -> list[float] | None:
    return [round(v, 2) for v in values] if values is not None else None


if __name__ == "__main__":
    sys.exit(main())
