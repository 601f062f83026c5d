"""Does the default scene tell the course's story? Train the baselines and fusion models on it.

Generates the scene (``SceneConfig`` defaults, ``--samples`` scenes, knobs changed with ``--set``),
reads it with the course's split (the last 320 samples validate) and trains each of ``--models``
under the course's protocol (``fusionzoo.fit``: Adam, lr 1e-4, MSE, batches of 32, same seed for every
model, through ``fusionzoo.experiments``). It then checks the three things the default scene is meant to show:

1. the LiDAR-only baseline stays near chance: validation MSE above 5;
2. the RGB-only baseline is clearly worse than the best fusion model: at least 1.5x its MSE;
3. the matmul fusion beats early fusion.

For reference it prints two floors computed from the validation targets: chance (predicting the
training mean) and the colour-blind bound (a model that knows every centre exactly but not which
colour is which can do no better than predicting the mean of the three centres for each colour).

The full protocol: ``python benchmarks/calibrate_scene.py`` (9999 samples, 20 epochs; a GPU helps).
A reduced one on CPU: ``--samples 2000 --epochs 10``. ``--data DIR`` keeps the generated dataset
(reused when its config matches); ``--json FILE`` writes the figures.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

import fusionzoo
from fusionzoo.data import course_splits
from fusionzoo.sim import SceneConfig, generate_scenes
from fusionzoo.experiments import compare, format_table

SINGLE = ("rgb", "lidar")
LIDAR_FLOOR, RGB_RATIO = 5.0, 1.5


def knob(text: str) -> tuple[str, object]:
    """``name=value`` with a JSON value (``size_jitter=0.5``, ``lidar_grid=[32,32]``) or a bare name."""
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected name=value, got {text!r}")
    try:
        return name.strip(), json.loads(value)
    except json.JSONDecodeError:
        return name.strip(), value


def floors(train: torch.Tensor, valid: torch.Tensor) -> dict[str, float]:
    """Chance (the training mean) and colour-blind (mean of the three centres) MSE on ``valid`` (N, 9)."""
    chance = ((valid - train.mean(dim=0)) ** 2).mean()
    centres = valid.reshape(-1, 3, 3)
    blind = ((centres - centres.mean(dim=1, keepdim=True)) ** 2).mean()
    return {"chance": float(chance), "colour_blind": float(blind)}


def checks(final: dict[str, float]) -> list[tuple[str, bool | None]]:
    """The story's three claims on the final validation MSEs; None where a model needed is missing."""
    fusion = {m: v for m, v in final.items() if m not in SINGLE}
    best = min(fusion, key=fusion.get) if fusion else None
    return [
        (f"lidar valid MSE > {LIDAR_FLOOR:g}", final["lidar"] > LIDAR_FLOOR if "lidar" in final else None),
        (f"rgb valid MSE >= {RGB_RATIO:g} x best fusion ({best})",
         final["rgb"] >= RGB_RATIO * fusion[best] if "rgb" in final and best else None),
        ("matmul valid MSE < early", final["matmul"] < final["early"] if {"matmul", "early"} <= final.keys() else None),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=SceneConfig.samples, help="scenes to generate (default 9999)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--models", nargs="+", default=["rgb", "lidar", "early", "matmul"],
                        help="registered models to train (default: rgb lidar early matmul)")
    parser.add_argument("--seed", type=int, default=0, help="scene seed and training seed")
    parser.add_argument("--set", dest="knobs", type=knob, action="append", default=[], metavar="KNOB=VALUE",
                        help="change a SceneConfig knob (repeatable), e.g. --set size_jitter=0.5")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data", type=Path, help="dataset folder to write (or reuse); default: a temporary one")
    parser.add_argument("--json", type=Path, help="write the figures to this file")
    args = parser.parse_args()
    for name in args.models:
        fusionzoo.info(name)  # unknown names fail before any work, listing the models

    config = SceneConfig(samples=args.samples, seed=args.seed).replace(**dict(args.knobs))
    with tempfile.TemporaryDirectory() as tmp:
        root = generate_scenes(args.data or Path(tmp) / "scenes", config, progress=True)
        train, valid = course_splits(root, image_size=config.image_size)
        reference = floors(train.targets, valid.targets)
        print(f"dataset {root}: {len(train)} train / {len(valid)} valid; chance MSE {reference['chance']:.2f}, "
              f"colour-blind bound {reference['colour_blind']:.2f}")
        runs, histories = compare(train, valid, args.models, epochs=args.epochs, seeds=[args.seed], out=Path(tmp) / "runs",
                                  device=args.device, progress=False)
    print(format_table(runs))
    results = {
        r.model: {"train": histories[(r.model, r.seed)].epochs[-1].train_loss, "valid": r.final_valid_mse,
                  "best_valid": r.best_valid_mse, "position_error": r.position_error,
                  "valid_by_epoch": histories[(r.model, r.seed)].valid_losses, "seconds": r.train_seconds}
        for r in runs
    }

    verdicts = checks({m: r["valid"] for m, r in results.items()})
    for claim, ok in verdicts:
        print(f"{'PASS' if ok else 'n/a ' if ok is None else 'FAIL'}  {claim}")
    if args.json:
        args.json.write_text(json.dumps({
            "command": "python benchmarks/calibrate_scene.py " + " ".join(
                [f"--samples {args.samples}", f"--epochs {args.epochs}", "--models " + " ".join(args.models),
                 f"--seed {args.seed}"] + [f"--set {k}={json.dumps(v)}" for k, v in args.knobs]),
            "config": config.to_dict(), "floors": reference, "results": results,
            "checks": {claim: ok for claim, ok in verdicts},
        }, indent=2) + "\n")


if __name__ == "__main__":
    main()
