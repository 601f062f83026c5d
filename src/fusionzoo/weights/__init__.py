"""Weights on disk: safetensors checkpoints and training states with their records, partial loading
for fine-tuning, the course notebook's own weights renamed for the zoo's models, the catalogue of
trained weights and its cache, pretrained folders in the Hugging Face layout, and the hub."""

from __future__ import annotations

from .catalog import Recipe, Weights, get_weights, list_weights, register_weights
from .checkpoint import load, read_weights, save
from .course import convert_course_state_dict
from .finetune import LoadReport, freeze, load_branch, load_matching, load_weights, param_groups, unfreeze
from .home import fusionzoo_home
from .hub import push_to_hub
from .pretrained import ModelRecord, read_record, save_pretrained
from .record import Record

__all__ = ["LoadReport", "ModelRecord", "Recipe", "Record", "Weights", "convert_course_state_dict", "freeze",
           "fusionzoo_home", "get_weights", "list_weights", "load", "load_branch", "load_matching", "load_weights",
           "param_groups", "push_to_hub", "read_record", "read_weights", "register_weights", "save", "save_pretrained",
           "unfreeze"]
