"""The trainer's record in a state file (where the run stands, and what it trains with) and the rule
a resume follows when it is given options other than the run's.

The rule: an option that changes what the run computes (``seed``: the shuffle; ``lr``; the global
batch ``batch_size * processes``; ``precision``; ``modality_dropout``; the regularisers
``weight_decay``, ``mirror`` and ``ema``; the ``schedule`` and its ``warmup``, and for a schedule
that decays over the run, ``epochs``) must be the run's, or the resume is refused with a
``CheckpointError`` naming each option, both values and the fix.
Resuming promises the run as if it had never stopped, and a run folder holds one history: a
silently changed option would make the record lie, and silently keeping the run's would ignore
what the caller asked for. The process count may change with the global batch kept (a warning
says what changes: the order of float additions). Options of speed and place (``device``, ``channels_last``, ``compile``,
``valid_batch_size``, ``progress``) and ``epochs``/``keep_state`` apply as given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import CheckpointError
from . import distributed
from .history import History

log = distributed.main_process_logger(__name__)


@dataclass(frozen=True)
class Recipe:
    """What a run trains with that its state records.

    ``batch_size`` is per process, of ``world_size`` processes. ``lr``: the learning rate the
    optimiser was built with (``None`` when an optimizer was given, or in a state written before
    it was recorded); ``precision``: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (``None`` in such an
    older state). ``None`` is never compared. ``modality_dropout``: the probability that a training
    sample loses one input (0 in a state written before it was recorded: such runs had none); so
    for the regularisers and schedule, off in a state written before them: ``weight_decay``
    (AdamW's), ``mirror`` (the probability of a mirrored sample), ``schedule`` and ``warmup``
    (epochs), ``schedule_epochs`` (the epochs a decaying schedule spans; ``None`` for a constant
    rate, which any number of epochs continues), ``ema`` (the decay of the weights' average).
    """

    seed: int
    batch_size: int
    world_size: int
    lr: float | None
    precision: str | None
    modality_dropout: float = 0.0
    weight_decay: float = 0.0
    mirror: float = 0.0
    schedule: str = "constant"
    warmup: float = 0.0
    schedule_epochs: int | None = None
    ema: float = 0.0


#: The recipe's fields a resume must keep, by the name ``fit`` takes them under.
_HELD = {"seed": "seed", "lr": "lr", "precision": "precision", "modality_dropout": "modality_dropout",
         "weight_decay": "weight_decay", "mirror": "mirror", "schedule": "schedule", "warmup": "warmup",
         "schedule_epochs": "epochs", "ema": "ema"}


@dataclass(frozen=True)
class Progress:
    """Where a run stands after ``epoch`` epochs (``step`` optimiser steps) and its ``history``."""

    epoch: int
    step: int
    recipe: Recipe
    history: History

    def to_json(self) -> dict[str, Any]:
        recipe = self.recipe
        return {
            "epoch": self.epoch, "step": self.step, "seed": recipe.seed, "batch_size": recipe.batch_size,
            "world_size": recipe.world_size, "lr": recipe.lr, "precision": recipe.precision,
            "modality_dropout": recipe.modality_dropout, "weight_decay": recipe.weight_decay, "mirror": recipe.mirror,
            "schedule": recipe.schedule, "warmup": recipe.warmup, "schedule_epochs": recipe.schedule_epochs,
            "ema": recipe.ema, "history": self.history.to_records(),
        }

    @classmethod
    def from_json(cls, path: Path, record: Any) -> Progress:
        """The progress stored in the state file ``path``; ``CheckpointError`` naming the file and the
        field when a value is missing or of the wrong type."""
        try:
            return cls._parse(record)
        except (KeyError, TypeError, ValueError) as err:
            problem = f"no {err.args[0]!r}" if isinstance(err, KeyError) else str(err)
            raise CheckpointError(
                f"{path}: damaged training progress ({problem}), so the run cannot be resumed from it; "
                "train it again in another checkpoint_dir (or delete the folder first)"
            ) from None

    @classmethod
    def _parse(cls, record: Any) -> Progress:
        if not isinstance(record, dict):
            raise TypeError(f"expected a JSON object, got {type(record).__name__}")
        epoch, step = _whole(record, "epoch", 0), _whole(record, "step", 0)
        recipe = Recipe(
            seed=_whole(record, "seed", None),
            batch_size=_whole(record, "batch_size", 1),
            world_size=_whole(record, "world_size", 1) if "world_size" in record else 1,  # absent before multi-process runs
            lr=_optional(record, "lr", (int, float)),
            precision=_optional(record, "precision", (str,)),
            modality_dropout=_rate(record, "modality_dropout"),
            weight_decay=_rate(record, "weight_decay"),
            mirror=_rate(record, "mirror"),
            schedule=_optional(record, "schedule", (str,)) or "constant",
            warmup=_rate(record, "warmup"),
            schedule_epochs=_optional(record, "schedule_epochs", (int,)),
            ema=_rate(record, "ema"),
        )
        if not isinstance(record["history"], list):
            raise TypeError(f"history is {type(record['history']).__name__}, not a list")
        history = History.from_records(record["history"])
        if [e.epoch for e in history.epochs] != list(range(1, epoch + 1)):
            raise ValueError(f"epoch={epoch}, but the history holds epochs {[e.epoch for e in history.epochs]}")
        return cls(epoch, step, recipe, history)


def _whole(record: dict[str, Any], name: str, least: int | None) -> int:
    value = record[name]
    if not isinstance(value, int) or isinstance(value, bool) or (least is not None and value < least):
        expected = "a whole number" + ("" if least is None else f" of at least {least}")
        raise ValueError(f"{name}={value!r} is not {expected}")
    return value


def _rate(record: dict[str, Any], name: str) -> float:
    """A number the state may lack (written before the option existed): 0, off, then."""
    return float(_optional(record, name, (int, float)) or 0.0)


def _optional(record: dict[str, Any], name: str, types: tuple[type, ...]) -> Any:
    value = record.get(name)
    if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
        raise ValueError(f"{name}={value!r} is not a {types[-1].__name__}")
    return value


def check_resume(path: Path, stored: Recipe, given: Recipe) -> None:
    """Refuse to resume the run of state file ``path`` (trained with ``stored``) with ``given`` when
    an option that changes what it computes differs (see the module's rule); warn when only the
    process count does."""
    differences, fixes = [], []
    for field, name in _HELD.items():
        before, now = getattr(stored, field), getattr(given, field)
        if before is not None and now is not None and before != now:
            differences.append(f"{name}={now!r} given, the run used {name}={before!r}")
            fixes.append(f"{name}={before!r}")
    before, now = stored.batch_size * stored.world_size, given.batch_size * given.world_size
    if stored.world_size == given.world_size and stored.batch_size != given.batch_size:
        differences.append(f"batch_size={given.batch_size} given, the run used batch_size={stored.batch_size}")
        fixes.append(f"batch_size={stored.batch_size}")
    elif before != now:
        differences.append(distributed.world_change(stored.world_size, stored.batch_size, given.world_size, given.batch_size))
        fixes.append(
            f"batch_size={before // given.world_size}" if before % given.world_size == 0
            else f"a process count that divides the run's global batch of {before}"
        )
    if differences:
        raise CheckpointError(
            f"{path}: resuming with other options than the run's would change it: {'; '.join(differences)}. "
            f"To continue the run, resume with {', '.join(fixes)}; to train with the new options, start a new run "
            "in another checkpoint_dir (fusionzoo.load_weights can start it from this run's last checkpoint)"
        )
    if stored.world_size != given.world_size:
        log.warning("resuming %s: %s", path, distributed.world_change(stored.world_size, stored.batch_size, given.world_size, given.batch_size))
