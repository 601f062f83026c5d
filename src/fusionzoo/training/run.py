"""One call of ``fit``'s working set, the ``Run``: the model's training state, its data on the device,
the loss, the process group, and what one epoch does with them.

The host waits for the device once per epoch, not once per step: the per-step losses stay on the
device until the epoch ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import torch
from tqdm.auto import tqdm

from ..data.samples import BatchLoader, Samples, TensorSamples
from ..devices import autocast_dtype, channels_last_for, eval_batch_for
from ..errors import NonFiniteLossError
from ..registry import model_config
from ..weights.finetune import frozen_to_eval
from . import distributed
from .augment import MirrorPlan, check_mirror_symmetric
from .ema import WeightAverage
from .evaluation import LossFn, validate
from .history import EpochRecord, Evaluation, History
from .modality_dropout import DropoutPlan
from .optimization import OptimizerArg, build_optimizer, build_scheduler, step_scheduler
from .placement import Placement, Source, as_source, place
from .progress import Progress, Recipe
from .rundir import RunFolder, TrainingState
from .schedules import Schedule, remember_peaks

log = distributed.main_process_logger(__name__)

Data = Union[Samples, TensorSamples, torch.utils.data.Dataset]


@dataclass(frozen=True)
class Settings:
    """``fit``'s options that decide how a run trains; ``fit``'s docstring says what each does."""

    lr: float
    batch_size: int
    optimizer: OptimizerArg
    scheduler: Any
    loss_fn: LossFn | None
    device: str | torch.device
    precision: str
    seed: int
    params: Iterable[Any] | None
    valid_batch_size: int | None
    channels_last: bool | None
    compile: bool
    modality_dropout: float = 0.0
    epochs: int = 20
    weight_decay: float = 0.0
    mirror: float = 0.0
    schedule: str = "constant"
    warmup: float = 0.0
    ema: float = 0.0


@dataclass
class Run:
    """Everything one run trains with. ``forward``: the model as evaluation calls it (compiled when
    asked); ``train_forward``: as training steps call it (in DDP under torchrun, set by
    ``connected``); ``step``: optimiser steps taken so far, over the run's whole life;
    ``schedule``: the rate of every step (``None``: the optimiser's own, or the ``scheduler``'s);
    ``average``: the weights' moving average (``None`` without ``ema``)."""

    state: TrainingState
    train: Source
    valid: Source | None
    loader: BatchLoader
    loss_fn: LossFn
    placement: Placement
    group: distributed.Group
    settings: Settings
    valid_batch_size: int
    forward: Callable[..., torch.Tensor]
    last_checkpoint: Path | None
    step: int = 0
    train_forward: Callable[..., torch.Tensor] | None = None
    schedule: Schedule | None = None
    average: WeightAverage | None = None

    @classmethod
    def prepare(cls, model: torch.nn.Module, train: Data, valid: Data | None, settings: Settings, folder: RunFolder | None) -> Run:
        """Check every argument, put the model and data on the device and build the optimiser: all
        that can fail does so before the first epoch (and before the run folder is touched)."""
        group = distributed.current()
        device = distributed.local_device(settings.device, group)
        dtype = autocast_dtype(device, settings.precision)
        if folder is not None:
            model_config(model)  # fail now, not after the first epoch, if the model cannot be checkpointed
        train_source, valid_source, loader = _data(train, valid, settings.batch_size, device, group)
        if settings.mirror > 0:
            check_mirror_symmetric(train_source)
        schedule = Schedule.of(settings.schedule, settings.warmup, settings.epochs, len(loader))
        if schedule is not None and settings.scheduler is not None:
            raise ValueError("scheduler: fit's schedule (schedule=, warmup=) sets the rate of every step; pass a "
                             "scheduler or a schedule, not both")
        torch.manual_seed(settings.seed)
        model.to(device)
        channels_last = channels_last_for(device, settings.channels_last)
        valid_batch_size = eval_batch_for(device, settings.valid_batch_size, settings.batch_size, "valid_batch_size")
        if channels_last:
            model.to(memory_format=torch.channels_last)
        optimizer = build_optimizer(model, settings.optimizer, settings.params, settings.lr, settings.weight_decay)
        if schedule is not None:
            remember_peaks(optimizer)
        scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
        return cls(
            state=TrainingState(model, optimizer, build_scheduler(settings.scheduler, optimizer), scaler),
            train=train_source, valid=valid_source, loader=loader,
            loss_fn=settings.loss_fn or torch.nn.functional.mse_loss,
            placement=Placement(device, dtype, channels_last), group=group, settings=settings,
            valid_batch_size=valid_batch_size, forward=torch.compile(model) if settings.compile else model,
            last_checkpoint=folder.last if folder is not None else None,
            schedule=schedule, average=WeightAverage(optimizer, settings.ema) if settings.ema > 0 else None,
        )

    @property
    def steps(self) -> int:
        """Optimiser steps per epoch."""
        return len(self.loader)

    @property
    def recipe(self) -> Recipe:
        """What this run trains with, as its state records it."""
        s = self.settings
        decays = self.schedule is not None and self.schedule.kind != "constant"  # its length depends on epochs
        return Recipe(s.seed, s.batch_size, self.group.world_size, s.lr if s.optimizer is None else None, s.precision,
                      s.modality_dropout, s.weight_decay, s.mirror, s.schedule, s.warmup,
                      s.epochs if decays else None, s.ema)

    def progress(self, history: History) -> Progress:
        return Progress(len(history), self.step, self.recipe, history)

    def resume(self, folder: RunFolder) -> History:
        """Load the state ``folder`` resumes from (held to this run's options, see ``progress``);
        returns the run's history so far."""
        stored = folder.load(self.state, self.recipe)
        self.step = stored.step
        if self.average is not None:
            self.average.swapped = True  # the state was written with the average in the model (see ``epoch``)
        log.info("resuming %s after epoch %d", folder.resume_from, stored.epoch)
        return stored.history

    @contextlib.contextmanager
    def restoring_layout(self) -> Iterator[None]:
        """On leaving the block, hand the model back in the usual layout: a channels_last model's
        outputs differ in the last bits from those of the same weights reloaded (``save`` stores
        contiguous tensors)."""
        try:
            yield
        finally:
            if self.placement.channels_last:
                self.state.model.to(memory_format=torch.contiguous_format)

    @contextlib.contextmanager
    def connected(self) -> Iterator[None]:
        """The block runs with the process group up (started here unless it already is, and then
        stopped at the end) and ``train_forward`` set. Steps go through DDP; evaluation keeps the
        bare model, since DDP's forward may sync buffers (a collective) and the validation shards
        differ in batch counts."""
        if self.group.distributed:
            log.info("%s", self.group.describe(self.settings.batch_size))
        owns_group = distributed.start(self.group, self.placement.device)
        try:
            model, device = self.state.model, self.placement.device
            self.train_forward = distributed.wrap(model, device, self.settings.compile) if self.group.distributed else self.forward
            yield
        finally:
            if owns_group:
                distributed.stop()

    def epoch(self, number: int, bar: tqdm) -> EpochRecord:
        """Train epoch ``number``, validate, step the scheduler; returns the epoch's figures (``lr``:
        the rate of the epoch's first step). ``NonFiniteLossError`` names the epoch and step of a NaN
        or infinite loss. With ``ema``, the model holds the weights' average from the end of the
        training pass on: validation and the run folder's files see it."""
        began = time.perf_counter()
        if self.schedule is not None:
            self.schedule.apply(self.state.optimizer, self.step)
        lr = float(self.state.optimizer.param_groups[0]["lr"])
        losses = self._train_pass(number, bar)
        train_seconds = time.perf_counter() - began
        _check_finite(losses, number, self.step, self.last_checkpoint)
        self.step += self.steps
        if self.average is not None:
            self.average.swap()
        evaluation = self._validate(number)
        record = EpochRecord(
            epoch=number,
            train_loss=float(losses.double().mean()),
            valid_loss=evaluation.loss if evaluation else None,
            position_error=evaluation.position_error if evaluation else None,
            lr=lr,
            seconds=time.perf_counter() - began,
            train_seconds=train_seconds,
        )
        if self.state.scheduler is not None:
            step_scheduler(self.state.scheduler, record)
        return record

    def _train_pass(self, number: int, bar: tqdm) -> torch.Tensor:
        """One pass of optimiser steps; returns the ``(steps,)`` batch losses, on the CPU, averaged
        over the processes (each one's loss is the mean over its share of the global batch)."""
        model, optimizer, scaler = self.state.model, self.state.optimizer, self.state.scaler
        settings, average, schedule = self.settings, self.average, self.schedule
        if average is not None and average.swapped:
            average.swap()  # the live weights back into the model
        self.loader.generator = epoch_generator(settings.seed, number)
        model.train()
        frozen_to_eval(model)
        indices = self.group.shard_batches(self.loader.indices())
        batches = self.placement.batches(self.train, indices)
        # Decided over the training set's indices, so every process draws the same plans.
        count = len(self.train)
        mirror = MirrorPlan.draw(settings.seed, number, count, settings.mirror) if settings.mirror > 0 else None
        p = settings.modality_dropout
        plan = DropoutPlan.draw(settings.seed, number, count, p) if p > 0 else None
        losses = torch.empty(self.steps, device=self.placement.device)
        for i, (index, (rgb, xyza, target)) in enumerate(zip(indices, batches)):
            if mirror is not None:
                rgb, xyza, target = mirror.apply(index, rgb, xyza, target)
            if plan is not None:  # after the mirror: an absent sensor's fill is not mirrored
                rgb, xyza = plan.apply(model, index, rgb, xyza)
            if schedule is not None:
                schedule.apply(optimizer, self.step + i)
            with self.placement.autocast():
                loss = self.loss_fn(self.train_forward(rgb, xyza), target)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            if average is not None:
                average.update(self.step + i)
            # Kept on the device: reading a loss here would make the host wait for every step.
            losses[i] = loss.detach()
            bar.update()
        return self.group.all_reduce_mean(losses.cpu())  # the epoch's one wait on the device

    def _validate(self, number: int) -> Evaluation | None:
        if self.valid is None:
            return None
        self.group.broadcast_buffers(self.state.model)
        # Eval mode: dropout off, and BatchNorm normalises by its running statistics without
        # folding the validation samples into them (the next training pass sets train mode again).
        self.state.model.eval()
        evaluation = validate(self.forward, self.valid, self.loss_fn, self.valid_batch_size, self.placement, self.group)
        if not math.isfinite(evaluation.loss):
            raise NonFiniteLossError(f"the validation loss became {evaluation.loss} after epoch {number}", number, None)
        return evaluation


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The shuffle of epoch ``epoch``: a function of (seed, epoch) only, so a resumed run draws the
    same orders, and different seeds never share one."""
    digest = hashlib.sha256(f"fusionzoo-shuffle:{seed}:{epoch}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


def _data(
    train: Data, valid: Data | None, batch_size: int, device: torch.device, group: distributed.Group
) -> tuple[Source, Source | None, BatchLoader]:
    """The training and validation samples on ``device`` and the loader of global batches."""
    train_source = place(as_source(train, "train"), device, "train")
    valid_source = place(as_source(valid, "valid"), device, "valid") if valid is not None else None
    # Under torchrun each global batch of batch_size * world_size samples is shared out per step.
    loader = BatchLoader(train_source, batch_size * group.world_size, shuffle=True, drop_last=True)
    if len(loader) == 0:
        per = f" x {group.world_size} processes" if group.distributed else ""
        raise ValueError(f"train: {len(train_source)} samples make no full batch of batch_size={batch_size}{per}")
    if valid_source is not None and len(valid_source) == 0:
        raise ValueError("valid: no samples; pass valid=None to train without validation")
    return train_source, valid_source, loader


def _check_finite(losses: torch.Tensor, epoch: int, first_step: int, last: Path | None) -> None:
    finite = torch.isfinite(losses)
    if bool(finite.all()):
        return
    bad = int((~finite).nonzero()[0])
    kept = (
        f"the last good checkpoint, {last} (epoch {epoch - 1}), is kept"
        if last is not None and last.exists()
        else "no checkpoint of this run was written"
    )
    raise NonFiniteLossError(
        f"the training loss became {float(losses[bad])} at epoch {epoch}, step {bad + 1} (global step {first_step + bad + 1}); "
        f"{kept}. Lower the learning rate or check the data for NaN/inf values.",
        epoch,
        bad + 1,
    )
