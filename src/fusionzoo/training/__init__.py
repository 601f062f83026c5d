"""The training runtime: ``fit`` and ``evaluate``, the run folder they write, devices across processes.

Modules, from the loop down: ``trainer`` (``fit``), ``run`` (one run's working set and its epoch),
``optimization`` (optimiser and scheduler from ``fit``'s arguments), ``evaluation`` (``evaluate``
and the validation pass), ``placement`` (data on the device, batches), ``rundir`` (the run
folder's files and rules), ``progress`` (the record a state file keeps, and the resume rule),
``history`` (the figures per epoch), ``distributed`` (processes under torchrun),
``modality_dropout`` (samples that lose one input while training), ``augment`` (mirrored
samples), ``schedules`` (the learning rate of every step), ``ema`` (the weights' moving average),
``input_statistics`` (``input_means``, the per-channel fill a model can record for an absent input).
"""

from __future__ import annotations

from .augment import NotMirrorSymmetricError
from .evaluation import evaluate
from .history import EpochRecord, Evaluation, History
from .input_statistics import input_means
from .trainer import fit

__all__ = ["EpochRecord", "Evaluation", "History", "NotMirrorSymmetricError", "evaluate", "fit", "input_means"]
