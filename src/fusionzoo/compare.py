"""The notebook's experiment as a library call: train several models on one split, tabulate, plot."""

from __future__ import annotations

import csv
import logging
import math
import shutil
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from ._files import atomic_path
from .checkpoint import check_config
from .data.samples import Samples
from .distributed import is_main_process
from .errors import CheckpointError
from .registry import create, get_spec
from .train import BEST_FILE, HISTORY_FILE, STATE_FILE, History, fit

log = logging.getLogger(__name__)

SEED_MODELS = ("rgb", "lidar", "early", "late", "concat", "matmul")
# The notebook's final graph colours, so the plot reads like the course's.
COLOURS = {"early": "goldenrod", "late": "green", "concat": "blue", "matmul": "orchid", "rgb": "tab:red", "lidar": "tab:purple"}


@dataclass(frozen=True)
class Preset:
    """How much data and training a comparison uses, and the learning rate it trains with."""

    samples: int
    epochs: int
    lr: float


PRESETS = {
    "full": Preset(samples=9999, epochs=20, lr=1e-4),  # the course's protocol
    # A fifth of the data and 8 epochs fit 2 CPU cores (8.5 min); at the seed's lr so short a run leaves
    # fusion level with the camera alone, at 3x it is ahead on every seed (docs/benchmarks.md).
    "quick": Preset(samples=2000, epochs=8, lr=3e-4),
}


@dataclass(frozen=True)
class RunResult:
    """One model trained with one seed."""

    model: str
    seed: int
    parameters: int
    best_valid_mse: float
    best_epoch: int
    final_valid_mse: float
    position_error: float | None
    train_seconds: float
    checkpoint: str

    @classmethod
    def from_history(cls, model: str, seed: int, parameters: int, history: History, checkpoint: Path) -> RunResult:
        best = history.epochs[history.best_epoch - 1]
        return cls(
            model=model,
            seed=seed,
            parameters=parameters,
            best_valid_mse=float(best.valid_loss),
            best_epoch=history.best_epoch,
            final_valid_mse=float(history.epochs[-1].valid_loss),
            position_error=best.position_error,
            train_seconds=sum(e.train_seconds for e in history.epochs),
            checkpoint=str(checkpoint),
        )


def compare(
    train: Samples,
    valid: Samples,
    models: Sequence[str] = SEED_MODELS,
    *,
    epochs: int = 20,
    seeds: Sequence[int] = (0,),
    out: str | Path = "runs/compare",
    model_options: dict[str, Any] | None = None,
    **fit_options: Any,
) -> tuple[list[RunResult], dict[tuple[str, int], History]]:
    """Train each of ``models`` once per seed under one protocol (``fit``'s defaults: the seed's).

    Each run's folder ``out/MODEL/seedS`` holds its history and checkpoints; ``out/MODEL.safetensors``
    is the best checkpoint over the seeds. A run folder with a finished run is resumed, not redone
    (also when ``keep_state=False`` has dropped its state); an unfinished one is continued.
    Returns the per-run results and histories.
    """
    if not models:
        raise ValueError("models: name at least one model to compare")
    if not seeds:
        raise ValueError("seeds: give at least one seed")
    for name in models:
        get_spec(name)  # fail on an unknown name before training anything
    out = Path(out)
    results: list[RunResult] = []
    histories: dict[tuple[str, int], History] = {}
    shapes = _input_options(train)
    for name in models:
        for seed in seeds:
            torch.manual_seed(seed)
            # Options implied by the data go only to factories that take them; the caller's go to all.
            model = create(name, **{**_supported(name, shapes), **(model_options or {})})
            run_dir = out / name / f"seed{seed}"
            history = _finished_without_state(run_dir, epochs, model)
            if history is None:
                resume = run_dir if (run_dir / STATE_FILE).exists() else None
                log.info("%s (seed %d), %d epochs -> %s", name, seed, epochs, run_dir)
                history = fit(model, train, valid, epochs=epochs, seed=seed, checkpoint_dir=run_dir, resume=resume, **fit_options)
            else:
                log.info("%s (seed %d): finished in %s, not retrained", name, seed, run_dir)
            params = sum(p.numel() for p in model.parameters())
            results.append(RunResult.from_history(name, seed, params, history, run_dir / BEST_FILE))
            histories[(name, seed)] = history
        best = min((r for r in results if r.model == name), key=lambda r: r.best_valid_mse)
        if is_main_process():  # under torchrun the processes share the run folders
            shutil.copyfile(best.checkpoint, out / f"{name}.safetensors")
    return results, histories


def _finished_without_state(run_dir: Path, epochs: int, model: torch.nn.Module) -> History | None:
    """The history of a finished run of ``model``'s config whose resumable state was dropped
    (``keep_state=False``); ``None`` when ``run_dir`` holds no such run (``fit`` then starts or
    resumes it)."""
    if (run_dir / STATE_FILE).exists() or not (run_dir / HISTORY_FILE).exists():
        return None
    history = History.from_csv(run_dir / HISTORY_FILE)
    if len(history) < epochs:
        raise CheckpointError(
            f"{run_dir}: holds {len(history)} of {epochs} epochs and no {STATE_FILE} to continue from; "
            "remove the folder to train it again, or choose another output folder"
        )
    if not (run_dir / BEST_FILE).is_file():
        raise CheckpointError(f"{run_dir}: the finished run has no {BEST_FILE}")
    check_config(run_dir / BEST_FILE, model)
    return history


def _input_options(samples: Samples) -> dict[str, int]:
    """Model options that follow from the data: image size, channels, outputs."""
    rgb, xyza, target = samples[0]
    if rgb.shape[-1] != xyza.shape[-1]:
        log.warning("image size %d and LiDAR grid %d differ; two-branch models need them equal", rgb.shape[-1], xyza.shape[-1])
    return {"image_size": int(rgb.shape[-1]), "rgb_channels": int(rgb.shape[0]), "lidar_channels": int(xyza.shape[0]), "num_outputs": int(target.numel())}


def _supported(name: str, options: dict[str, Any]) -> dict[str, Any]:
    accepted = get_spec(name).defaults()
    return {k: v for k, v in options.items() if k in accepted}


def _spread(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summarise(results: Sequence[RunResult]) -> list[dict[str, Any]]:
    """One row per model: mean and spread (sample std) over seeds of each figure."""
    rows = []
    for name in dict.fromkeys(r.model for r in results):
        runs = [r for r in results if r.model == name]
        errors = [r.position_error for r in runs if r.position_error is not None]
        row: dict[str, Any] = {"model": name, "seeds": len(runs), "parameters": runs[0].parameters}
        for key, values in (
            ("best_valid_mse", [r.best_valid_mse for r in runs]),
            ("final_valid_mse", [r.final_valid_mse for r in runs]),
            ("position_error", errors),
            ("train_seconds", [r.train_seconds for r in runs]),
        ):
            row[key], row[f"{key}_std"] = _spread(values) if values else (math.nan, math.nan)
        rows.append(row)
    return rows


def format_table(results: Sequence[RunResult], markdown: bool = False) -> str:
    """The comparison as a table, best model first: fixed-width text, or Markdown (the leaderboard's
    format, docs/leaderboard.md). Figures are mean ± std over seeds where there are several, and then
    a column lists each seed's best validation MSE."""

    def cell(row: dict[str, Any], key: str, digits: int) -> str:
        mean, std = row[key], row[f"{key}_std"]
        if math.isnan(mean):
            return "-"
        return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if row["seeds"] > 1 else "")

    rows = sorted(summarise(results), key=lambda r: r["best_valid_mse"])
    per_seed = any(row["seeds"] > 1 for row in rows)
    header = ("model", "parameters", "best valid MSE", "final valid MSE", "position error", "train time (s)")
    lines = [header + (("per seed (best valid MSE)",) if per_seed else ())]
    for row in rows:
        line = (row["model"], f"{row['parameters']:,}", cell(row, "best_valid_mse", 3),
                cell(row, "final_valid_mse", 3), cell(row, "position_error", 3), cell(row, "train_seconds", 0))
        if per_seed:
            line += (", ".join(f"{r.best_valid_mse:.3f}" for r in results if r.model == row["model"]),)
        lines.append(line)
    if markdown:
        lines.insert(1, ("---",) * len(lines[0]))
        return "\n".join("| " + " | ".join(line) + " |" for line in lines)
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(
        "  ".join(c.rjust(w) if 0 < i < len(header) else c.ljust(w) for i, (c, w) in enumerate(zip(line, widths))).rstrip()
        for line in lines
    )


def write_results_csv(results: Sequence[RunResult], path: str | Path) -> Path:
    """One row per (model, seed) with every figure of ``RunResult``."""
    path = Path(path)
    # Atomic: a comparison is often rerun, or run by several processes, over one output folder.
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(RunResult.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(asdict(r) for r in results)
    return path


def write_results_markdown(results: Sequence[RunResult], path: str | Path) -> Path:
    """The Markdown table of ``format_table``, for pasting into a leaderboard."""
    path = Path(path)
    with atomic_path(path) as temporary:
        temporary.write_text(format_table(results, markdown=True) + "\n")
    return path


def plot_curves(histories: dict[tuple[str, int], History], path: str | Path) -> Path | None:
    """The notebook's final graph: validation loss per epoch, one line per model (mean over seeds,
    shaded min-max band). Returns ``None`` when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name in dict.fromkeys(m for m, _ in histories):
        curves = [[e.valid_loss for e in h.epochs] for (m, _), h in histories.items() if m == name]
        length = min(len(c) for c in curves)
        epochs = range(1, length + 1)
        mean = [statistics.fmean(c[i] for c in curves) for i in range(length)]
        ax.plot(epochs, mean, label=name, color=COLOURS.get(name))
        if len(curves) > 1:
            ax.fill_between(epochs, [min(c[i] for c in curves) for i in range(length)],
                            [max(c[i] for c in curves) for i in range(length)], color=COLOURS.get(name), alpha=0.2)
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Validation MSE")
    ax.set_title("Validation loss per epoch")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
