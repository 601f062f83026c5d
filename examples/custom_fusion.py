"""Register your own fusion operator and compare it with the course's matmul fusion.

Shows: subclass `fusionzoo.Fusion` (declare the output shape in `infer_shape`), register it with
`@register_fusion`, register a model that uses it with `@register_model`, and compare both models
under one protocol. The operator here, `maxout`, keeps the larger of the two modalities' features
at every position.

    python examples/custom_fusion.py --samples 1000 --epochs 3
"""

import argparse
import logging
from pathlib import Path

import torch

import fusionzoo
from fusionzoo.experiments import compare, format_table
from fusionzoo.data import course_splits
from fusionzoo.sim import generate_scenes


@fusionzoo.register_fusion("maxout")
class MaxOut(fusionzoo.Fusion):
    """Element-wise maximum of equally shaped inputs: ``(C, H, W), (C, H, W) -> (C, H, W)``."""

    def infer_shape(self, shapes):
        return self._require_equal(shapes)

    def forward(self, rgb, lidar):
        return torch.maximum(rgb, lidar)


@fusionzoo.register_model("maxout", reproduces=None)
def maxout(image_size: int = 64, num_outputs: int = 9) -> fusionzoo.IntermediateFusionNet:
    """Intermediate fusion: the course's encoders and head around the maxout operator."""
    return fusionzoo.IntermediateFusionNet(image_size=image_size, num_outputs=num_outputs, fusion="maxout", lidar_transpose=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--out", default="runs/custom-fusion")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    size = args.image_size
    data = generate_scenes(Path(args.out) / "data", samples=args.samples, image_size=size, lidar_grid=(size, size), progress=False)
    train, valid = course_splits(data, image_size=size)
    print(fusionzoo.info("maxout"))
    results, _ = compare(train, valid, ["matmul", "maxout"], epochs=args.epochs, out=args.out, progress=False)
    print(format_table(results))


if __name__ == "__main__":
    main()
