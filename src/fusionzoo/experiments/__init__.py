"""Experiments over the zoo: the notebook's comparison (``compare``), its reports (``report``), and
the models' robustness to degraded or failed sensors (``robustness``), and the catalogue's
weights built by their recipe (``pretrain``)."""

from __future__ import annotations

from .._deprecated import renamed
from .comparison import COURSE_MODELS, PRESETS, Preset, RunResult, best_runs, compare
from .pretrain import Pretrained, pretrain
from .report import format_table, model_table, plot_curves, render_table, summarise, write_results_csv, write_results_markdown
from .robustness import (RobustnessResult, evaluate_robustness, format_robustness, plot_robustness, read_robustness_csv,
                         robustness_of_runs, summarise_robustness, write_robustness_csv, write_robustness_markdown)

__all__ = ["COURSE_MODELS", "PRESETS", "Preset", "Pretrained", "RobustnessResult", "RunResult", "best_runs", "compare", "evaluate_robustness",
           "format_robustness", "format_table", "model_table", "plot_curves", "plot_robustness", "pretrain", "read_robustness_csv",
           "render_table", "robustness_of_runs", "summarise", "summarise_robustness", "write_results_csv", "write_results_markdown",
           "write_robustness_csv", "write_robustness_markdown"]

__getattr__ = renamed(__name__, {"SEED_MODELS": ("fusionzoo.experiments.COURSE_MODELS", lambda: COURSE_MODELS)})
