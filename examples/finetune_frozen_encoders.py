"""Fine-tune a trained fusion model on a new scene with its encoders frozen.

Shows: train `matmul` on the cubes scene and save it; generate a new scene (a cube, a sphere and
a torus, as in the course's first lab, under harsher light); rebuild the model from the checkpoint
with `create(..., checkpoint=...)`, freeze its encoders, give the head its own learning rate, and
fine-tune; the frozen encoders come out bit-identical.

    python examples/finetune_frozen_encoders.py --samples 1000 --epochs 3
"""

import argparse
import logging
from pathlib import Path

import torch

import fusionzoo
from fusionzoo.data import course_splits
from fusionzoo.sim import generate_scenes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--out", default="runs/finetune")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out, size = Path(args.out), args.image_size
    scene = {"samples": args.samples, "image_size": size, "lidar_grid": (size, size), "progress": False}

    # 1. A model trained on the cubes scene, saved as a checkpoint.
    cubes_train, cubes_valid = course_splits(generate_scenes(out / "cubes", **scene), image_size=size)
    torch.manual_seed(0)
    model = fusionzoo.create("matmul", image_size=size)
    fusionzoo.fit(model, cubes_train, cubes_valid, epochs=args.epochs, progress=False)
    fusionzoo.save(model, out / "matmul-cubes.safetensors")

    # 2. A new scene: the first lab's shapes, harsher light.
    shapes_train, shapes_valid = course_splits(
        generate_scenes(out / "shapes", shapes=("cube", "sphere", "torus"), ambient=0.2, seed=1, **scene), image_size=size
    )

    # 3. Rebuild from the checkpoint, freeze the encoders, fine-tune the fusion and head.
    tuned = fusionzoo.create("matmul", image_size=size, checkpoint=out / "matmul-cubes.safetensors")
    fusionzoo.freeze(tuned, "encoders")
    before = {k: v.clone() for k, v in tuned.encoders.state_dict().items()}
    baseline = fusionzoo.evaluate(tuned, shapes_valid).loss
    groups = fusionzoo.param_groups(tuned, {"head": 3e-4})
    history = fusionzoo.fit(tuned, shapes_train, shapes_valid, epochs=args.epochs, params=groups, progress=False)

    unchanged = all(torch.equal(before[k], v) for k, v in tuned.encoders.state_dict().items())
    print(f"new scene, valid MSE before fine-tuning: {baseline:.3f}; after: {history.best_valid_loss:.3f}")
    print(f"frozen encoders unchanged: {unchanged}")
    fusionzoo.save(tuned, out / "matmul-shapes.safetensors")


if __name__ == "__main__":
    main()
