"""Fine-tune the zoo's trained matmul on your own data, and see whether its weights beat a fresh start.

Shows: starting weights (by default the catalogue's `matmul.cubes`, trained by the course's protocol
on the default cubes scene: `fusionzoo pretrain matmul.cubes` builds them once; or `--init
CHECKPOINT`; or, with `--pretrain-epochs N`, a short run on the cubes scene made on the spot); a
differently generated scene (a sphere, a torus and a cube instead of three cubes) handed over as
plain numpy arrays, channels-last and uint8, the way your own pipeline would give them, and turned
into training samples by `fusionzoo.data.from_arrays`; then the same training twice on those
samples (same data, epochs, learning rate and seed): once from the starting weights, once from
scratch. Both validation MSE curves are printed (and plotted when matplotlib is installed).

    fusionzoo pretrain matmul.cubes         # once: about 11 minutes on 2 CPU cores
    python examples/finetune_own_data.py --samples 1000 --epochs 4
    python examples/finetune_own_data.py --init runs/matmul/best.safetensors --samples 1000 --epochs 4
"""

import argparse
import logging
import time
from pathlib import Path

import torch

import fusionzoo
from fusionzoo.data import course_splits, from_arrays
from fusionzoo.experiments import plot_curves
from fusionzoo.sim import generate_scenes

SHAPES = ("sphere", "torus", "cube")  # the red, green and blue objects of the new scene


def starting_weights(args: argparse.Namespace, out: Path) -> dict[str, object]:
    """What fine-tuning starts from, as ``create`` options: the catalogue's weights (``weights=TAG``),
    ``--init`` (``checkpoint=FILE``), or a short matmul run on the cubes scene (``--pretrain-epochs``)."""
    if args.init:
        print(f"starting model: {args.init}")
        return {"checkpoint": Path(args.init)}
    size = args.image_size
    if args.pretrain_epochs is None:
        entry = fusionzoo.get_weights(f"matmul.{args.weights}")
        print(f"starting model: the catalogue's {entry.name} ({entry.description}; valid MSE "
              f"{entry.metrics['valid_mse']} on the cubes scene)", flush=True)
        fusionzoo.create("matmul", weights=args.weights)  # not built yet: the error names the command that builds them
        return {"weights": args.weights}
    print(f"starting model: a short matmul run on the default cubes scene ({args.pretrain_samples} samples, "
          f"{args.pretrain_epochs} epochs, lr {args.lr:g})")
    cubes = generate_scenes(out / "cubes", samples=args.pretrain_samples, image_size=size, lidar_grid=(size, size),
                            progress=False)
    train, valid = course_splits(cubes, image_size=size)
    torch.manual_seed(0)
    model = fusionzoo.create("matmul", image_size=size)
    history = fusionzoo.fit(model, train, valid, epochs=args.pretrain_epochs, lr=args.lr, seed=0, progress=False)
    print(f"cubes: best valid MSE {history.best_valid_loss:.3f}")
    return {"checkpoint": fusionzoo.save(model, out / "matmul-cubes.safetensors")}


def own_arrays(folder: Path, size: int):
    """The new scene as a user's pipeline might hand it over: numpy arrays, images channels-last uint8."""
    samples = fusionzoo.data.ReplicatorDataset(folder, image_size=size)
    rgb, xyza, targets = samples.batch(torch.arange(len(samples)))
    rgb = (rgb * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (N, S, S, 4) uint8
    xyza = xyza.permute(0, 2, 3, 1).numpy()                                  # (N, S, S, 4) float32
    return rgb, xyza, targets.numpy()                                        # (N, 9) float32


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000, help="samples of the new scene (the last 320 validate)")
    parser.add_argument("--epochs", type=int, default=4, help="fine-tuning epochs, the same for both starts")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-4)
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--weights", default="cubes", help="the catalogue's matmul weights to start from (default: cubes)")
    start.add_argument("--init", help="a matmul checkpoint to start from instead of the catalogue's weights")
    start.add_argument("--pretrain-epochs", type=int,
                       help="instead of the catalogue's weights, start from a matmul trained this many epochs on "
                            "the cubes scene on the spot")
    parser.add_argument("--pretrain-samples", type=int, default=2000, help="cubes samples for --pretrain-epochs")
    parser.add_argument("--out", default="runs/finetune-own-data")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    out, size = Path(args.out), args.image_size
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    init = starting_weights(args, out)

    # The new scene, written by the simulator, read back as arrays, checked into samples.
    folder = generate_scenes(out / "new-scene", samples=args.samples, shapes=SHAPES, seed=1, image_size=size,
                             lidar_grid=(size, size), progress=False)
    rgb, xyza, targets = own_arrays(folder, size)
    cut = len(targets) - 320  # the course's split: the last 320 samples validate
    train = from_arrays(rgb[:cut], xyza[:cut], targets[:cut], layout="NHWC")
    valid = from_arrays(rgb[cut:], xyza[cut:], targets[cut:], layout="NHWC")
    print(f"new scene ({', '.join(SHAPES)}): {len(train)} train and {len(valid)} valid samples from arrays "
          f"rgb {rgb.shape} {rgb.dtype}, xyza {xyza.shape} {xyza.dtype}")

    histories, before = {}, {}
    for label, weights in (("from scratch", {}), ("from the cubes weights", init)):
        torch.manual_seed(0)  # the same initialisation, both times, of whatever the start does not load
        model = fusionzoo.create("matmul", image_size=size, **weights)
        before[label] = fusionzoo.evaluate(model, valid).loss
        histories[(label, 0)] = fusionzoo.fit(model, train, valid, epochs=args.epochs, lr=args.lr, seed=0, progress=False)

    labels = [label for label, _ in histories]
    rows = [f"| epoch | {' | '.join(labels)} |", "|---|" + "---|" * len(labels),
            f"| 0 (before) | {' | '.join(f'{before[label]:.3f}' for label in labels)} |"]
    for epoch in range(args.epochs):
        rows.append(f"| {epoch + 1} | {' | '.join(f'{histories[(label, 0)].epochs[epoch].valid_loss:.3f}' for label in labels)} |")
    table = "\n".join(rows)
    print("validation MSE on the new scene, same data, epochs, lr and seed:")
    print(table)
    (out / "curves.md").write_text(table + "\n")
    best = {label: histories[(label, 0)].best_valid_loss for label in labels}
    winner = min(best, key=best.get)
    print(f"best valid MSE: {', '.join(f'{label} {loss:.3f}' for label, loss in best.items())}; {winner} wins")
    plot = plot_curves(histories, out / "curves.png")
    print(f"curves: {plot or 'not plotted (no matplotlib)'} and {out / 'curves.md'}; "
          f"took {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
