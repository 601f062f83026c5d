"""Load a dataset in the course's layout and look at one sample: the RGB image and the LiDAR's
x, y, z and hit channels, saved side by side as a PNG.

Shows: ReplicatorDataset (decode once, cached), one sample's tensors and its targets.

    python examples/inspect_sample.py --data data/replicator_data_cubes --index 0
    python examples/inspect_sample.py            # generates a small cubes scene first
"""

import argparse
from pathlib import Path

from fusionzoo.data import ReplicatorDataset
from fusionzoo.sim import generate_scenes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", help="a dataset folder (default: generate 16 scenes in --out)")
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--out", default="runs/inspect")
    args = parser.parse_args()
    out = Path(args.out)
    data = args.data or generate_scenes(out / "data", samples=16, progress=False)
    dataset = ReplicatorDataset(data)
    rgb, xyza, target = dataset[args.index]
    print(f"{len(dataset)} samples; sample {args.index}: rgb {tuple(rgb.shape)}, xyza {tuple(xyza.shape)}")
    for colour, centre in zip(("red", "green", "blue"), target.view(3, 3).tolist()):
        print(f"  {colour:5s} cube at ({centre[0]:+.2f}, {centre[1]:+.2f}, {centre[2]:+.2f})")
    hits = xyza[3].bool()
    print(f"  LiDAR returns: {int(hits.sum())} of {hits.numel()} beams")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5, figsize=(15, 3.4))
    axes[0].imshow(rgb.permute(1, 2, 0).clamp(0, 1).numpy())
    axes[0].set_title("RGB")
    # The LiDAR grid's rows are azimuth and its columns zenith: transposed to look like the image.
    for ax, channel, name in zip(axes[1:], xyza, ("x", "y", "z", "hit")):
        shown = channel.T.clone()
        if name != "hit":
            shown[~hits.T] = float("nan")
        image = ax.imshow(shown.numpy(), cmap="viridis")
        ax.set_title(f"LiDAR {name}")
        fig.colorbar(image, ax=ax, shrink=0.8)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / f"sample-{args.index}.png", dpi=100)
    print(f"saved {out / f'sample-{args.index}.png'}")


if __name__ == "__main__":
    main()
