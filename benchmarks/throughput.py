"""Training throughput of the course's models: the hardware's limit, ``fusionzoo.fit``, the course's loop.

For each model, on the same samples and from the same initial weights, samples per second of:

- (a) the limit: forward, backward and Adam step on batches already built on the device, in a tight
  loop (the options below applied as ``fit`` applies them);
- (b) ``fusionzoo.fit``'s training pass: ``History.epochs[1].train_seconds`` of a two-epoch run
  (the first epoch is the warm-up), over ``steps * batch_size`` samples;
- (c) the course's loop, as the course's ``utils`` ran it: a per-sample ``Dataset`` that scales each
  uint8 image to float and converts each depth grid to XYZA on its own, a ``DataLoader`` with the
  course's settings (batch 32, shuffled, ``drop_last``), ``.to(device)`` per batch and a per-step
  ``loss.item()``; timed on its second epoch too;

and of the validation pass: ``fusionzoo.evaluate`` (``inference_mode``, one host sync) at each of
``--valid-batch-sizes`` (default 256, ``fit``'s ``valid_batch_size``, and 32) against the course-style pass (the same per-sample loader unshuffled, batch 32, ``.item()`` per batch;
run under ``torch.no_grad``, so if the course's pass ran with autograd on, the real gap is larger).
``--variants`` times ``fit`` again with ``channels_last``, ``compile``, ``bf16`` (or ``fp16`` on CUDA)
and reports each against the default ``fit``.

The measurements are interleaved over ``--repeat`` rounds and each one's fastest counts, since the
machine may be shared. Samples are random tensors of the real shapes (``--data FOLDER`` reads a
dataset instead). Run ``python benchmarks/throughput.py`` (CPU: a few minutes), or e.g.
``--models early --variants`` to compare the options.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

import fusionzoo
from fusionzoo.data import ReplicatorDataset, Samples, depth_to_xyza
from fusionzoo.devices import autocast_dtype, resolve_device

COURSE_MODELS = ("early", "late", "concat", "matmul")
COURSE_BATCH = 32
VARIANTS = ("channels_last", "compile", "bf16", "fp16")
Options = dict  # {"channels_last": bool, "compile": bool, "precision": str}


# --- data ----------------------------------------------------------------------------------------


def synthetic_samples(count: int, image_size: int, seed: int = 0) -> Samples:
    """``count`` random samples of the course's shapes: RGBA uint8 images, depth grids, 9 targets."""
    generator = torch.Generator().manual_seed(seed)
    rgb = torch.randint(0, 256, (count, 4, image_size, image_size), dtype=torch.uint8, generator=generator)
    # Depths of 1-60 m: some beyond the 50 m hit threshold, as misses are in the course's data.
    depth = 1 + 59 * torch.rand(count, image_size, image_size, generator=generator)
    targets = 10 * torch.rand(count, 9, generator=generator) - 5
    azimuth = torch.linspace(-0.5, 0.5, image_size)
    zenith = torch.linspace(-0.3, 0.3, image_size)
    return Samples(rgb, depth, targets, azimuth, zenith)


def folder_samples(folder: Path, count: int, image_size: int) -> Samples:
    dataset = ReplicatorDataset(folder, image_size, progress=False)
    if len(dataset) < count:
        raise SystemExit(f"--data {folder}: {len(dataset)} samples, fewer than --samples {count}")
    if tuple(dataset.depth.shape[1:]) != (image_size, image_size):
        raise SystemExit(f"--data {folder}: LiDAR grids of {tuple(dataset.depth.shape[1:])}, but the models take "
                         f"{image_size}x{image_size} (--image-size)")
    return dataset.subset(range(count))


class SeedStyleDataset(Dataset):
    """The course's per-sample reader over samples held in memory: every item scales its own image to
    float and converts its own depth grid to XYZA, and the DataLoader collates them per batch."""

    def __init__(self, samples: Samples):
        self.samples = samples.to("cpu")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        s = self.samples
        rgb = s.rgb[i].float() / 255
        xyza = depth_to_xyza(s.depth[i], s.azimuth, s.zenith, s.hit_threshold)
        return rgb, xyza, s.targets[i]


# --- one measurement each ------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _timed(device: torch.device, fn: Callable[[], object]) -> float:
    _sync(device)
    started = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - started


def limit(model: nn.Module, samples: Samples, device: torch.device, batch_size: int, steps: int, warmup: int,
          options: Options) -> tuple[int, float]:
    """(a): Adam steps on batches built on the device beforehand; ``(samples, seconds)`` of ``steps``."""
    model.to(device).train()
    memory = torch.channels_last if options["channels_last"] else torch.contiguous_format
    model.to(memory_format=memory)
    data = samples.to(device)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(0)).to(device)
    batches = [tuple(t.contiguous(memory_format=memory) if t.dim() == 4 else t for t in data.batch(index))
               for index in order[: len(data) // batch_size * batch_size].split(batch_size)]
    dtype = autocast_dtype(device, options["precision"])
    forward = torch.compile(model) if options["compile"] else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
    autocast = torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    def run(count: int) -> None:
        for step in range(count):
            rgb, xyza, target = batches[step % len(batches)]
            with autocast:
                loss = nn.functional.mse_loss(forward(rgb, xyza), target)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

    _timed(device, lambda: run(warmup))
    return steps * batch_size, _timed(device, lambda: run(steps))


def fit_epoch(model: nn.Module, samples: Samples, device: torch.device, batch_size: int, options: Options) -> tuple[int, float]:
    """(b): ``fusionzoo.fit``'s second training pass (the first is the warm-up)."""
    history = fusionzoo.fit(model, samples, epochs=2, batch_size=batch_size, device=device, progress=False, **options)
    return len(samples) // batch_size * batch_size, history.epochs[1].train_seconds


def course_loader(samples: Samples, train: bool) -> DataLoader:
    """The course's loaders: batch 32, the training one shuffled, both dropping the last partial batch."""
    generator = torch.Generator().manual_seed(0)
    return DataLoader(SeedStyleDataset(samples), batch_size=COURSE_BATCH, shuffle=train, drop_last=True, generator=generator)


def course_epoch(model: nn.Module, samples: Samples, device: torch.device) -> tuple[int, float]:
    """(c): the course's ``train_model`` loop; its second epoch's ``(samples, seconds)``."""
    model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    loader = course_loader(samples, train=True)

    def epoch() -> float:
        total = 0.0
        for rgb, xyza, target in loader:
            optimizer.zero_grad()
            target = target.to(device)
            loss = nn.functional.mse_loss(model(rgb.to(device), xyza.to(device)), target)
            loss.backward()
            optimizer.step()
            total += loss.item()  # the course's running sum: the host waits for every step
        return total

    epoch()
    return len(loader) * COURSE_BATCH, _timed(device, epoch)


def evaluate_pass(model: nn.Module, samples: Samples, device: torch.device, batch_size: int, options: Options) -> tuple[int, float]:
    """``fusionzoo.evaluate`` over samples already on the device, after a one-batch warm-up."""
    data = samples.to(device)
    settings = {"device": device, "batch_size": batch_size, "precision": options["precision"], "channels_last": options["channels_last"]}
    fusionzoo.evaluate(model, data.subset(range(min(len(data), batch_size))), **settings)
    return len(data), _timed(device, lambda: fusionzoo.evaluate(model, data, **settings))


def course_valid_pass(model: nn.Module, samples: Samples, device: torch.device, warmup: int) -> tuple[int, float]:
    """The course-style validation pass: per-sample loader, ``.to(device)`` and ``.item()`` per batch."""
    model.to(device).eval()
    loader = course_loader(samples, train=False)

    def run(limit_batches: int | None) -> float:
        total = 0.0
        with torch.no_grad():
            for i, (rgb, xyza, target) in enumerate(loader):
                if i == limit_batches:
                    break
                total += nn.functional.mse_loss(model(rgb.to(device), xyza.to(device)), target.to(device)).item()
        return total

    run(warmup)
    return len(loader) * COURSE_BATCH, _timed(device, lambda: run(None))


# --- the run -------------------------------------------------------------------------------------


def variant_options(base: Options, variant: str) -> Options:
    if variant == "channels_last":
        return {**base, "channels_last": True}
    if variant == "compile":
        return {**base, "compile": True}
    return {**base, "precision": variant}


def available_variants(device: torch.device, asked: Sequence[str]) -> list[str]:
    """The asked variants this device can run (fp16 needs CUDA; bf16 a device that supports it)."""
    usable = []
    for variant in asked:
        if variant in ("bf16", "fp16"):
            try:
                autocast_dtype(device, variant)
            except ValueError:
                continue
        usable.append(variant)
    return usable


def measure(args: argparse.Namespace) -> dict:
    device = resolve_device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    samples = (folder_samples(args.data, args.samples, args.image_size) if args.data
               else synthetic_samples(args.samples, args.image_size))
    if len(samples) < max(args.batch_size, COURSE_BATCH):
        raise SystemExit(f"--samples {args.samples} makes no full batch of {max(args.batch_size, COURSE_BATCH)}")
    options: Options = {"channels_last": args.channels_last, "compile": args.compile, "precision": args.precision}
    autocast_dtype(device, args.precision)  # refuse a precision the device cannot run before any work
    steps = args.steps or len(samples) // args.batch_size
    variants = available_variants(device, args.variants or [])
    torch.manual_seed(args.seed)
    initial = {name: fusionzoo.create(name, image_size=args.image_size) for name in args.models}

    def fresh(name: str) -> nn.Module:
        return copy.deepcopy(initial[name])  # every measurement starts from the same weights

    runs: dict[str, dict[str, list[float]]] = {name: {} for name in args.models}

    def record(name: str, key: str, result: tuple[int, float]) -> None:
        count, seconds = result
        runs[name].setdefault(key, []).append(count / seconds)

    load_before = _load_average()
    for _ in range(args.repeat):
        for name in args.models:
            record(name, "limit", limit(fresh(name), samples, device, args.batch_size, steps, args.warmup, options))
            record(name, "fit", fit_epoch(fresh(name), samples, device, args.batch_size, options))
            record(name, "course", course_epoch(fresh(name), samples, device))
            for variant in variants:
                record(name, f"fit_{variant}", fit_epoch(fresh(name), samples, device, args.batch_size, variant_options(options, variant)))
            for size in args.valid_batch_sizes:
                record(name, f"evaluate_{size}", evaluate_pass(fresh(name), samples, device, size, options))
            record(name, "course_valid", course_valid_pass(fresh(name), samples, device, args.warmup))

    models = {}
    for name, by_key in runs.items():
        best = {key: max(values) for key, values in by_key.items()}
        models[name] = {
            "samples_per_s": best,
            "fit_over_limit": best["fit"] / best["limit"],
            "fit_over_course": best["fit"] / best["course"],
            "evaluate_over_course_valid": {size: best[f"evaluate_{size}"] / best["course_valid"] for size in args.valid_batch_sizes},
            "variants_over_fit": {v: best[f"fit_{v}"] / best["fit"] for v in variants},
            "runs": by_key,
        }
    return {
        "device": str(device), "device_name": _device_name(device), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "data": str(args.data) if args.data else "synthetic",
        "samples": len(samples), "image_size": args.image_size, "batch_size": args.batch_size, "limit_steps": steps,
        "warmup_steps": args.warmup, "repeat": args.repeat, "options": options, "variants": variants,
        "valid_batch_sizes": args.valid_batch_sizes,
        "load_average": {"before": load_before, "after": _load_average()}, "models": models,
    }


def _load_average() -> list[float] | None:
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "cpu":
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
    return platform.processor() or device.type


def report(result: dict) -> str:
    options = ", ".join(f"{k}={v}" for k, v in result["options"].items())
    lines = [
        f"{result['device_name']} ({result['device']}), torch {result['torch']}, {result['threads']} threads; "
        f"{result['samples']} {result['data']} samples at {result['image_size']}x{result['image_size']}, "
        f"batch {result['batch_size']}; {options}; best of {result['repeat']}; load average "
        f"{result['load_average']['before']} -> {result['load_average']['after']}",
        "",
        "training, samples/s       (a) limit   (b) fit  (c) course  (b)/(a)  (b)/(c)",
    ]
    for name, m in result["models"].items():
        s = m["samples_per_s"]
        lines.append(f"  {name:<22} {s['limit']:10.1f} {s['fit']:9.1f} {s['course']:9.1f} "
                     f"{m['fit_over_limit']:8.2f} {m['fit_over_course']:8.2f}")
    sizes = result["valid_batch_sizes"]
    lines += ["", "validation, samples/s   " + "".join(f"{f'evaluate b{n}':>14}" for n in sizes) + "  course-style"
              + "".join(f"{f'b{n}/course':>10}" for n in sizes)]
    for name, m in result["models"].items():
        s, ratios = m["samples_per_s"], m["evaluate_over_course_valid"]
        lines.append(f"  {name:<22}" + "".join(f"{s[f'evaluate_{n}']:14.1f}" for n in sizes) + f"{s['course_valid']:12.1f}"
                     + "".join(f"{ratios[n]:10.2f}" for n in sizes))
    if result["variants"]:
        lines += ["", "fit variants, samples/s (ratio to the default fit)"]
        for name, m in result["models"].items():
            s = m["samples_per_s"]
            cells = "  ".join(f"{v} {s[f'fit_{v}']:.1f} ({r:.2f}x)" for v, r in m["variants_over_fit"].items())
            lines.append(f"  {name:<22} {cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(COURSE_MODELS), help="registered model names (default: the course's four)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    parser.add_argument("--samples", type=int, default=384, help="samples per epoch (default 384: 12 batches of 32)")
    parser.add_argument("--batch-size", type=int, default=COURSE_BATCH, help="batch of (a) and (b) (the course's loop keeps 32)")
    parser.add_argument("--steps", type=int, help="timed steps of the limit loop (default: one epoch's)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps before the limit loop and the course-style validation")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved rounds; each measurement's fastest counts")
    parser.add_argument("--image-size", type=int, default=64, help="image and LiDAR grid side (default 64, the course's)")
    parser.add_argument("--valid-batch-sizes", nargs="+", type=int, default=[256, COURSE_BATCH],
                        help="batch sizes of the evaluate passes (default 256, fit's valid_batch_size, and 32)")
    parser.add_argument("--channels-last", action="store_true", help="run (a), (b) and evaluate in channels_last")
    parser.add_argument("--compile", action="store_true", help="run (a), (b) and evaluate with torch.compile")
    parser.add_argument("--precision", default="fp32", help="fp32, bf16 or fp16 for (a), (b) and evaluate")
    parser.add_argument("--variants", nargs="*", choices=VARIANTS,
                        help="also time fit with these options (no names: all this device runs)")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--data", type=Path, help="a dataset folder to read instead of random samples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the models' initial weights")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.variants == []:
        args.variants = list(VARIANTS)
    result = measure(args)
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
