"""Reports of a comparison: its table (text, Markdown, CSV), the zoo's table, and the validation curves.

One table renderer serves every table; plots draw on their own ``matplotlib.figure.Figure``, never
on pyplot's global state or backend.
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Collection, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .._files import atomic_path
from ..registry import info
from ..training import History
from .comparison import RunResult

# The notebook's final graph colours, so the plot reads like the course's.
COLOURS = {"early": "goldenrod", "late": "green", "concat": "blue", "matmul": "orchid", "rgb": "tab:red", "lidar": "tab:purple"}


def render_table(rows: Sequence[Sequence[str]], *, markdown: bool = False, right: Collection[int] = ()) -> str:
    """``rows`` (the first is the header) as a Markdown table, or as fixed-width text in which the
    columns numbered in ``right`` are right-aligned (figures) and the others left-aligned."""
    if markdown:
        lines = [rows[0], ["---"] * len(rows[0]), *rows[1:]]
        return "\n".join("| " + " | ".join(line) + " |" for line in lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
        for row in rows
    )


def model_table(names: Sequence[str], markdown: bool = False) -> str:
    """A table of models: name, parameters, inputs, what each reproduces (from the registry)."""
    rows = [("model", "parameters", "inputs", "reproduces")]
    for name in names:
        i = info(name)
        inputs = " + ".join(f"{k} {'x'.join(map(str, v))}" for k, v in i.inputs.items())
        rows.append((name, f"{i.num_params:,}", inputs, i.reproduces or "-"))
    return render_table(rows, markdown=markdown)


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
    return render_table(lines, markdown=markdown, right=range(1, len(header)))


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
        from matplotlib.figure import Figure
    except ImportError:
        return None
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
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
    with atomic_path(path) as temporary:
        fig.savefig(temporary, dpi=120, format=path.suffix.lstrip(".") or "png")
    return path
