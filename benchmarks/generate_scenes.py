"""Speed of the built-in scene generator: is 10,000 samples under 60 s on 2 cores?

Generates ``--samples`` scenes of the default config (or with ``--image-size`` / ``--lidar-size`` /
``--supersample`` changed) into a temporary folder with ``generate_scenes`` and reports scenes per
second and the time that projects to for 10,000. Then, on one batch of the same scenes, it times each
stage side by side (drawing the scenes, casting the camera's rays, casting the LiDAR's, encoding and
writing the files) and reports each one's share, to show where the time goes. Single process: the
generator uses one core.

Run ``python benchmarks/generate_scenes.py --samples 2000`` (or ``--samples 10000`` for the real thing).
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from fusionzoo.sim import SceneConfig, generate_scenes
from fusionzoo.sim.render import render_camera, render_lidar
from fusionzoo.sim.scenes import draw_scenes

TARGET_SAMPLES, TARGET_SECONDS = 10_000, 60.0


def stage_times(config: SceneConfig, count: int) -> dict[str, float]:
    """Seconds per scene of each stage of generating ``count`` scenes, fastest of 3 runs."""
    floor = config.floor_height
    stages = {
        "draw": lambda: draw_scenes(config, range(count)),
        "camera": lambda: render_camera(config.camera(), scenes.objects, scenes.lighting, floor),
        "lidar": lambda: render_lidar(config.lidar(), scenes.objects, floor),
        "write": lambda: [
            (Image.fromarray(image, "RGBA").save(io.BytesIO(), format="PNG"), np.save(io.BytesIO(), grid))
            for image, grid in zip(rgb, depth.astype(np.float32))
        ],
    }
    scenes = draw_scenes(config, range(count))
    rgb = render_camera(config.camera(), scenes.objects, scenes.lighting, floor)
    depth = render_lidar(config.lidar(), scenes.objects, floor)
    best = {}
    for name, stage in stages.items():
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            stage()
            runs.append(time.perf_counter() - start)
        best[name] = min(runs) / count
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=2000, help="scenes to generate (default 2000)")
    parser.add_argument("--image-size", type=int, default=SceneConfig.image_size)
    parser.add_argument("--lidar-size", type=int, default=SceneConfig.lidar_grid[0], help="LiDAR rows and columns")
    parser.add_argument("--supersample", type=int, default=SceneConfig.supersample)
    args = parser.parse_args()
    config = SceneConfig(samples=args.samples, image_size=args.image_size, lidar_grid=(args.lidar_size,) * 2,
                         supersample=args.supersample)

    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        generate_scenes(Path(tmp) / "scenes", config, progress=False)
        elapsed = time.perf_counter() - start
    rate = args.samples / elapsed
    projected = TARGET_SAMPLES / rate
    print(f"generated {args.samples} scenes (image {config.image_size}px x{config.supersample}^2 rays/pixel, "
          f"LiDAR {config.lidar_grid[0]}x{config.lidar_grid[1]}) in {elapsed:.1f} s: {rate:.0f} scenes/s")
    verdict = "under" if projected < TARGET_SECONDS else "OVER"
    print(f"projected for {TARGET_SAMPLES:,} scenes: {projected:.1f} s ({verdict} the {TARGET_SECONDS:.0f} s target)")

    times = stage_times(config, 32)
    total = sum(times.values())
    print("per scene, by stage (one batch of 32, fastest of 3):")
    for name, seconds in times.items():
        print(f"  {name:7s} {seconds * 1e3:6.2f} ms  {seconds / total:5.1%}")
    print(f"  {'sum':7s} {total * 1e3:6.2f} ms  (whole run: {elapsed / args.samples * 1e3:.2f} ms per scene)")


if __name__ == "__main__":
    main()
