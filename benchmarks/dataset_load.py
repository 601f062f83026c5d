"""Load time and memory of ``ReplicatorDataset`` against a per-file reader like the course's.

Writes a synthetic dataset in the course's layout (``FORMAT.md``: random RGBA PNGs and depth grids),
then measures, side by side in one run:

- per-file: a torch ``Dataset`` that opens each PNG with PIL (``Resize`` + ``ToTensor``, as the course
  did), loads each ``.npy`` and converts it to XYZA per item, iterated once through a
  ``DataLoader(batch_size=32)``: what every pass over the data costs with such a reader;
- cold: ``ReplicatorDataset``'s first open (validate, decode, write the cache) plus one pass of batches;
- warm: a later open (from the cache, mapped: ``memory="map"``) plus one pass of batches;
- warm, loaded: the same with ``memory="load"`` (the cache copied into the process's memory);
- batch assembly: one pass of ``Samples.batch`` (``index_select`` rows, XYZA written in place from
  the beams' factors computed once) against the straightforward per-batch form (advanced indexing,
  XYZA computed from the angles and stacked), on the same loaded tensors and index batches;
- PNG decoding: the dataset's PNG files (already read into memory) decoded by TorchCodec (where it
  is installed), by torchvision's deprecated codec and by PIL, one thread, side by side;

and reports the speed-ups as ratios (each measurement repeated and each phase's fastest time
counting, since the machine may be shared), the peak resident memory added by open + pass (Linux high-water mark; a warm
open maps the cache file, so its pages count once they are touched) against the size of the
dataset's tensors, and how far the two readers' tensors differ.
Run ``python benchmarks/dataset_load.py`` (10,000 samples) or ``--samples 64 --repeat 1`` for a smoke run.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from fusionzoo.data import BatchLoader, ReplicatorDataset, Samples, depth_to_xyza

BATCH_SIZE = 32
READ_SIZE = 64  # the course's Resize(64)


def write_dataset(root: Path, samples: int, image_size: int, lidar_size: int, seed: int = 0) -> None:
    """A synthetic dataset in the course's layout: coloured squares on a gradient, random depths."""
    rng = np.random.default_rng(seed)
    (root / "rgb").mkdir(parents=True)
    (root / "lidar").mkdir()
    np.save(root / "azimuth.npy", np.linspace(-0.5, 0.5, lidar_size, dtype=np.float32))
    np.save(root / "zenith.npy", np.linspace(-0.3, 0.3, lidar_size, dtype=np.float32))
    targets = rng.uniform(-5, 5, size=(samples, 9))
    rows = "\n".join(",".join(f"{v:.6f}" for v in row) for row in targets)
    header = "red x,red y,red z,green x,green y,green z,blue x,blue y,blue z"
    (root / "positions.csv").write_text(header + "\n" + rows + "\n")
    ramp = np.linspace(0, 255, image_size, dtype=np.float32)
    background = np.stack([np.add.outer(ramp, ramp) / 2] * 3 + [np.full((image_size, image_size), 255.0)], -1)
    for i in range(samples):
        image = background.copy()
        for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255)):
            y, x = rng.integers(0, image_size * 3 // 4, size=2)
            image[y : y + image_size // 4, x : x + image_size // 4, :3] = colour
        Image.fromarray(image.astype(np.uint8)).save(root / "rgb" / f"{i:04d}.png")
        np.save(root / "lidar" / f"{i:04d}.npy", rng.uniform(1.0, 60.0, (lidar_size, lidar_size)).astype(np.float32))


class PerFileDataset(Dataset):
    """The straightforward reader: every item opens its PNG and .npy again, as in the course."""

    def __init__(self, root: Path, image_size: int = READ_SIZE):
        self.root = root
        self.positions = np.genfromtxt(root / "positions.csv", delimiter=",", skip_header=1)
        self.azimuth = torch.from_numpy(np.load(root / "azimuth.npy"))
        self.zenith = torch.from_numpy(np.load(root / "zenith.npy"))
        self.transform = T.Compose([T.Resize(image_size), T.ToTensor()])

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rgb = self.transform(Image.open(self.root / "rgb" / f"{i:04d}.png"))
        depth = torch.from_numpy(np.load(self.root / "lidar" / f"{i:04d}.npy")).to(torch.float32)
        target = torch.from_numpy(self.positions[i]).to(torch.float32)
        return rgb, depth_to_xyza(depth, self.azimuth, self.zenith), target


def _status_kib(field: str) -> int | None:
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    return next((int(line.split()[1]) for line in lines if line.startswith(field + ":")), None)


class _PeakMemory:
    """Resident memory added at the peak while the block runs, in bytes (``bytes`` is None off Linux)."""

    def __enter__(self) -> _PeakMemory:
        gc.collect()
        self.bytes = None
        try:
            Path("/proc/self/clear_refs").write_text("5")  # restart the high-water mark from here
        except OSError:
            self.before = None
        else:
            self.before = _status_kib("VmRSS")
        return self

    def __exit__(self, *exc) -> None:
        peak = _status_kib("VmHWM")
        if self.before is not None and peak is not None:
            self.bytes = (peak - self.before) * 1024


def _timed(fn: Callable[[], object]) -> tuple[object, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def _one_pass(batches) -> int:
    return sum(len(targets) for _, _, targets in batches)


def measure_replicator(root: Path, memory_mode: str = "map") -> dict:
    """Open ``root`` with ``ReplicatorDataset`` and make one pass of batches: times and peak memory."""
    with _PeakMemory() as memory:
        ds, open_s = _timed(lambda: ReplicatorDataset(root, READ_SIZE, progress=False, memory=memory_mode))
        seen, pass_s = _timed(lambda: _one_pass(BatchLoader(ds, BATCH_SIZE, shuffle=False, drop_last=False)))
    assert seen == len(ds)
    return {
        "samples": len(ds), "from_cache": ds.from_cache, "open_s": open_s, "pass_s": pass_s, "total_s": open_s + pass_s,
        "peak_memory_bytes": memory.bytes, "tensor_bytes": ds.nbytes(), "cache_bytes": ds.cache_file.stat().st_size,
    }


def measure_per_file(root: Path) -> dict:
    """One pass over ``root`` with the per-file reader."""
    dataset, open_s = _timed(lambda: PerFileDataset(root))
    seen, pass_s = _timed(lambda: _one_pass(DataLoader(dataset, batch_size=BATCH_SIZE, shuffle=False)))
    assert seen == len(dataset)
    return {"open_s": open_s, "pass_s": pass_s, "total_s": open_s + pass_s}


def straightforward_batch(samples: Samples, index: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """What ``Samples.batch`` returns, assembled the obvious way: the reference for its speed."""
    az = -samples.azimuth.reshape(-1, 1)
    ze = -samples.zenith.reshape(1, -1)
    depth = samples.depth[index]
    xyza = torch.stack((
        depth * torch.sin(az) * torch.cos(ze), depth * torch.cos(az) * torch.cos(ze), depth * torch.sin(ze),
        (depth < samples.hit_threshold).float(),
    ), dim=-3)
    return samples.rgb[index].float() / 255, xyza, samples.targets[index]


def measure_batch_assembly(samples: Samples, repeat: int) -> dict:
    """Seconds of one pass of shuffled batches, ``Samples.batch`` against ``straightforward_batch``
    (fastest of ``repeat`` interleaved rounds), and whether the two agree exactly."""
    batches = list(torch.randperm(len(samples), generator=torch.Generator().manual_seed(0)).split(BATCH_SIZE))
    ways = {"batch_s": samples.batch, "straightforward_s": lambda index: straightforward_batch(samples, index)}
    times: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(repeat):
        for name, assemble in ways.items():
            times[name].append(_timed(lambda: [assemble(index) for index in batches])[1])
    exact = all(torch.equal(a, b) for a, b in zip(samples.batch(batches[0]), straightforward_batch(samples, batches[0])))
    return {**{name: min(runs) for name, runs in times.items()}, "identical": exact}


def measure_decoders(root: Path, repeat: int, count: int = 2000) -> dict:
    """Microseconds per PNG of decoding the first ``count`` PNGs of ``root`` (bytes already in memory)
    with each decoder, fastest of ``repeat`` interleaved rounds, and whether they agree exactly."""
    import io
    import warnings

    from fusionzoo.data import png

    paths = sorted((root / "rgb").glob("*.png"))[:count]
    files = [torch.frombuffer(bytearray(path.read_bytes()), dtype=torch.uint8) for path in paths]
    ways: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {}
    try:
        from torchcodec.decoders import decode_png as torchcodec_png

        ways["torchcodec"] = lambda data: torchcodec_png(data, mode="UNCHANGED", output_dtype="auto")
    except Exception:  # noqa: BLE001  (not installed, or built for another torch)
        pass
    ways["torchvision"] = png._with_torchvision
    ways["pil"] = lambda data: torch.from_numpy(np.array(Image.open(io.BytesIO(data.numpy().tobytes())))).permute(2, 0, 1)
    times: dict[str, list[float]] = {name: [] for name in ways}
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torchvision's, measured on purpose
            for _ in range(repeat):
                for name, decode in ways.items():
                    times[name].append(_timed(lambda: [decode(data) for data in files])[1])
            same = all(torch.equal(ways["pil"](data), decode(data)) for data in files[:50] for decode in ways.values())
    finally:
        torch.set_num_threads(previous)
    per_image = {name: min(runs) / len(files) * 1e6 for name, runs in times.items()}
    return {"images": len(files), "microseconds_per_image": per_image, "identical": same,
            "reader_uses": png.decoder()}


def best(runs: list[dict]) -> dict:
    """Repeated runs summarised: each phase's fastest time (the least disturbed by other load on the
    machine) and the highest peak memory."""
    summary = dict(runs[0])
    for phase in ("open_s", "pass_s"):
        summary[phase] = min(run[phase] for run in runs)
    summary["total_s"] = summary["open_s"] + summary["pass_s"]
    peaks = [run["peak_memory_bytes"] for run in runs if run.get("peak_memory_bytes") is not None]
    summary["peak_memory_bytes"] = max(peaks) if peaks else None
    return summary


def agreement(ds: ReplicatorDataset, reference: PerFileDataset, count: int = 64) -> dict:
    """Largest differences between the two readers' tensors over the first ``count`` samples."""
    index = torch.arange(min(count, len(ds)))
    rgb, xyza, targets = ds.batch(index)
    expected = [reference[int(i)] for i in index]
    return {
        "rgb_max_diff_levels": float((rgb - torch.stack([e[0] for e in expected])).abs().max() * 255),
        "xyza_max_abs_diff": float((xyza - torch.stack([e[1] for e in expected])).abs().max()),
        "targets_max_abs_diff": float((targets - torch.stack([e[2] for e in expected])).abs().max()),
    }


def run(root: Path, samples: int, image_size: int, lidar_size: int, repeat: int) -> dict:
    generate_s = None
    if not (root / "positions.csv").exists():
        _, generate_s = _timed(lambda: write_dataset(root, samples, image_size, lidar_size))
    cold, warm, warm_load, per_file = [], [], [], []
    for _ in range(repeat):
        for stale in (root / ".fusionzoo-cache").glob("*.safetensors"):
            stale.unlink()
        cold.append(measure_replicator(root))
        warm.append(measure_replicator(root))
        warm_load.append(measure_replicator(root, "load"))
        per_file.append(measure_per_file(root))
    assert not any(r["from_cache"] for r in cold) and all(r["from_cache"] for r in warm + warm_load)
    cold, warm, warm_load, per_file = best(cold), best(warm), best(warm_load), best(per_file)
    loaded = ReplicatorDataset(root, READ_SIZE, progress=False)
    assembly = measure_batch_assembly(loaded, repeat)
    return {
        "samples": cold["samples"], "png_size": image_size, "read_size": READ_SIZE, "lidar_size": lidar_size,
        "repeat": repeat, "torch_threads": torch.get_num_threads(), "generate_s": generate_s,
        "per_file": per_file, "cold": cold, "warm": warm, "warm_load": warm_load,
        "speedup_cold": per_file["total_s"] / cold["total_s"],
        "speedup_warm": per_file["total_s"] / warm["total_s"],
        "speedup_warm_load": per_file["total_s"] / warm_load["total_s"],
        "speedup_pass": per_file["pass_s"] / warm["pass_s"],
        "batch_assembly": assembly, "speedup_batch_assembly": assembly["straightforward_s"] / assembly["batch_s"],
        "agreement": agreement(loaded, PerFileDataset(root)),
        "decoders": measure_decoders(root, repeat),
    }


def report(r: dict) -> str:
    mb = 1024**2

    def memory(m: dict) -> str:
        if m["peak_memory_bytes"] is None:
            return "peak memory not measured (needs Linux /proc)"
        peak = m["peak_memory_bytes"]
        return f"peak memory +{peak / mb:.0f} MiB ({peak / m['tensor_bytes']:.2f}x the tensors)"

    cold, warm, per_file, agree, assembly = r["cold"], r["warm"], r["per_file"], r["agreement"], r["batch_assembly"]
    return "\n".join([
        f"{r['samples']} samples: PNG {r['png_size']}x{r['png_size']} RGBA read at {r['read_size']}, "
        f"lidar {r['lidar_size']}x{r['lidar_size']}; tensors {cold['tensor_bytes'] / mb:.0f} MiB, "
        f"cache file {cold['cache_bytes'] / mb:.0f} MiB; torch threads {r['torch_threads']}; "
        f"best of {r['repeat']}",
        f"per-file reader, one pass:      {per_file['total_s']:8.2f} s",
        f"ReplicatorDataset cold open:    {cold['open_s']:8.2f} s + pass {cold['pass_s']:.2f} s"
        f"  -> speed-up {r['speedup_cold']:.1f}x; {memory(cold)}",
        f"ReplicatorDataset warm open:    {warm['open_s']:8.2f} s + pass {warm['pass_s']:.2f} s"
        f"  -> speed-up {r['speedup_warm']:.1f}x; {memory(warm)} (mapped)",
        f"  the same, loaded:             {r['warm_load']['open_s']:8.2f} s + pass {r['warm_load']['pass_s']:.2f} s"
        f"  -> speed-up {r['speedup_warm_load']:.1f}x; {memory(r['warm_load'])}",
        f"one pass of batches alone:      speed-up {r['speedup_pass']:.0f}x",
        f"batch assembly, shuffled pass:  Samples.batch {assembly['batch_s']:.3f} s, straightforward "
        f"{assembly['straightforward_s']:.3f} s -> {r['speedup_batch_assembly']:.1f}x; "
        f"{'identical' if assembly['identical'] else 'DIFFERENT'} tensors",
        f"agreement with the per-file reader (first 64 samples): rgb within "
        f"{agree['rgb_max_diff_levels']:.0f}/255, xyza max |diff| {agree['xyza_max_abs_diff']:.2g}, "
        f"targets max |diff| {agree['targets_max_abs_diff']:.2g}",
        f"PNG decoding, {r['decoders']['images']} images, one thread (the reader uses "
        f"{r['decoders']['reader_uses']}): " + ", ".join(
            f"{name} {us:.0f} us" for name, us in r["decoders"]["microseconds_per_image"].items())
        + f"; {'identical' if r['decoders']['identical'] else 'DIFFERENT'} pixels",
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10_000, help="samples to generate (default 10000)")
    parser.add_argument("--image-size", type=int, default=64, help="side of the generated PNGs (read at 64)")
    parser.add_argument("--lidar-size", type=int, default=64, help="side of the generated depth grids")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; each phase's fastest counts")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--dir", type=Path, help="keep the generated dataset here (reused if present)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.dir is not None:
        result = run(args.dir, args.samples, args.image_size, args.lidar_size, args.repeat)
    else:
        with tempfile.TemporaryDirectory(prefix="fusionzoo-bench-") as folder:
            result = run(Path(folder) / "data", args.samples, args.image_size, args.lidar_size, args.repeat)
    print(json.dumps(result, indent=2) if args.json else report(result))


if __name__ == "__main__":
    sys.exit(main())
