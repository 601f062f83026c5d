"""Robustness of trained models: validation MSE under every corruption of ``fusionzoo.robustness`` at
every severity, and its report (tables, CSV, Markdown, the error-against-severity plot).

A model's relative robustness under a corruption at a severity is its clean MSE divided by its
corrupted MSE: 1.0 is unaffected, 0.5 is twice the error. Per corruption it is averaged over the
severities; the model's mean is the average over the corruptions (each counts once, whatever its
family).
"""

from __future__ import annotations

import csv
import logging
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from .._files import atomic_path
from ..data.samples import Samples, TensorSamples
from ..robustness import FAMILIES, MAX_SEVERITY, corrupt, get_corruption, list_corruptions
from ..training import evaluate
from ..weights import load, read_record
from .comparison import RunResult
from .report import COLOURS, render_table

log = logging.getLogger(__name__)

CLEAN = "clean"


@dataclass(frozen=True)
class RobustnessResult:
    """One model's validation figures under one corruption at one severity (``corruption`` is
    ``"clean"`` and ``severity`` 0 for the uncorrupted data). ``relative``: clean MSE / MSE."""

    model: str
    seed: int | None
    corruption: str
    family: str
    severity: int
    mse: float
    position_error: float | None
    clean_mse: float

    @property
    def relative(self) -> float:
        return self.clean_mse / self.mse if self.mse > 0 else float("inf")


def evaluate_robustness(
    models: Mapping[str, nn.Module] | Mapping[tuple[str, int | None], nn.Module],
    data: Samples | TensorSamples,
    *,
    corruptions: Sequence[str] | None = None,
    severities: Sequence[int] = tuple(range(1, MAX_SEVERITY + 1)),
    seed: int = 0,
    device: str | torch.device | None = None,
    batch_size: int | None = None,
) -> list[RobustnessResult]:
    """Every model's MSE on ``data`` (all samples, e.g. the validation split) clean and under each of
    ``corruptions`` (default: all) at each of ``severities``, corrupting with ``seed``.

    ``models`` maps a label (or a ``(label, seed)`` pair, for runs of one model under several seeds)
    to a model; they must read inputs of the data's size. Each corrupted copy of the data is made
    once and shared by every model, so all models see the same corrupted samples.
    """
    names = list(corruptions) if corruptions is not None else list_corruptions()
    for name in names:
        get_corruption(name)  # an unknown name fails before any evaluation
    keyed = {(k if isinstance(k, tuple) else (k, None)): m for k, m in models.items()}
    if not keyed:
        raise ValueError("models: give at least one model to evaluate")
    rgb, xyza, targets = data.batch(torch.arange(len(data)))
    clean = {key: evaluate(model, TensorSamples(rgb, xyza, targets), device=device, batch_size=batch_size)
             for key, model in keyed.items()}
    results = [RobustnessResult(label, s, CLEAN, CLEAN, 0, e.loss, e.position_error, e.loss) for (label, s), e in clean.items()]
    for name in names:
        family = get_corruption(name).family
        for severity in severities:
            corrupted = TensorSamples(*corrupt(name, rgb, xyza, severity=severity, seed=seed), targets)
            for (label, s), model in keyed.items():
                e = evaluate(model, corrupted, device=device, batch_size=batch_size)
                results.append(RobustnessResult(label, s, name, family, severity, e.loss, e.position_error, clean[(label, s)].loss))
            log.info("%s, severity %d: evaluated %d models", name, severity, len(keyed))
    return results


def summarise_robustness(results: Sequence[RobustnessResult]) -> list[dict[str, float | str | int]]:
    """One row per model (means over its seeds): ``clean_mse``, ``mean_relative`` (over the
    corruptions of the mean over severities of clean / corrupted MSE), ``FAMILY_relative`` and
    ``CORRUPTION`` (the mean relative robustness) for each family and corruption, and
    ``FAMILY_mse`` (the mean corrupted MSE over the family's corruptions and severities); with
    several seeds also ``clean_mse_sd`` and ``mean_relative_sd``, the sample standard deviations of
    the per-seed figures. Most robust model first."""
    rows = []
    for model in dict.fromkeys(r.model for r in results):
        mine = [r for r in results if r.model == model]
        seeds = list(dict.fromkeys(r.seed for r in mine))
        row: dict[str, float | str | int] = {"model": model, "seeds": len(seeds),
                                             "clean_mse": statistics.fmean(r.mse for r in mine if r.corruption == CLEAN)}
        per_corruption = _relative_by_corruption(mine)
        row.update(per_corruption)
        for family in FAMILIES:
            values = [v for name, v in per_corruption.items() if get_corruption(name).family == family]
            if values:
                row[f"{family}_relative"] = statistics.fmean(values)
                row[f"{family}_mse"] = statistics.fmean(r.mse for r in mine if r.family == family)
        row["mean_relative"] = statistics.fmean(per_corruption.values()) if per_corruption else 1.0
        if len(seeds) > 1:
            by_seed = [[r for r in mine if r.seed == seed] for seed in seeds]
            row["clean_mse_sd"] = statistics.stdev(statistics.fmean(r.mse for r in rs if r.corruption == CLEAN)
                                                   for rs in by_seed)
            row["mean_relative_sd"] = statistics.stdev(statistics.fmean(_relative_by_corruption(rs).values() or [1.0])
                                                       for rs in by_seed)
        rows.append(row)
    return sorted(rows, key=lambda r: -float(r["mean_relative"]))


def _relative_by_corruption(results: Sequence[RobustnessResult]) -> dict[str, float]:
    """Each corruption's relative robustness in ``results``, the mean over its severities (and seeds)."""
    return {name: statistics.fmean(r.relative for r in results if r.corruption == name)
            for name in dict.fromkeys(r.corruption for r in results if r.corruption != CLEAN)}


def format_robustness(results: Sequence[RobustnessResult], markdown: bool = False) -> str:
    """Two tables: per model its clean MSE, its mean corrupted MSE and relative robustness per family,
    and its mean relative robustness (most robust first); then per corruption each model's relative
    robustness (mean over severities)."""
    rows = summarise_robustness(results)
    families = [f for f in FAMILIES if any(f"{f}_relative" in r for r in rows)]
    header = ["model", "seeds", "clean MSE", *(f"{f} MSE" for f in families), *(f"{f} relative" for f in families),
              "mean relative robustness"]
    summary = [header] + [
        [str(r["model"]), str(r["seeds"]), _spread(r, "clean_mse"), *(f"{r[f'{f}_mse']:.3f}" for f in families),
         *(f"{r[f'{f}_relative']:.3f}" for f in families), _spread(r, "mean_relative")]
        for r in rows
    ]
    corruptions = list(dict.fromkeys(r.corruption for r in results if r.corruption != CLEAN))
    detail = [["corruption", *(str(r["model"]) for r in rows)]] + [
        [name, *(f"{r[name]:.3f}" for r in rows)] for name in corruptions
    ]
    right = range(1, len(header))
    return (render_table(summary, markdown=markdown, right=right) + "\n\n"
            + render_table(detail, markdown=markdown, right=range(1, len(detail[0]))))


def _spread(row: Mapping[str, object], name: str) -> str:
    """``row[name]``, with ``± sd`` over the seeds when the row has several."""
    sd = row.get(f"{name}_sd")
    return f"{row[name]:.3f}" + ("" if sd is None else f" ± {sd:.3f}")


def write_robustness_csv(results: Sequence[RobustnessResult], path: str | Path) -> Path:
    """One row per (model, seed, corruption, severity) with its MSE, position error, clean MSE and
    relative robustness."""
    path = Path(path)
    fields = [*RobustnessResult.__dataclass_fields__, "relative"]
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows({**asdict(r), "relative": r.relative} for r in results)
    return path


def read_robustness_csv(path: str | Path) -> list[RobustnessResult]:
    """The results a ``write_robustness_csv`` file holds, e.g. to report evaluations made apart
    together (each model's figures depend only on the data and the corruption seed)."""
    def number(text: str) -> float | None:
        return float(text) if text not in ("", "None") else None

    with open(path, newline="") as f:
        return [
            RobustnessResult(row["model"], int(row["seed"]) if row["seed"] not in ("", "None") else None, row["corruption"],
                             row["family"], int(row["severity"]), float(row["mse"]), number(row["position_error"]),
                             float(row["clean_mse"]))
            for row in csv.DictReader(f)
        ]


def write_robustness_markdown(results: Sequence[RobustnessResult], path: str | Path) -> Path:
    """The Markdown tables of ``format_robustness``, for pasting into a leaderboard."""
    path = Path(path)
    with atomic_path(path) as temporary:
        temporary.write_text(format_robustness(results, markdown=True) + "\n")
    return path


def plot_robustness(results: Sequence[RobustnessResult], path: str | Path) -> Path | None:
    """Validation MSE against severity, one panel per corruption family (the mean over its
    corruptions; severity 0 is the clean data), one line per model (mean over seeds). Returns
    ``None`` when matplotlib is not installed."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    families = [f for f in FAMILIES if any(r.family == f for r in results)]
    fig = Figure(figsize=(4.2 * max(1, len(families)), 4.2))
    axes = fig.subplots(1, max(1, len(families)), sharey=True, squeeze=False)[0]
    models = list(dict.fromkeys(r.model for r in results))
    # A variant of a model ("matmul+md") keeps its model's colour, dashed; the course's models keep the
    # notebook's colours.
    bases = list(dict.fromkeys(m.split("+")[0].split("/")[0] for m in models))
    others = iter(["tab:brown", "tab:cyan", "tab:olive", "tab:gray", "black", "tab:orange", "tab:pink"] * len(bases))
    colours = {b: COLOURS.get(b) or next(others) for b in bases}
    for ax, family in zip(axes, families):
        severities = sorted({r.severity for r in results if r.family == family})
        for model in models:
            clean = statistics.fmean(r.mse for r in results if r.model == model and r.corruption == CLEAN)
            means = [statistics.fmean(r.mse for r in results if r.model == model and r.family == family and r.severity == s)
                     for s in severities]
            base = model.split("+")[0].split("/")[0]
            ax.plot([0, *severities], [clean, *means], marker="o", label=model, color=colours[base],
                    linestyle="-" if model == base else "--")
        names = ", ".join(n.removeprefix(f"{family}_") for n in dict.fromkeys(r.corruption for r in results if r.family == family))
        ax.set_title(f"{family}\n({names})", fontsize=8)
        ax.set_xlabel("severity")
    axes[0].set_ylabel("validation MSE (mean over the family's corruptions)")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    with atomic_path(path) as temporary:
        fig.savefig(temporary, dpi=120, format=path.suffix.lstrip(".") or "png")
    return path


def checkpoint_of(path: str | Path) -> Path:
    """The checkpoint ``path`` names: a ``.safetensors`` file as it is, or a run folder's
    ``best.safetensors``; ``FileNotFoundError`` saying what was expected otherwise."""
    path = Path(path)
    if path.is_file():
        return path
    best = path / "best.safetensors"
    if path.is_dir() and best.is_file():
        return best
    what = "a folder without best.safetensors" if path.is_dir() else "not there"
    raise FileNotFoundError(f"{path}: {what}; give a .safetensors checkpoint or a run folder (e.g. runs/compare/matmul/seed0)")


def load_labelled(paths: Sequence[Path], labels: Sequence[str]) -> dict[tuple[str, int | None], nn.Module]:
    """The checkpoints ``paths`` loaded under ``labels`` (one each). A label given to several
    checkpoints names one model trained with several seeds: each is keyed by the seed its record
    says it was trained with, so the tables give that model's mean and spread over them.
    ``ValueError`` when such a checkpoint records no seed, or two record the same one."""
    if len(labels) != len(paths):
        raise ValueError(f"--labels: {len(labels)} labels for {len(paths)} checkpoints; give one per checkpoint")
    models: dict[tuple[str, int | None], nn.Module] = {}
    for label, path in zip(labels, paths):
        seed = None
        if labels.count(label) > 1:
            seed = (read_record(path).record.recipe or {}).get("seed")
            if not isinstance(seed, int):
                raise ValueError(f"{path}: its record names no training seed, so it cannot be told apart from the other "
                                 f"checkpoints labelled {label!r}; give it a label of its own")
            if (label, seed) in models:
                raise ValueError(f"{path}: another checkpoint labelled {label!r} was also trained with seed {seed}; a "
                                 "label given to several checkpoints stands for one model under several seeds")
        models[(label, seed)] = load(path)
    return models


def labels_of(paths: Sequence[str | Path]) -> list[str]:
    """Short distinct labels for checkpoints: the fewest trailing path parts (without a
    ``best.safetensors`` file name or a ``.safetensors`` suffix) that tell them apart."""
    parts = []
    for path in paths:
        path = Path(path)
        if path.name == "best.safetensors":
            path = path.parent
        parts.append([*path.parent.parts, path.name.removesuffix(".safetensors")])
    for count in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-count:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    return [str(p) for p in paths]


def robustness_of_runs(results: Sequence[RunResult], data: Samples | TensorSamples, **options: object) -> list[RobustnessResult]:
    """``evaluate_robustness`` of each run of a comparison (its best checkpoint), labelled by model
    and seed; ``options`` go to ``evaluate_robustness``."""
    models = {(r.model, r.seed): load(r.checkpoint) for r in results}
    return evaluate_robustness(models, data, **options)  # type: ignore[arg-type]


def corruption_table(markdown: bool = True) -> str:
    """The corruptions' parameters at each severity, from the registry (docs/robustness.md holds it)."""

    def cell(value: object) -> str:
        return ", ".join(f"{v:g}" for v in value) if isinstance(value, tuple) else f"{value:g}"  # type: ignore[str-format]

    rows = [["corruption", "family", "parameter (unit)", *(f"severity {s}" for s in range(1, MAX_SEVERITY + 1)), "what it does"]]
    for name in list_corruptions():
        c = get_corruption(name)
        rows.append([f"`{name}`", c.family, f"{c.parameter} ({c.unit})", *(cell(v) for v in c.severities), c.description])
    return render_table(rows, markdown=markdown)
