"""The notebook's experiment as a library call: train several models on one split, several seeds each."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.samples import Samples
from ..factory import create
from ..registry import get_spec
from ..training import History, fit
from ..training.rundir import RunFolder
from ..weights.checkpoint import check_config

log = logging.getLogger(__name__)

COURSE_MODELS = ("rgb", "lidar", "early", "late", "concat", "matmul")


@dataclass(frozen=True)
class Preset:
    """How much data and training a comparison uses, and the learning rate it trains with."""

    samples: int
    epochs: int
    lr: float


PRESETS = {
    "full": Preset(samples=9999, epochs=20, lr=1e-4),  # the course's protocol
    # A fifth of the data and 8 epochs fit 2 CPU cores; so short a run needs 3x the course's lr for
    # fusion to pull ahead of the camera alone (docs/benchmarks.md measures both).
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
    models: Sequence[str] = COURSE_MODELS,
    *,
    epochs: int = 20,
    seeds: Sequence[int] = (0,),
    out: str | Path = "runs/compare",
    model_options: dict[str, Any] | None = None,
    **fit_options: Any,
) -> tuple[list[RunResult], dict[tuple[str, int], History]]:
    """Train each of ``models`` once per seed under one protocol (``fit``'s defaults: the course's).

    Each run's folder ``out/MODEL/seedS`` holds its history and best checkpoint (and, while it
    trains or with ``keep_state=True``, what continuing it needs); ``RunResult.checkpoint`` names
    it, and ``best_runs`` picks each model's best seed. A finished run is read, not redone; an
    unfinished one is continued. Returns the per-run results and histories.
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
            run = RunFolder(out / name / f"seed{seed}")
            history = _finished_without_state(run, epochs, model)
            if history is None:
                resume = run.path if run.has_state else None
                log.info("%s (seed %d), %d epochs -> %s", name, seed, epochs, run.path)
                history = fit(model, train, valid, epochs=epochs, seed=seed, checkpoint_dir=run.path, resume=resume, **fit_options)
            else:
                log.info("%s (seed %d): finished in %s, not retrained", name, seed, run.path)
            params = sum(p.numel() for p in model.parameters())
            results.append(RunResult.from_history(name, seed, params, history, run.best))
            histories[(name, seed)] = history
    return results, histories


def best_runs(results: Sequence[RunResult]) -> dict[str, RunResult]:
    """Each model's run with the lowest best validation MSE over its seeds, in the order of ``results``."""
    best: dict[str, RunResult] = {}
    for result in results:
        if result.model not in best or result.best_valid_mse < best[result.model].best_valid_mse:
            best[result.model] = result
    return best


def _finished_without_state(run: RunFolder, epochs: int, model: torch.nn.Module) -> History | None:
    """The history of a finished run of ``model``'s config whose resumable state was dropped
    (not kept when it finished); ``None`` when ``run`` holds no such run (``fit`` then starts or
    resumes it)."""
    history = run.finished_history(epochs)
    if history is not None:
        check_config(run.best, model)  # a finished run counts only for the model it trained
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
