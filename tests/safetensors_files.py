"""Test helper: a safetensors file written again with changed metadata or tensors, as an older or
damaged checkpoint would look."""

from __future__ import annotations

from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file


def rewrite(path: Path, target: Path, tensors=None, **metadata_changes) -> Path:
    """Copy ``path`` to ``target`` (may be ``path``) with ``metadata_changes`` applied and the tensors
    passed through ``tensors`` if given."""
    with safe_open(str(path), framework="pt") as f:
        metadata = {**f.metadata(), **metadata_changes}
        stored = {k: f.get_tensor(k) for k in f.keys()}
    save_file(tensors(stored) if tensors else stored, str(target), metadata=metadata)
    return target
