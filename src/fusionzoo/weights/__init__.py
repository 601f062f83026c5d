"""Weights on disk: safetensors checkpoints and training states, partial loading for fine-tuning,
and the course notebook's own weights renamed for the zoo's models."""

from __future__ import annotations

from .checkpoint import load, read_weights, save
from .course import convert_course_state_dict
from .finetune import LoadReport, freeze, load_branch, load_matching, load_weights, param_groups, unfreeze

__all__ = ["LoadReport", "convert_course_state_dict", "freeze", "load", "load_branch", "load_matching", "load_weights",
           "param_groups", "read_weights", "save", "unfreeze"]
