"""A pretrained folder, in the Hugging Face layout: ``config.json``, ``model.safetensors``, ``README.md``.

``config.json`` says what the folder holds: the model's name and options (enough to rebuild it),
its parameter count, the sha256 of ``model.safetensors``, the record (metrics, recipe, data
contract; ``record``), the catalogue name when it was built by ``fusionzoo pretrain`` and the
version that wrote it. ``model.safetensors`` is an ordinary fusionzoo checkpoint carrying the same
record, so it also loads alone; ``README.md`` is the model card people read on the hub.

Loading trusts nothing it has not checked: an unknown model, a ``model.safetensors`` whose sha256
or parameter count differs from ``config.json``'s, a config of a newer format: each is a
``CheckpointError`` naming the file, what is wrong and what to do. The checkpoint itself is then
read with ``checkpoint.load``'s own checks.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._files import atomic_path
from .._version import __version__
from ..errors import CheckpointError
from ..registry import ModelConfig, get_spec, list_models, model_config
from . import checkpoint, stored_config
from .record import Record, check_format, check_readable, data_config, describe_data, describe_split

CONFIG_FILE, WEIGHTS_FILE, CARD_FILE = "config.json", "model.safetensors", "README.md"
#: ``config.json``'s layout; a reader refuses a newer one.
FOLDER_FORMAT = 1
MAX_CONFIG_BYTES = 256 * 1024  # fusionzoo writes a few kilobytes
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class ModelRecord:
    """What a trained file or pretrained folder says about itself (``fusionzoo.read_record``):
    the model, its options and parameter count, the version that wrote it, its record, and for a
    folder the weights file's sha256 and catalogue name."""

    path: Path
    name: str
    options: dict[str, Any]
    version: str | None
    num_params: int | None
    record: Record = field(default_factory=Record)
    sha256: str | None = None
    weights: str | None = None

    def __str__(self) -> str:
        params = f"{self.num_params:,}" if self.num_params is not None else "unknown"
        lines = [
            f"{self.path}: {self.name}" + (f" ({self.weights})" if self.weights else ""),
            f"  parameters: {params}",
            "  options:    " + (", ".join(f"{k}={v!r}" for k, v in self.options.items()) or "-"),
            f"  written by: fusionzoo {self.version or 'unknown'}",
            *self.record.lines(),
        ]
        if self.sha256:
            lines.append(f"  sha256:     {self.sha256}")
        return "\n".join(lines)


def sha256_of(path: Path) -> str:
    """The hex sha256 of the file at ``path``, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_READ_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def save_pretrained(
    model: nn.Module | str | os.PathLike[str],
    folder: str | os.PathLike[str],
    *,
    record: Record | None = None,
    weights: str | None = None,
    command: str | None = None,
) -> Path:
    """Write ``model`` to ``folder`` as ``config.json``, ``model.safetensors`` and ``README.md``.

    ``model``: a model built by ``fusionzoo.create``, or the path of a checkpoint (a run's
    ``best.safetensors``), whose record then comes along. ``record``: the metrics, recipe and data
    contract to store (default: the checkpoint's; for a model, only the data contract its options
    imply). ``weights``: the catalogue name, and ``command`` the command that made the weights,
    for the model card. Each file is written atomically, ``config.json`` last: it holds the weights'
    sha256, so a folder whose writing was cut short fails to load instead of loading wrong weights.
    Returns the folder.
    """
    if isinstance(model, (str, os.PathLike)):
        if record is None:
            record = read_record(model).record
        model = checkpoint.load(model)
    config = model_config(model)
    record = record if record is not None else Record(data_config=_contract_of(model))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in (CONFIG_FILE, CARD_FILE):
        (folder / stale).unlink(missing_ok=True)  # no reader trusts the old config beside the new weights
    checkpoint.save(model, folder / WEIGHTS_FILE, record=record)
    params = count_parameters(model)
    document = {
        "format": FOLDER_FORMAT, "fusionzoo_version": __version__, "library_name": "fusionzoo",
        "model": config.name, "options": config.options, "num_params": params,
        "sha256": sha256_of(folder / WEIGHTS_FILE), "weights": weights, **record.to_json(),
    }
    _write_text(folder / CARD_FILE, model_card(config, params, record, weights, command))
    _write_text(folder / CONFIG_FILE, json.dumps(document, indent=2, sort_keys=True, allow_nan=False) + "\n")
    return folder


def read_config(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """``folder/config.json``, checked: a JSON object of a format this library reads, naming a
    registered model; ``CheckpointError`` naming the file and the fix otherwise."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    if not path.is_file():
        present = ", ".join(sorted(p.name for p in folder.iterdir())[:5]) if folder.is_dir() else ""
        raise CheckpointError(
            f"{folder}: not a pretrained folder (no {CONFIG_FILE}"
            + (f"; it holds {present}" if present else "")
            + "); fusionzoo.save_pretrained(model, folder) writes one, fusionzoo.load(FILE) reads a single checkpoint"
        )
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise CheckpointError(f"{path}: {path.stat().st_size:,} bytes, more than the {MAX_CONFIG_BYTES:,} a "
                              f"{CONFIG_FILE} of fusionzoo's may take; it is damaged or another library's")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        raise CheckpointError(f"{path}: not readable JSON ({type(err).__name__}: {err}); save the folder again") from None
    if not isinstance(document, dict) or not isinstance(document.get("model"), str):
        raise CheckpointError(f"{path}: not a fusionzoo {CONFIG_FILE} (expected an object with \"model\": NAME); "
                              "was it written by another library?")
    fmt, version = document.get("format"), document.get("fusionzoo_version")
    check_format(path, "folder", fmt, FOLDER_FORMAT, version)
    check_readable(path, document.get("recipe") if isinstance(document.get("recipe"), dict) else None, version)
    try:
        get_spec(document["model"])
    except KeyError:
        raise CheckpointError(
            f"{path}: names model {document['model']!r}, which this fusionzoo ({__version__}) does not register "
            f"(it has: {', '.join(list_models())}). If the folder was written by a newer fusionzoo "
            f"({version}), upgrade; if the model is your own, import the module that registers it first"
        ) from None
    if not isinstance(document.get("options", {}), dict):
        raise CheckpointError(f"{path}: \"options\" must be a JSON object; the file is damaged")
    return document


def load_folder(folder: str | os.PathLike[str], map_location: str | torch.device | None = None) -> nn.Module:
    """The model in the pretrained ``folder``, in eval mode on ``map_location`` (default the CPU),
    after checking ``model.safetensors`` against ``config.json``: sha256, model, options and
    parameter count (``CheckpointError`` naming the file and the fix on any difference)."""
    folder = Path(folder)
    document = read_config(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{folder}: {CONFIG_FILE} is there but {WEIGHTS_FILE} is missing; "
                              f"{_rebuild(document)}")
    expected = document.get("sha256")
    found = sha256_of(weights)
    if expected != found:
        raise CheckpointError(
            f"{weights}: its sha256 {found[:16]}... differs from the {str(expected)[:16]}... that {CONFIG_FILE} records: "
            f"the file was changed or damaged after it was saved. {_rebuild(document)}"
        )
    stored = checkpoint.read_config(weights)
    wanted = ModelConfig(document["model"], dict(document.get("options") or {}))
    if stored.name != wanted.name or _resolved(weights, stored) != _resolved(folder / CONFIG_FILE, wanted):
        raise CheckpointError(
            f"{weights}: holds model {stored.name!r} with options {stored.options}, but {CONFIG_FILE} says "
            f"{wanted.name!r} with {wanted.options}; the two files do not belong together. {_rebuild(document)}"
        )
    model = checkpoint.load(weights, map_location)
    params = count_parameters(model)
    if params != document.get("num_params"):
        raise CheckpointError(
            f"{weights}: the model has {params:,} parameters, {CONFIG_FILE} records {document.get('num_params')!r}: "
            f"model {wanted.name!r} is not built as it was when the folder was saved (fusionzoo "
            f"{document.get('fusionzoo_version')}, now {__version__}). {_rebuild(document)}"
        )
    return model


def read_record(path: str | os.PathLike[str]) -> ModelRecord:
    """What the checkpoint, training state or pretrained folder at ``path`` says about itself: model,
    options, parameters (counted on the ``meta`` device), version and record (metrics, recipe,
    data contract). Reads metadata only; ``fusionzoo info PATH`` prints it."""
    path = Path(path)
    if path.is_dir():
        document = read_config(path)
        return ModelRecord(
            path, document["model"], dict(document.get("options") or {}), document.get("fusionzoo_version"),
            document.get("num_params"), Record.from_json(path / CONFIG_FILE, document), document.get("sha256"),
            document.get("weights"),
        )
    metadata = checkpoint.read_metadata(path)
    config = checkpoint.read_config(path)
    skeleton = stored_config.build_on_meta(path, config)
    return ModelRecord(path, config.name, config.options, metadata.get(checkpoint.VERSION), count_parameters(skeleton),
                       Record.from_metadata(path, metadata))


def check_options(where: str, options: Mapping[str, Any], overrides: Mapping[str, Any]) -> None:
    """Refuse ``overrides`` that contradict the ``options`` the weights at ``where`` were trained with
    (``ValueError`` naming both values); overrides that repeat them are fine."""
    normal = json.loads(json.dumps(dict(overrides), default=str))
    clashes = [f"{k}={normal[k]!r} given, the weights have {k}={options[k]!r}" if k in options
               else f"{k}={normal[k]!r} given, an option the weights do not record"
               for k in sorted(normal) if k not in options or options[k] != normal[k]]
    if clashes:
        raise ValueError(
            f"{where}: overrides contradict the weights' options: {'; '.join(clashes)}. Drop the override(s) to load "
            "the weights as trained; for another architecture, create the model without weights= and train it"
        )


def model_card(config: ModelConfig, params: int, record: Record, weights: str | None, command: str | None) -> str:
    """The ``README.md`` of a pretrained folder: what the model is, its metrics, the command that
    made it, its input contract, intended use and limits."""
    spec = get_spec(config.name)
    title = weights or config.name
    metrics = record.metrics or {}
    recipe = record.recipe or {}
    options = ", ".join(f"`{k}={json.dumps(v)}`" for k, v in config.options.items())
    lines = [
        "---", "library_name: fusionzoo", "tags:", "- fusionzoo", "- sensor-fusion", "- rgb-lidar", "- pytorch", "---", "",
        f"# {title}", "",
        f"`{config.name}`: {spec.description} {params:,} parameters. Options: {options or 'the defaults'}.", "",
        "## Metrics", "",
    ]
    if metrics:
        lines += ["| metric | value |", "|---|---|", *(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
                                                     for k, v in sorted(metrics.items())), ""]
        lines += ["`valid_mse`: mean squared error of the nine outputs on the validation split; `position_error`: "
                  "mean distance between predicted and true object centres (scene units).", ""]
    else:
        lines += ["None recorded: these weights were saved without a training record.", ""]
    lines += ["## How it was made", ""]
    if command:
        lines += ["```bash", command, "```", ""]
    if recipe:
        shown = ", ".join(f"{k} {recipe[k]}" for k in ("epochs", "lr", "batch_size", "precision", "seed", "device",
                                                        "world_size", "torch", "fusionzoo") if k in recipe)
        lines += [f"Data: {describe_data(recipe.get('data'))}.", "", f"Split: {describe_split(recipe.get('split'))}.", "",
                  f"Training: {shown}.", ""]
    else:
        lines += ["No recipe recorded.", ""]
    contract = record.data_config or {}
    if contract:
        rgb, xyza, outputs = (contract.get(k) or {} for k in ("rgb", "xyza", "outputs"))
        lines += ["## Inputs and outputs", "",
                  f"- `rgb`: float32 `{tuple(rgb.get('shape', ()))}` in [0, 1] ({rgb.get('from')})",
                  f"- `xyza`: float32 `{tuple(xyza.get('shape', ()))}`, {xyza.get('units')}; {xyza.get('grid')}",
                  f"- outputs: {', '.join(outputs.get('names') or [])} ({outputs.get('units')})", ""]
    lines += [
        "## Intended use and limits", "",
        "For studying RGB + LiDAR fusion, and as a starting point for fine-tuning on data of the same layout. "
        "It was trained on synthetic scenes of three coloured objects rendered by fusionzoo's own generator; it "
        "knows nothing of real sensors, other objects, other camera or LiDAR poses, or other image sizes, and its "
        "figures hold for data drawn like its training data only. It is not fit for any safety-relevant use.", "",
        "## Loading", "", "```python", "import fusionzoo", "",
        (f"model = fusionzoo.create({config.name!r}, weights={weights.split('.', 1)[1]!r})  # built by the command above"
         if weights and "." in weights else 'model = fusionzoo.load("PATH/TO/THIS/FOLDER")  # or "hf-hub:OWNER/NAME"'),
        "```", "",
    ]
    return "\n".join(lines)


def _contract_of(model: nn.Module) -> dict[str, Any] | None:
    shapes = getattr(model, "input_shapes", {}) or {}
    outputs = getattr(model, "num_outputs", None)
    if "rgb" not in shapes or "xyza" not in shapes or not isinstance(outputs, int):
        return None
    return data_config(shapes["rgb"], shapes["xyza"], outputs)


def _resolved(path: Path, config: ModelConfig) -> dict[str, Any]:
    try:
        return config.resolved().options
    except (KeyError, TypeError) as err:
        raise CheckpointError(f"{path}: cannot rebuild model {config.name!r} from its options ({err})") from None


def _rebuild(document: Mapping[str, Any]) -> str:
    name = document.get("weights")
    if name:
        return f"Rebuild it: fusionzoo pretrain {name} --force"
    return "Save or download the folder again"


def _write_text(path: Path, text: str) -> None:
    with atomic_path(path) as temporary:
        Path(temporary).write_text(text, encoding="utf-8")
