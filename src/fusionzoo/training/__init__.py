"""The training runtime: ``fit`` and ``evaluate``, the run folder they write, devices across processes."""

from __future__ import annotations

from .fit import EpochRecord, Evaluation, History, evaluate, fit

__all__ = ["EpochRecord", "Evaluation", "History", "evaluate", "fit"]
