"""The regularised recipe's ablation (issue #24, part 4): what each ingredient gives, under the
course's protocol, on ``matmul`` and on the leaderboard's best model at ``matmul``'s budget.

Protocol: the course's (9,999 samples of the default cubes scene, the course's split: 9,679
train, the last 320 validate; 20 epochs; batch 32; Adam at 1e-4 unless an ingredient changes it;
fp32), ``--seeds`` 0 1 2. Two bases:

- ``matmul``: the course's model (6,616,659 parameters);
- ``winner``: ``bilinear`` with ``feature_norm`` and ``hidden=[996,100]`` (6,610,483 parameters),
  docs/leaderboard.md's best under this protocol (0.231 ± 0.015 against ``matmul``'s 0.387 ± 0.015).

On each base: the base alone, each ingredient alone, and the combined ingredients (``--combine``;
the default set's row and folder are ``all``, another set's are named after it, e.g. ``wd+mirror``):

- ``wd``: AdamW's weight decay (``--weight-decay``, default 0.5: at lr 1e-4 a weight shrinks by
  5e-5 of itself per step, AdamW's usual 0.05 at lr 1e-3);
- ``hd``: dropout after each hidden layer of the head (``--head-dropout``, default 0.2);
- ``mirror``: mirrored samples, labels included (``--mirror``, default 0.5);
- ``cosine``: a cosine learning-rate decay after a linear warm-up (``--warmup``, default 1 epoch),
  peak at the protocol's rate;
- ``ema``: validation and checkpoints on a moving average of the weights (``--ema``, default 0.999,
  about 3 epochs of 302 steps);
- ``md``: modality dropout (``--modality-dropout``, default 0.1), measured alone: it is a
  robustness recipe, not expected to lower the clean error, and left out of the combination
  unless ``--combine`` names it;
- ``lr``: a higher (peak) learning rate (``--high-lr``, default 3e-4 against the protocol's
  ``--lr``), left out of the default combination, which was measured at the course's rate; the
  named winner's recipe is ``--combine lr mirror cosine`` (its row and folder ``lr+mirror+cosine``).

Then the other-scene check: the base and the combination of both bases again on a differently
generated scene (three spheres, generator seed 1), so a gain is not tuned to one dataset.
``--scenes course`` or ``--scenes other`` runs one of the two.

Every run is a ``fusionzoo.experiments.compare`` run in ``OUT/SCENE/BASE/VARIANT/MODEL/seedS``: a
finished run is read, an interrupted one continued, so the script resumes where it stopped (and
several copies may run side by side on disjoint ``--bases``/``--variants``). It writes
``OUT/ablation.csv`` (one row per run) and ``OUT/ablation.md`` (mean ± sample std over seeds of the
best and final validation MSE, the final validation/training loss ratio, the change against the
base, and each variant's equivalent ``fusionzoo compare`` command), and prints the table.

Run it (the course's protocol: 66 runs, meant for a GPU; on 2 CPU cores a winner run takes about
35 minutes at one thread with another beside it)::

    python benchmarks/ablation.py --out runs/ablation
    python benchmarks/ablation.py --out runs/ablation --bases winner --variants base all   # a part
    python benchmarks/ablation.py --out runs/ablation --bases winner --variants base all --combine lr mirror cosine  # the recipe
    python benchmarks/ablation.py --out runs/gpu --device cuda --jobs 16 --combine lr mirror cosine  # 16 runs at once on one GPU

``--jobs N`` runs N (variant, seed) runs side by side, each a child process of this script with
its log in ``OUT/logs/``, ``OMP_NUM_THREADS`` = cores / N unless set; the scenes are generated
once first. On an H200 with 16 CPU cores, 16 runs at once take about 140 s each.

Smoke test (400 samples of 16 x 16, 1 epoch, one seed; 1.5 minutes on 2 shared CPU cores)::

    python benchmarks/ablation.py --quick --out /tmp/ablation-quick
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fusionzoo.data import course_splits
from fusionzoo.experiments import RunResult, compare, render_table
from fusionzoo.sim import generate_scenes
from fusionzoo.training.rundir import RunFolder
from fusionzoo.weights import read_weights

BASES = {
    "matmul": ("matmul", {}),
    "winner": ("bilinear", {"feature_norm": True, "hidden": [996, 100]}),
}
INGREDIENTS = ("lr", "wd", "hd", "mirror", "cosine", "ema", "md")
COMBINED = ("wd", "hd", "mirror", "cosine", "ema")
#: The other-scene check's scene: the generator's knobs that differ from the default scene's.
OTHER_SCENE, OTHER_SCENE_NAME = {"shapes": ("sphere", "sphere", "sphere"), "seed": 1}, "spheres-seed1"


@dataclass(frozen=True)
class Variant:
    """One row of the ablation: a base model, its options, and ``fit``'s options."""

    scene: str
    base: str
    name: str
    model: str
    #: The ``--variants`` choice that selects this row (``all`` for a combination).
    choice: str
    model_options: dict[str, Any] = field(default_factory=dict)
    fit_options: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        return self.scene, self.base, self.name

    @property
    def folder(self) -> Path:
        return Path(self.scene) / self.base / self.name

    def fit(self, args: argparse.Namespace) -> dict[str, Any]:
        """``compare``'s training options: the protocol's rate unless an ingredient raises it."""
        return {"lr": args.lr, **self.fit_options}

    def command(self, args: argparse.Namespace, data: Path) -> str:
        """The ``fusionzoo compare`` command that trains this variant's runs."""
        sets = [f"--set {k}={_cli_value(v)}" for k, v in self.model_options.items()]
        flags = [f"--{k.replace('_', '-')} {v:g}" if isinstance(v, float) else f"--{k.replace('_', '-')} {v}"
                 for k, v in self.fit(args).items()]
        size = [] if args.image_size == 64 else [f"--image-size {args.image_size}"]
        return " ".join([f"fusionzoo compare --data {data} --models {self.model}", *sets, *size, f"--epochs {args.epochs}",
                         *flags, "--seeds", *map(str, args.seeds), f"--out {args.out / self.folder}"])


def _cli_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "'[" + ",".join(map(str, value)) + "]'"
    return str(value)


def ingredient(name: str, args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    """The model options and ``fit`` options one ingredient adds."""
    return {
        "lr": ({}, {"lr": args.high_lr}),
        "wd": ({}, {"weight_decay": args.weight_decay}),
        "hd": ({"head_dropout": args.head_dropout}, {}),
        "mirror": ({}, {"mirror": args.mirror}),
        "cosine": ({}, {"schedule": "cosine", "warmup": args.warmup}),
        "ema": ({}, {"ema": args.ema}),
        "md": ({}, {"modality_dropout": args.modality_dropout}),
    }[name]


def variants(args: argparse.Namespace) -> list[Variant]:
    """Every variant the arguments ask for, in table order."""
    chosen: list[Variant] = []
    # A combination other than the default gets its own folder and row, so it never reads another's runs.
    combined = "all" if set(args.combine) == set(COMBINED) else "+".join(n for n in INGREDIENTS if n in args.combine)
    for scene, names in (("course", ["base", *INGREDIENTS, "all"]), ("other", ["base", "all"])):
        if scene not in args.scenes:
            continue
        for base in args.bases:
            model, options = BASES[base]
            for name in names:
                if args.variants and name not in args.variants:
                    continue
                extra_model, extra_fit = {}, {}
                for part in args.combine if name == "all" else ([] if name == "base" else [name]):
                    m, f = ingredient(part, args)
                    extra_model.update(m)
                    extra_fit.update(f)
                chosen.append(Variant(scene, base, combined if name == "all" else name, model, name,
                                      {**options, **extra_model}, extra_fit))
    return chosen


def scene_knobs(args: argparse.Namespace, scene: str) -> tuple[Path, dict[str, Any]]:
    """Where the dataset of ``scene`` lies and the generator's knobs that make it: the default cubes
    scene (where ``fusionzoo compare`` generates it), or the other scene."""
    knobs: dict[str, Any] = {"samples": args.samples, "image_size": args.image_size,
                             "lidar_grid": (args.image_size, args.image_size)}
    name = f"cubes-{args.samples}"
    if scene == "other":
        knobs.update(OTHER_SCENE)
        name = f"{OTHER_SCENE_NAME}-{args.samples}"
    if args.image_size != 64:
        name += f"-{args.image_size}px"
    return args.data_dir / name, knobs


def scene_folder(args: argparse.Namespace, scene: str) -> Path:
    """The dataset of ``scene``, generated unless it is there."""
    folder, knobs = scene_knobs(args, scene)
    return generate_scenes(folder, progress=not args.no_progress, **knobs)


def run(args: argparse.Namespace) -> tuple[list[tuple[Variant, RunResult, float]], dict[str, Path]]:
    """Train (or read) every variant's runs; returns ``(variant, result, final valid/train loss)``
    per run, and each scene's folder."""
    rows: list[tuple[Variant, RunResult, float]] = []
    folders: dict[str, Path] = {}
    splits: dict[str, Any] = {}
    for variant in variants(args):
        if variant.scene not in splits:
            folders[variant.scene] = scene_folder(args, variant.scene)
            splits[variant.scene] = course_splits(folders[variant.scene], image_size=args.image_size)
        train, valid = splits[variant.scene]
        print(f"== {variant.scene} / {variant.base} / {variant.name}", flush=True)
        results, histories = compare(
            train, valid, [variant.model], epochs=args.epochs, seeds=args.seeds, out=args.out / variant.folder,
            model_options=variant.model_options, batch_size=32, device=args.device,
            progress=False if args.no_progress else None, **variant.fit(args),
        )
        for result in results:
            last = histories[(result.model, result.seed)].epochs[-1]
            rows.append((variant, result, last.valid_loss / last.train_loss))
    return rows, folders


def run_side_by_side(args: argparse.Namespace, argv: list[str]) -> tuple[list[tuple[Variant, RunResult, float]], dict[str, Path]]:
    """``run`` with each run a process of its own, ``--jobs`` at a time: one small model's steps
    leave a GPU mostly idle, so runs side by side finish sooner than one after another. Each
    child is this script with ``argv`` narrowed to one scene, base, variant and seed (its log in
    ``OUT/logs``). Runs start base and combination first, then ingredient by ingredient over both
    bases, so a deadline cuts the rows the goal is judged by last. Returns ``finished``'s rows."""
    chosen = variants(args)
    for scene in dict.fromkeys(v.scene for v in chosen):
        course_splits(scene_folder(args, scene), image_size=args.image_size)  # generate and cache once, not per child
    priority = ["base", "all", *INGREDIENTS]
    tasks = sorted(((v, seed) for v in chosen for seed in args.seeds),
                   key=lambda t: (t[0].scene != "course", priority.index(t[0].choice), t[1], t[0].base))
    logs = args.out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // args.jobs)))  # cores shared, not oversubscribed

    def one(task: tuple[Variant, int]) -> int:
        variant, seed = task
        name = f"{variant.scene}-{variant.base}-{variant.name}-seed{seed}"
        child = [sys.executable, str(Path(__file__).resolve()), *argv, "--scenes", variant.scene, "--bases", variant.base,
                 "--variants", variant.choice, "--seeds", str(seed), "--jobs", "1", "--no-progress"]
        start = time.perf_counter()
        with open(logs / f"{name}.log", "w") as log:
            code = subprocess.run(child, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
        print(f"{'done' if code == 0 else f'FAILED ({code})'}: {name} in {time.perf_counter() - start:.0f} s"
              + ("" if code == 0 else f", see {logs / name}.log"), flush=True)
        return code

    with ThreadPoolExecutor(args.jobs) as pool:
        codes = list(pool.map(one, tasks))
    if any(codes):
        print(f"{sum(1 for c in codes if c)} of {len(codes)} runs failed", file=sys.stderr)
    return finished(args)


def finished(args: argparse.Namespace) -> tuple[list[tuple[Variant, RunResult, float]], dict[str, Path]]:
    """``run``'s rows for the finished runs alone (``--report``): nothing is trained or generated, and
    a seed not finished yet (not started, or training elsewhere) is left out of its row."""
    rows: list[tuple[Variant, RunResult, float]] = []
    for variant in variants(args):
        for seed in args.seeds:
            folder = RunFolder(args.out / variant.folder / variant.model / f"seed{seed}")
            history = folder.finished_history(args.epochs)
            if history is None:
                continue
            parameters = sum(t.numel() for t in read_weights(folder.best).values())
            last = history.epochs[-1]
            rows.append((variant, RunResult.from_history(variant.model, seed, parameters, history, folder.best),
                         last.valid_loss / last.train_loss))
    return rows, {scene: scene_knobs(args, scene)[0] for scene in args.scenes}


def _mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _cell(values: list[float], digits: int) -> str:
    """Mean ± sample std over the seeds (the mean alone for one seed)."""
    mean, sd = _mean_sd(values)
    return f"{mean:.{digits}f}" + (f" ± {sd:.{digits}f}" if len(values) > 1 else "")


def table(rows: list[tuple[Variant, RunResult, float]]) -> str:
    """The Markdown table: one row per variant, figures over its seeds; the change is against
    the same base's ``base`` variant on the same scene."""
    grouped: dict[tuple[str, str, str], list[tuple[RunResult, float]]] = {}
    named = {variant.key: variant for variant, _, _ in rows}
    for variant, result, gap in rows:
        grouped.setdefault(variant.key, []).append((result, gap))
    means = {key: _mean_sd([r.best_valid_mse for r, _ in runs])[0] for key, runs in grouped.items()}
    lines = [("scene", "base", "variant", "parameters", "best valid MSE", "vs base", "final valid MSE",
              "final valid / train loss", "per seed (best valid MSE)")]
    for key, runs in grouped.items():
        variant = named[key]
        reference = means.get((variant.scene, variant.base, "base"))
        change = "-" if reference is None or variant.name == "base" else f"{means[key] / reference - 1:+.1%}"
        lines.append((variant.scene, variant.base, variant.name, f"{runs[0][0].parameters:,}",
                      _cell([r.best_valid_mse for r, _ in runs], 3), change, _cell([r.final_valid_mse for r, _ in runs], 3),
                      _cell([g for _, g in runs], 2), ", ".join(f"{r.best_valid_mse:.3f}" for r, _ in runs)))
    return render_table(lines, markdown=True)


def write(rows: list[tuple[Variant, RunResult, float]], folders: dict[str, Path], args: argparse.Namespace) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    with open(args.out / "ablation.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["scene", "base", "variant", "model", "seed", "parameters", "best_valid_mse", "best_epoch",
                         "final_valid_mse", "final_valid_over_train", "position_error", "train_seconds", "checkpoint"])
        for v, r, gap in rows:
            writer.writerow([v.scene, v.base, v.name, r.model, r.seed, r.parameters, r.best_valid_mse, r.best_epoch,
                             r.final_valid_mse, gap, r.position_error, r.train_seconds, r.checkpoint])
    commands = "\n".join(dict.fromkeys(v.command(args, folders[v.scene]) for v, _, _ in rows))
    (args.out / "ablation.md").write_text(f"{table(rows)}\n\n```bash\n{commands}\n```\n")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--out", type=Path, default=Path("runs/ablation"), help="output folder (default runs/ablation)")
    p.add_argument("--data-dir", type=Path, default=Path("data"), help="where the scenes are generated (default data)")
    p.add_argument("--bases", nargs="+", choices=list(BASES), default=list(BASES))
    p.add_argument("--variants", nargs="+", choices=["base", *INGREDIENTS, "all"], help="only these variants (default: all)")
    p.add_argument("--combine", nargs="+", choices=INGREDIENTS, default=list(COMBINED),
                   help=f"the ingredients of the 'all' variant (default: {' '.join(COMBINED)}); "
                        "another set is named after its ingredients, e.g. 'wd+mirror'")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--samples", type=int, default=9999)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-4, help="the (peak) learning rate of every run but the 'lr' ingredient's (default the course's 1e-4)")
    p.add_argument("--high-lr", type=float, default=3e-4, help="the 'lr' ingredient's (peak) learning rate (default 3e-4)")
    p.add_argument("--weight-decay", type=float, default=0.5)
    p.add_argument("--head-dropout", type=float, default=0.2)
    p.add_argument("--mirror", type=float, default=0.5)
    p.add_argument("--warmup", type=float, default=1.0, help="epochs of warm-up of the cosine schedule")
    p.add_argument("--ema", type=float, default=0.999)
    p.add_argument("--modality-dropout", type=float, default=0.1)
    p.add_argument("--device", default="auto")
    p.add_argument("--scenes", nargs="+", choices=["course", "other"], default=["course", "other"],
                   help="the course's scene (every variant) and the other-scene check (base and combination); default both")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs trained side by side, each in its own process (default 1: one after another in this one)")
    p.add_argument("--report", action="store_true",
                   help="train nothing: the table of the runs already finished (unfinished seeds left out)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 400 samples of 16 x 16, 1 epoch, seed 0 (unless given otherwise)")
    args = p.parse_args(argv)
    if args.jobs < 1:
        p.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.quick:
        given = set(argv if argv is not None else sys.argv[1:])
        for flag, name, value in (("--samples", "samples", 400), ("--image-size", "image_size", 16),
                                  ("--epochs", "epochs", 1), ("--seeds", "seeds", [0])):
            if flag not in given:
                setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # fit's per-epoch lines
    if args.report:
        rows, folders = finished(args)
    elif args.jobs > 1:
        rows, folders = run_side_by_side(args, argv)
    else:
        rows, folders = run(args)
    write(rows, folders, args)
    print(table(rows))
    print(f"\n{args.out / 'ablation.csv'} (one row per run), {args.out / 'ablation.md'} (the table and the commands)")
    return 0 if all(math.isfinite(r.best_valid_mse) for _, r, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
