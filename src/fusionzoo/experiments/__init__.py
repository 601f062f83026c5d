"""Experiments over the zoo: the notebook's comparison (``compare``) and its reports (``report``)."""

from __future__ import annotations

from .._deprecated import renamed
from .comparison import COURSE_MODELS, PRESETS, Preset, RunResult, compare
from .report import format_table, model_table, plot_curves, render_table, summarise, write_results_csv, write_results_markdown

__all__ = ["COURSE_MODELS", "PRESETS", "Preset", "RunResult", "compare", "format_table", "model_table", "plot_curves",
           "render_table", "summarise", "write_results_csv", "write_results_markdown"]

__getattr__ = renamed(__name__, {"SEED_MODELS": ("fusionzoo.experiments.COURSE_MODELS", lambda: COURSE_MODELS)})
