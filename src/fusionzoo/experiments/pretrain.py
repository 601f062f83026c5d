"""``pretrain``: build catalogued weights into the cache by their recipe (``fusionzoo pretrain MODEL.TAG``).

A recipe is one run of ``compare``, the leaderboard's own code path, so the figures a build gets
are the leaderboard's kind: the scene is generated (``generate_scenes``, or left as it is when the
cache already holds it), split as the course does, and ``compare`` trains the one model with the
one seed into ``FUSIONZOO_HOME/runs/MODEL.TAG`` (an interrupted build resumes there). The best
checkpoint's record is compared with the catalogue's metrics (a warning outside the tolerance) and
stored as a pretrained folder in ``FUSIONZOO_HOME/weights/MODEL.TAG``, with the run's
``history.csv``; the build's run folder is then removed, so the cache holds one copy of the weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data import course_splits
from ..sim import generate_scenes
from ..training.rundir import HISTORY_FILE, RunFolder
from ..weights.catalog import Weights, get_weights
from ..weights.home import runs_dir, scenes_dir, weights_dir
from ..weights.pretrained import CONFIG_FILE, read_record, save_pretrained
from .comparison import compare

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pretrained:
    """The outcome of a build: the entry, the folder it now lives in, the metrics the build measured
    and how they miss the catalogue's (empty: within the tolerance; ``None``: not built now)."""

    weights: Weights
    folder: Path
    metrics: dict[str, Any]
    deviations: list[str] | None


def scene_folder(scene: dict[str, Any]) -> Path:
    """Where the cache keeps the scene generated with the knobs ``scene``: ``cubes-SAMPLES-seedSEED``
    for the default scene, else named by a hash of the knobs."""
    if set(scene) <= {"samples", "seed"}:
        return scenes_dir() / f"cubes-{scene.get('samples', 9999)}-seed{scene.get('seed', 0)}"
    digest = hashlib.sha256(json.dumps(scene, sort_keys=True).encode()).hexdigest()[:12]
    return scenes_dir() / f"scene-{digest}"


def pretrain(
    name: str,
    *,
    device: str | torch.device = "auto",
    progress: bool | None = None,
    force: bool = False,
    scene_dir: str | Path | None = None,
) -> Pretrained:
    """Build the catalogued weights ``name`` (``"matmul.cubes"``) into the cache by their recipe.

    Weights already built are left as they are unless ``force`` (which also retrains from the
    first epoch). ``device``: where to train (the recipe's figures were measured on the CPU; the
    tolerance covers a GPU). ``scene_dir``: generate (or find) the recipe's scene there instead of
    the cache. ``progress``: bars while generating and training (``None``: on a terminal).
    """
    entry = get_weights(name)
    target = weights_dir(entry.name)
    if (target / CONFIG_FILE).is_file() and not force:
        log.info("%s is already built in %s (pass force=True, or --force, to build it again)", entry.name, target)
        return Pretrained(entry, target, dict(read_record(target).record.metrics or {}), None)
    recipe = entry.recipe
    if recipe.split != "course":
        raise ValueError(f"weights {entry.name!r}: unknown split {recipe.split!r} in its recipe (only 'course' is built)")
    folder = generate_scenes(Path(scene_dir) if scene_dir else scene_folder(recipe.scene),
                             progress=progress is not False, **recipe.scene)
    train, valid = course_splits(folder, image_size=recipe.image_size, progress=progress)
    out = runs_dir(entry.name)
    if force and out.exists():
        shutil.rmtree(out)
    log.info("building %s: %s, %d epochs (lr %g, batch %d, %s, seed %d) -> %s", entry.name, folder, recipe.epochs,
             recipe.lr, recipe.batch_size, recipe.precision, recipe.seed, out)
    results, _ = compare(
        train, valid, [entry.model], epochs=recipe.epochs, seeds=[recipe.seed], out=out, model_options=entry.options,
        lr=recipe.lr, batch_size=recipe.batch_size, precision=recipe.precision, device=device, progress=progress,
        **recipe.training,
    )
    best = Path(results[0].checkpoint)
    metrics = dict(read_record(best).record.metrics or {})
    deviations = entry.deviations(metrics)
    if deviations:
        log.warning("%s: this build misses the catalogue's figures: %s. The weights are stored all the same; a "
                    "difference this large is more than float order explains: check the data and the versions",
                    entry.name, "; ".join(deviations))
    save_pretrained(best, target, weights=entry.name, command=entry.command)
    shutil.copyfile(RunFolder(best.parent).history, target / HISTORY_FILE)
    shutil.rmtree(out)  # stored: the build's copy of the weights is no longer needed to resume anything
    log.info("%s: valid MSE %s (catalogue: %s +- %s); stored in %s", entry.name, metrics.get("valid_mse"),
             entry.metrics.get("valid_mse"), entry.tolerance.get("valid_mse"), target)
    return Pretrained(entry, target, metrics, deviations)
