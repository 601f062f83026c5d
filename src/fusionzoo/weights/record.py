"""A trained file's record: what it scored, how it was made and what it takes, kept with its weights.

Three JSON objects, stored as strings in a safetensors file's metadata (safetensors stores strings
only) and as fields of a pretrained folder's ``config.json``:

- ``fusionzoo.metrics``: the figures of the weights in the file: ``epoch`` (whose weights these
  are), ``best_epoch`` (of the run so far), ``valid_mse`` (``valid_loss`` under another loss),
  ``position_error`` (mean distance of the three predicted centres, scene units) and
  ``train_loss`` at that epoch;
- ``fusionzoo.recipe``: how they were trained: the data (a generated scene's config, generator
  seed and sample count; a folder's fingerprint; ``"unrecorded"`` for data without a source), the
  split, epochs, lr, batch size, precision, device kind, world size, seed, loss, and the torch and
  fusionzoo versions;
- ``fusionzoo.data_config``: the input contract (RGB scaled to [0, 1], XYZA in scene units, image
  size, the LiDAR grid's orientation) and the outputs' names and units.

A record is untrusted input like the rest of a file: each part must be a JSON object within
``MAX_RECORD_CHARS``, and a record of a newer ``RECORD_FORMAT`` than this library reads is refused
with the fix (upgrade fusionzoo). Every failure is a ``CheckpointError`` naming the file.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._version import __version__
from ..data.course import TARGET_NAMES
from ..errors import CheckpointError

log = logging.getLogger(__name__)

METRICS, RECIPE, DATA_CONFIG = "fusionzoo.metrics", "fusionzoo.recipe", "fusionzoo.data_config"
#: The safetensors convention other loaders (transformers, timm) check: the tensors are PyTorch's.
FORMAT_KEY, FORMAT_PT = "format", "pt"
#: The record's layout; a reader refuses a newer one (``check_readable``). Bump on a change older
#: readers would misread, not on added fields.
RECORD_FORMAT = 1
#: The longest record part read: fusionzoo writes a few kilobytes (a scene config is the bulk).
MAX_RECORD_CHARS = 64 * 1024
_PARTS = {"metrics": METRICS, "recipe": RECIPE, "data_config": DATA_CONFIG}


@dataclass(frozen=True)
class Record:
    """The three parts of a file's record; a part is ``None`` when the file does not hold it (a
    model saved by hand, or a file written before records existed)."""

    metrics: dict[str, Any] | None = None
    recipe: dict[str, Any] | None = None
    data_config: dict[str, Any] | None = None

    def to_metadata(self) -> dict[str, str]:
        """The parts present, as safetensors metadata strings, with ``format: pt``."""
        metadata = {FORMAT_KEY: FORMAT_PT}
        for field, key in _PARTS.items():
            value = getattr(self, field)
            if value is not None:
                metadata[key] = json.dumps(value, sort_keys=True, allow_nan=False)
        return metadata

    @classmethod
    def from_metadata(cls, path: str | Path, metadata: Mapping[str, str]) -> Record:
        """The record in a file's ``metadata`` (parts it lacks are ``None``); ``CheckpointError``
        naming ``path`` and the key when a part is not a JSON object, too long, or of a newer format."""
        parts = {field: _parse(path, key, metadata[key]) for field, key in _PARTS.items() if key in metadata}
        record = cls(**parts)
        check_readable(path, record.recipe)
        return record

    def to_json(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "recipe": self.recipe, "data_config": self.data_config}

    @classmethod
    def from_json(cls, path: str | Path, data: Mapping[str, Any]) -> Record:
        """The record among the fields of a folder's ``config.json`` (``data``)."""
        parts = {}
        for field in _PARTS:
            value = data.get(field)
            if value is not None and not isinstance(value, dict):
                raise CheckpointError(f"{path}: {field!r} must be a JSON object, got {type(value).__name__}; the file is damaged")
            parts[field] = value
        record = cls(**parts)
        check_readable(path, record.recipe)
        return record

    def lines(self) -> list[str]:
        """The record in words, one fact a line (``fusionzoo info PATH`` prints them)."""
        lines = []
        if self.metrics:
            lines.append("  metrics:    " + ", ".join(f"{k} {_short(v)}" for k, v in sorted(self.metrics.items())))
        if self.recipe:
            shown = {k: v for k, v in self.recipe.items() if k not in ("data", "split")}
            lines.append("  recipe:     " + ", ".join(f"{k}={_short(v)}" for k, v in sorted(shown.items())))
            lines.append("  data:       " + describe_data(self.recipe.get("data")))
            lines.append("  split:      " + describe_split(self.recipe.get("split")))
        if self.data_config:
            rgb, xyza, outputs = (self.data_config.get(k) or {} for k in ("rgb", "xyza", "outputs"))
            lines.append(f"  input rgb:  {tuple(rgb.get('shape', ()))} in {rgb.get('range')}")
            lines.append(f"  input xyza: {tuple(xyza.get('shape', ()))} in {xyza.get('units')}; {xyza.get('grid')}")
            lines.append(f"  outputs:    {', '.join(outputs.get('names') or [])} ({outputs.get('units')})")
        return lines or ["  record:     none (saved without one, or before records existed)"]


def describe_data(data: Any) -> str:
    """A recipe's data in one line: the generated scene, or the folder and its fingerprint."""
    if not isinstance(data, dict):
        return str(data or "unrecorded")
    scene = (data.get("scene") or {}).get("config") if isinstance(data.get("scene"), dict) else None
    if isinstance(scene, dict):
        return (f"generated scene, {scene.get('samples')} samples, generator seed {scene.get('seed')}, "
                f"image {scene.get('image_size')}, LiDAR {scene.get('lidar_grid')}")
    return f"folder {data.get('folder')} ({data.get('samples')} samples, fingerprint {str(data.get('fingerprint'))[:12]})"


def describe_split(split: Any) -> str:
    """A recipe's split in one line: which rows train and which validate."""
    if not isinstance(split, dict):
        return str(split or "unrecorded")
    parts = []
    for part in ("train", "valid"):
        value = split.get(part)
        if isinstance(value, dict) and isinstance(value.get("rows"), list) and len(value["rows"]) == 2:
            rows = f"rows {value['rows'][0]}-{value['rows'][1]} of {value.get('of', '?')}"
            subset = f", a subset of {value['subset'].get('rows')}" if isinstance(value.get("subset"), dict) else ""
            parts.append(f"{part} {rows}{subset} ({value.get('name', 'unnamed')} split)")
        else:
            parts.append(f"{part} {_short(value) if value is not None else 'none'}")
    return "; ".join(parts)


def data_config(
    rgb_shape: Sequence[int], xyza_shape: Sequence[int], num_outputs: int, *,
    azimuth_deg: tuple[float, float] | None = None, zenith_deg: tuple[float, float] | None = None,
    rgb_from: str = "uint8 RGB(A) divided by 255",
) -> dict[str, Any]:
    """The input contract of a model fed ``(C, S, S)`` images and ``(4, H, W)`` XYZA grids, and
    the names and units of its ``num_outputs`` outputs. ``azimuth_deg``/``zenith_deg``: the first
    and last beam of the grid's rows and columns, when the data say so."""
    rows = "azimuth" + (f" {azimuth_deg[0]:+.1f} to {azimuth_deg[1]:+.1f} deg" if azimuth_deg else "")
    columns = "zenith" + (f" {zenith_deg[0]:+.1f} to {zenith_deg[1]:+.1f} deg" if zenith_deg else "")
    names = list(TARGET_NAMES) if num_outputs == len(TARGET_NAMES) else [f"output_{i}" for i in range(num_outputs)]
    return {
        "rgb": {"shape": list(rgb_shape), "dtype": "float32", "range": [0.0, 1.0], "from": rgb_from,
                "channels": ["r", "g", "b", "a"][: rgb_shape[0]] if rgb_shape and rgb_shape[0] <= 4 else None,
                "image_size": int(rgb_shape[-1]) if rgb_shape else None},
        "xyza": {"shape": list(xyza_shape), "dtype": "float32", "channels": ["x", "y", "z", "a"],
                 "units": "scene units (x, y, z: the LiDAR frame; a: 1 for a return, 0 for none)",
                 "grid": f"rows: {rows}; columns: {columns}"},
        "outputs": {"names": names, "units": "scene units" if names == list(TARGET_NAMES) else "unknown"},
    }


def check_format(path: str | Path, what: str, fmt: Any, supported: int, written_by: object) -> None:
    """Refuse a ``what`` (a record, a folder) whose format number is not a whole number, or is newer
    than the ``supported`` one this library reads (``CheckpointError`` saying to upgrade)."""
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise CheckpointError(f"{path}: the {what}'s format is {fmt!r}, not a whole number; the file is damaged")
    if fmt > supported:
        raise CheckpointError(
            f"{path}: a {what} of format {fmt}, written by fusionzoo {written_by}; this fusionzoo ({__version__}) reads "
            f"format {supported} and older. Upgrade it (pip install -U fusionzoo) to read this {what}"
        )


def check_readable(path: str | Path, recipe: Mapping[str, Any] | None, version: str | None = None) -> None:
    """Refuse a record of a newer format than this library reads (``CheckpointError`` with the fix);
    warn when only the fusionzoo that wrote it is newer, since the format still reads."""
    if recipe is None:
        return
    fmt = recipe.get("format", 1)
    written_by = version or recipe.get("fusionzoo") or "an unknown version"
    check_format(path, "record", fmt, RECORD_FORMAT, written_by)
    if is_newer(str(written_by), __version__):
        log.warning("%s: written by fusionzoo %s, newer than this %s; its record's format still reads",
                    path, written_by, __version__)


def is_newer(version: str, than: str) -> bool:
    """Whether release ``version`` (``1.2.3``, suffixes ignored) comes after ``than``; ``False`` when
    either is not a release number (``0+unknown``, a source tree never installed)."""
    a, b = _release(version), _release(than)
    return a is not None and b is not None and a > b


def _release(version: str) -> tuple[int, ...] | None:
    match = re.match(r"\s*v?(\d+(?:\.\d+)*)", version)
    if match is None or version.startswith("0+"):
        return None
    parts = [int(p) for p in match.group(1).split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def _parse(path: str | Path, key: str, text: str) -> dict[str, Any]:
    if len(text) > MAX_RECORD_CHARS:
        raise CheckpointError(f"{path}: its {key} is {len(text):,} characters long, more than the {MAX_RECORD_CHARS:,} "
                              "a record may take; the metadata was damaged or written by another tool")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise CheckpointError(f"{path}: its {key} is not JSON ({type(err).__name__}); the metadata is damaged") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: its {key} must be a JSON object, got {type(value).__name__}; the metadata is damaged")
    return value


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_short(v)}" for k, v in value.items()) + "}"
    return str(value)
