"""A run's figures: one ``EpochRecord`` per epoch, the ``History`` of a run and its CSV form, and
the ``Evaluation`` of a model on a data set."""

from __future__ import annotations

import csv
import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._files import atomic_path


@dataclass(frozen=True)
class EpochRecord:
    """One epoch's figures.

    ``train_loss``: mean of the epoch's batch losses; ``valid_loss``: mean over every validation
    sample; ``position_error``: mean distance, in world units, between predicted and true object
    centres on the validation set (``None`` without validation data or when the targets are not
    3-D points); ``lr``: the first parameter group's learning rate at the epoch's first step (under a
    ``schedule`` it changes from step to step); ``seconds``: the whole epoch, ``train_seconds``: its
    training pass.
    """

    epoch: int
    train_loss: float
    valid_loss: float | None
    position_error: float | None
    lr: float
    seconds: float
    train_seconds: float


_FIELDS = [f.name for f in dataclasses.fields(EpochRecord)]
_OPTIONAL = {"valid_loss", "position_error"}


def score(record: EpochRecord) -> float:
    """What "best" means for an epoch: its validation loss, or its training loss without validation."""
    return record.valid_loss if record.valid_loss is not None else record.train_loss


@dataclass
class History:
    """The figures of every epoch of a run, in order (``epochs[0]`` is epoch 1)."""

    epochs: list[EpochRecord] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.epochs)

    @property
    def train_losses(self) -> list[float]:
        return [e.train_loss for e in self.epochs]

    @property
    def valid_losses(self) -> list[float | None]:
        return [e.valid_loss for e in self.epochs]

    @property
    def best_epoch(self) -> int | None:
        """The epoch with the lowest validation loss (training loss when there is no validation)."""
        if not self.epochs:
            return None
        return min(self.epochs, key=score).epoch

    @property
    def best_valid_loss(self) -> float | None:
        """The lowest validation loss so far; ``None`` without validation data."""
        losses = [v for v in self.valid_losses if v is not None]
        return min(losses) if losses else None

    def to_records(self) -> list[dict[str, Any]]:
        return [dataclasses.asdict(e) for e in self.epochs]

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> History:
        """The history of ``to_records``' dicts; ``ValueError`` names the first record and field
        that is missing or of the wrong type (records come from files, which may be damaged)."""
        return cls([_record(i, r) for i, r in enumerate(records, 1)])

    def to_csv(self, path: str | Path) -> Path:
        """Write one row per epoch to ``path`` (atomically); floats round-trip exactly."""
        path = Path(path)
        with atomic_path(path) as temporary, open(temporary, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=_FIELDS)
            writer.writeheader()
            for record in self.to_records():
                writer.writerow({k: "" if v is None else repr(v) for k, v in record.items()})
        return path

    @classmethod
    def from_csv(cls, path: str | Path) -> History:
        """Read a history written by ``to_csv``."""
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        if rows and set(rows[0]) != set(_FIELDS):
            raise ValueError(f"{path}: expected columns {', '.join(_FIELDS)}, got {', '.join(rows[0])}")
        return cls.from_records(
            {k: (int(v) if k == "epoch" else None if v == "" else float(v)) for k, v in row.items()} for row in rows
        )


def _record(index: int, record: Mapping[str, Any]) -> EpochRecord:
    if not isinstance(record, Mapping) or set(record) != set(_FIELDS):
        keys = ", ".join(map(str, record)) if isinstance(record, Mapping) else type(record).__name__
        raise ValueError(f"record {index}: expected the fields {', '.join(_FIELDS)}, got {keys}")
    for name in _FIELDS:
        value = record[name]
        # bool is an int to Python, never a figure here.
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        whole = isinstance(value, int) and not isinstance(value, bool)
        if not (whole if name == "epoch" else number or (value is None and name in _OPTIONAL)):
            raise ValueError(f"record {index}: {name}={value!r} is not {'a whole number' if name == 'epoch' else 'a number'}")
    return EpochRecord(**{k: record[k] for k in _FIELDS})


@dataclass(frozen=True)
class Evaluation:
    """A model's figures on a data set: mean loss per sample, mean position error, sample count."""

    loss: float
    position_error: float | None
    samples: int
