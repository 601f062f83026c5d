"""The trainer: the course's protocol (Adam, lr 1e-4, MSE, batch 32, 20 epochs), device-aware and resumable.

One training step costs what the model's arithmetic costs: the data live on the device (moved once
when they fit), batches are built by tensor indexing there, and the host waits for the device once
per epoch, not once per step (the per-step losses stay on the device until the epoch ends).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import torch
from torch import nn
from tqdm.auto import tqdm

from . import distributed
from .._files import folder_lock
from .._files import atomic_path
from ..weights.checkpoint import load_state, save, save_state
from ..data.samples import Batch, BatchLoader, Samples, TensorSamples
from ..devices import autocast_dtype, channels_last_for, eval_batch_for, fits_on, resolve_device
from ..errors import CheckpointError, NonFiniteLossError
from ..weights.finetune import frozen_to_eval
from ..registry import model_config

log = logging.getLogger(__name__)
log.addFilter(distributed.MainProcessFilter())  # under torchrun, one process reports the run

Source = Union[Samples, TensorSamples]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
HISTORY_FILE, LAST_FILE, BEST_FILE, STATE_FILE = "history.csv", "last.safetensors", "best.safetensors", "state.safetensors"


# --- records -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EpochRecord:
    """One epoch's figures.

    ``train_loss``: mean of the epoch's batch losses; ``valid_loss``: mean over every validation
    sample; ``position_error``: mean distance, in world units, between predicted and true object
    centres on the validation set (``None`` without validation data or when the targets are not
    3-D points); ``lr``: the first parameter group's learning rate during the epoch; ``seconds``:
    the whole epoch, ``train_seconds``: its training pass.
    """

    epoch: int
    train_loss: float
    valid_loss: float | None
    position_error: float | None
    lr: float
    seconds: float
    train_seconds: float


_FIELDS = [f.name for f in dataclasses.fields(EpochRecord)]


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
        return min(self.epochs, key=_score).epoch

    @property
    def best_valid_loss(self) -> float | None:
        """The lowest validation loss so far; ``None`` without validation data."""
        losses = [v for v in self.valid_losses if v is not None]
        return min(losses) if losses else None

    def to_records(self) -> list[dict[str, Any]]:
        return [dataclasses.asdict(e) for e in self.epochs]

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> History:
        return cls([EpochRecord(**{k: r[k] for k in _FIELDS}) for r in records])

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


def _score(record: EpochRecord) -> float:
    return record.valid_loss if record.valid_loss is not None else record.train_loss


@dataclass(frozen=True)
class Evaluation:
    """A model's figures on a data set: mean loss per sample, mean position error, sample count."""

    loss: float
    position_error: float | None
    samples: int


# --- data and devices ----------------------------------------------------------------------------


def _as_source(data: Any, name: str) -> Source:
    if isinstance(data, (Samples, TensorSamples)):
        return data
    if isinstance(data, torch.utils.data.Dataset):
        return TensorSamples.from_dataset(data)
    raise TypeError(f"{name}: expected fusionzoo.data.Samples or a torch Dataset of (rgb, xyza, target), got {type(data).__name__}")


def _place(source: Source, device: torch.device, name: str) -> Source:
    """``source`` on ``device`` when it fits there; otherwise on the host, batches copied per step."""
    if fits_on(device, source.nbytes()):
        try:
            return source.to(device)
        except torch.cuda.OutOfMemoryError:
            pass
    log.info("%s: %.1f MB of samples do not fit on %s; keeping them on the host", name, source.nbytes() / 1e6, device)
    return source.to("cpu")


def _batches(source: Source, indices: list[torch.Tensor], device: torch.device, channels_last: bool) -> Iterator[Batch]:
    for index in indices:
        rgb, xyza, target = (t.to(device, non_blocking=True) for t in source.batch(index))
        if channels_last:
            rgb = rgb.contiguous(memory_format=torch.channels_last)
            xyza = xyza.contiguous(memory_format=torch.channels_last)
        yield rgb, xyza, target


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def _model_device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


# --- evaluation ----------------------------------------------------------------------------------


def _evaluate(
    model: Callable[..., torch.Tensor],
    source: Source,
    loss_fn: LossFn,
    batch_size: int,
    device: torch.device,
    dtype: torch.dtype | None,
    channels_last: bool,
    group: distributed.Group = distributed.Group(),
) -> Evaluation:
    """The figures over ``source``; each process of ``group`` takes its own share of the samples
    and the sums are added over the processes, so every sample counts once."""
    index = group.shard_samples(len(source)).to(source.device)
    # Sums over many batches in float64, except on MPS, which has no float64.
    total = torch.float32 if device.type == "mps" else torch.float64
    loss_sum = torch.zeros((), dtype=total, device=device)
    distance_sum = torch.zeros((), dtype=total, device=device)
    objects = 0
    points = source.targets.shape[1] % 3 == 0
    with torch.inference_mode(), _autocast(device, dtype):
        for rgb, xyza, target in _batches(source, list(index.split(batch_size)), device, channels_last):
            output = model(rgb, xyza).float()
            # Batch losses are means over their samples; weighting by size gives the mean over all.
            loss_sum += loss_fn(output, target).to(total) * len(target)
            if points:
                diff = (output - target).reshape(len(target), -1, 3)
                distance_sum += torch.linalg.vector_norm(diff, dim=-1).sum(dtype=total)
                objects += diff.shape[0] * diff.shape[1]
    counts = torch.tensor([objects, len(index)], dtype=total, device=device)
    sums = group.all_reduce_sum(torch.cat((torch.stack((loss_sum, distance_sum)), counts)))
    loss, distance, objects, samples = sums.tolist()  # the one host synchronisation
    return Evaluation(loss / samples, distance / objects if points else None, int(samples))


def evaluate(
    model: nn.Module,
    data: Samples | TensorSamples | torch.utils.data.Dataset,
    *,
    loss_fn: LossFn | None = None,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    precision: str = "fp32",
    channels_last: bool | None = None,
) -> Evaluation:
    """The mean loss (MSE by default) over every sample of ``data`` and the mean position error.

    The position error is the distance between predicted and true centre of each object (targets
    read as ``(B, K, 3)``), averaged over objects and samples; ``None`` when the target size is not
    a multiple of 3. ``device``: where to run (``None``: where the model is). ``batch_size`` and
    ``channels_last`` default to what measured fastest on that device (32 and on for the CPU, 256
    and off elsewhere). Leaves the model in eval mode.
    """
    if len(data) == 0:  # type: ignore[arg-type]
        raise ValueError("data: no samples to evaluate")
    device = _model_device(model) if device is None else resolve_device(device)
    dtype = autocast_dtype(device, precision)
    source = _place(_as_source(data, "data"), device, "data")
    model.to(device).eval()
    batch_size = eval_batch_for(device, batch_size, 32)  # 32: the course's training batch
    channels_last = channels_last_for(device, channels_last)
    return _evaluate(model, source, loss_fn or nn.functional.mse_loss, batch_size, device, dtype, channels_last)


# --- training ------------------------------------------------------------------------------------


_SCHEDULERS = (torch.optim.lr_scheduler.LRScheduler, torch.optim.lr_scheduler.ReduceLROnPlateau)
OptimizerArg = Union[torch.optim.Optimizer, Callable[[Any], torch.optim.Optimizer], None]


def _trainable(model: nn.Module, params: Iterable[Any] | None) -> list[Any]:
    """Parameters (or parameter groups) that require grad; frozen ones are left out."""
    if params is None:
        chosen: list[Any] = [p for p in model.parameters() if p.requires_grad]
    else:
        chosen = []
        for item in params:
            if isinstance(item, Mapping):
                group = {**item, "params": [p for p in _as_list(item["params"]) if p.requires_grad]}
                if group["params"]:
                    chosen.append(group)
            elif item.requires_grad:
                chosen.append(item)
    if not chosen:
        raise ValueError("nothing to train: every parameter given has requires_grad=False")
    return chosen


def _as_list(params: Any) -> list[torch.Tensor]:
    return [params] if isinstance(params, torch.Tensor) else list(params)


def _build_optimizer(model: nn.Module, optimizer: OptimizerArg, params: Iterable[Any] | None, lr: float) -> torch.optim.Optimizer:
    if isinstance(optimizer, torch.optim.Optimizer):
        if params is not None:
            raise ValueError("params: an optimizer instance already holds its parameters; pass params or an instance, not both")
        return optimizer
    trainable = _trainable(model, params)
    if optimizer is None:
        return torch.optim.Adam(trainable, lr=lr)
    return optimizer(trainable)


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The shuffle of epoch ``epoch``: a function of (seed, epoch) only, so a resumed run draws the
    same orders, and different seeds never share one."""
    digest = hashlib.sha256(f"fusionzoo-shuffle:{seed}:{epoch}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little"))


def _train_epoch(
    forward: Callable[..., torch.Tensor],
    batches: Iterable[Batch],
    steps: int,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    loss_fn: LossFn,
    device: torch.device,
    dtype: torch.dtype | None,
    bar: tqdm,
) -> torch.Tensor:
    """One pass of optimiser steps; returns the ``(steps,)`` batch losses, on the CPU."""
    losses = torch.empty(steps, device=device)
    for i, (rgb, xyza, target) in enumerate(batches):
        with _autocast(device, dtype):
            loss = loss_fn(forward(rgb, xyza), target)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        # Kept on the device: reading a loss here would make the host wait for every step.
        losses[i] = loss.detach()
        bar.update()
    return losses.cpu()  # the epoch's one wait on the device


def _check_finite(losses: torch.Tensor, epoch: int, first_step: int, run_dir: Path | None) -> None:
    finite = torch.isfinite(losses)
    if bool(finite.all()):
        return
    bad = int((~finite).nonzero()[0])
    last = run_dir / LAST_FILE if run_dir is not None else None
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


def _run_paths(checkpoint_dir: str | Path | None, resume: str | Path | None) -> tuple[Path | None, Path | None]:
    state = None
    if resume is not None:
        resume = Path(resume)
        state = resume / STATE_FILE if resume.is_dir() else resume
    run_dir = Path(checkpoint_dir) if checkpoint_dir is not None else (state.parent if state is not None else None)
    if state is None and run_dir is not None:
        if (run_dir / STATE_FILE).exists():
            raise CheckpointError(
                f"{run_dir}: this folder already holds a run ({STATE_FILE}); pass resume={str(run_dir)!r} to continue it, "
                "or choose another checkpoint_dir"
            )
        if (run_dir / HISTORY_FILE).exists():
            raise CheckpointError(
                f"{run_dir}: this folder already holds a run ({HISTORY_FILE}) without the {STATE_FILE} to continue it "
                "from (dropped with keep_state=False, or never written); choose another checkpoint_dir"
            )
    return run_dir, state


def _resume(
    state_path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    seed: int,
    batch_size: int,
    group: distributed.Group,
) -> tuple[History, int, int]:
    """Load a run's stored state into the live objects; returns its history, last epoch and step."""
    stored = load_state(state_path, model, optimizer, scheduler=scheduler, scaler=scaler)
    stored_world = stored.get("world_size", 1)
    # Across process counts the per-process batch_size may differ while the global batch does not.
    checks = (("seed", seed), ("batch_size", batch_size)) if stored_world == group.world_size else (("seed", seed),)
    for name, value in checks:
        if stored.get(name) != value:
            log.warning("resuming %s with %s=%r (the run used %r): the data order changes", state_path, name, value, stored.get(name))
    if stored_world != group.world_size:
        log.warning("resuming %s: %s", state_path, distributed.world_change(stored_world, stored["batch_size"], group.world_size, batch_size))
    log.info("resuming %s after epoch %d", state_path, stored["epoch"])
    return History.from_records(stored["history"]), stored["epoch"], stored["step"]


def _step_scheduler(scheduler: Any, record: EpochRecord) -> None:
    """Step an epoch-wise scheduler; ``ReduceLROnPlateau`` watches the epoch's score."""
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(_score(record))
    else:
        scheduler.step()


def fit(
    model: nn.Module,
    train: Samples | TensorSamples | torch.utils.data.Dataset,
    valid: Samples | TensorSamples | torch.utils.data.Dataset | None = None,
    *,
    epochs: int = 20,
    lr: float = 1e-4,
    batch_size: int = 32,
    optimizer: OptimizerArg = None,
    scheduler: Any = None,
    loss_fn: LossFn | None = None,
    device: str | torch.device = "auto",
    precision: str = "fp32",
    seed: int = 0,
    checkpoint_dir: str | Path | None = None,
    resume: str | Path | None = None,
    progress: bool | None = None,
    params: Iterable[Any] | None = None,
    valid_batch_size: int | None = None,
    channels_last: bool | None = None,
    compile: bool = False,
    keep_state: bool = True,
) -> History:
    """Train ``model`` (``model(rgb, xyza) -> (B, T)``) on ``train`` for ``epochs`` epochs in total.

    Defaults are the course's protocol: Adam with ``lr``, MSE loss, shuffled batches of 32 with the
    last partial batch dropped, 20 epochs. ``train``/``valid`` are ``fusionzoo.data.Samples`` or any
    map-style dataset of ``(rgb, xyza, target)`` (stacked into tensors once).

    - ``optimizer``: an optimizer instance, or a factory ``f(params) -> Optimizer`` (default Adam).
      Only parameters with ``requires_grad`` are optimised; ``params`` may give parameter groups.
      Modules whose parameters are all frozen are kept in eval mode while training.
    - ``scheduler``: an LR scheduler instance or a factory ``f(optimizer)``, stepped once per epoch
      (``ReduceLROnPlateau`` with the validation loss, or the training loss without validation).
    - ``device``: ``"auto"`` (CUDA, then MPS, then CPU) or an explicit, available device; the data
      move there once when they fit. ``precision``: ``"fp32"``, ``"bf16"`` or ``"fp16"`` (CUDA,
      with a gradient scaler, which checks its gradients on the host every step).
      ``channels_last`` (default: on for the CPU, where it measured faster; the model is returned
      in the contiguous layout) and ``compile`` (off) are speed-ups; ``valid_batch_size`` defaults
      to ``batch_size`` on the CPU, 256 elsewhere.
    - ``seed``: seeds torch's global RNG and the per-epoch shuffle, so the same seed gives the same
      losses on the CPU. The model comes built: call ``torch.manual_seed`` before ``fusionzoo.create``
      for identical initial weights.
    - ``checkpoint_dir``: after every epoch, writes ``last.safetensors``, ``best.safetensors`` (lowest
      validation loss), ``history.csv`` and ``state.safetensors`` (everything needed to resume).
      While training, the folder is locked (``.lock``, gone at the end): another process given the
      same folder raises ``RunInUseError`` instead of training over this one. A folder that already
      holds a run is refused unless resumed. ``keep_state=False`` deletes ``state.safetensors`` (over
      half the folder) once the last epoch is written: an interrupted run still resumes, a finished
      one can no longer be continued.
    - ``resume``: a run folder (or its ``state.safetensors``); training continues from the stored
      epoch up to ``epochs`` and keeps writing to that folder unless ``checkpoint_dir`` says otherwise.
      On the CPU, the result equals bit for bit that of a run never stopped.
    - ``progress``: a tqdm bar; ``None`` shows it only on a terminal.

    Under ``torchrun`` (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` set) every process calls ``fit`` the
    same way and trains one DistributedDataParallel replica on ``cuda:LOCAL_RANK`` (or the CPU):
    ``batch_size`` is per process, the global batch ``batch_size * WORLD_SIZE``, and ``lr`` is used as
    given. Every epoch's shuffle is the same on every process, each taking its slice of each global
    batch, so the losses equal those of one process with the global batch, up to float reduction
    order. Validation splits the samples over the processes and counts each once; only rank 0
    shows progress, logs at INFO and writes the run folder. The process group is initialised unless
    it already is (and then destroyed at the end). See ``docs/distributed.md``.

    A NaN or infinite loss (checked once per epoch, so steps never wait on the host) raises
    ``NonFiniteLossError`` naming the epoch and step; checkpoints already written are kept.
    Returns the ``History``; the model is left on ``device``, in eval mode.
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    group = distributed.current()
    device = distributed.local_device(device, group)
    dtype = autocast_dtype(device, precision)
    loss_fn = loss_fn or nn.functional.mse_loss
    run_dir, state_path = _run_paths(checkpoint_dir, resume)
    if run_dir is not None:
        model_config(model)  # fail now, not after the first epoch, if the model cannot be checkpointed
    train_source = _place(_as_source(train, "train"), device, "train")
    valid_source = _place(_as_source(valid, "valid"), device, "valid") if valid is not None else None
    # Under torchrun each global batch of batch_size * world_size samples is shared out per step.
    loader = BatchLoader(train_source, batch_size * group.world_size, shuffle=True, drop_last=True)
    steps = len(loader)
    if steps == 0:
        per = f" x {group.world_size} processes" if group.distributed else ""
        raise ValueError(f"train: {len(train_source)} samples make no full batch of batch_size={batch_size}{per}")
    if valid_source is not None and len(valid_source) == 0:
        raise ValueError("valid: no samples; pass valid=None to train without validation")

    torch.manual_seed(seed)
    model.to(device)
    channels_last = channels_last_for(device, channels_last)
    valid_batch_size = eval_batch_for(device, valid_batch_size, batch_size, "valid_batch_size")
    if channels_last:
        model.to(memory_format=torch.channels_last)
    opt = _build_optimizer(model, optimizer, params, lr)
    sched = scheduler if scheduler is None or isinstance(scheduler, _SCHEDULERS) else scheduler(opt)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)

    # Only the process that writes the run folder holds its lock.
    writes_run = run_dir is not None and group.is_main
    with folder_lock(run_dir) if writes_run else contextlib.nullcontext():
        history, start, step = History(), 0, 0
        if state_path is not None:
            history, start, step = _resume(state_path, model, opt, sched, scaler, seed, batch_size, group)
        forward = torch.compile(model) if compile else model
        if group.distributed:
            log.info("%s", group.describe(batch_size))

        owns_group = distributed.start(group, device)
        shown = (None if progress is None else not progress) if group.is_main else True
        bar = tqdm(total=epochs * steps, initial=min(start, epochs) * steps, unit="batch", disable=shown)
        try:
            # Steps go through DDP; evaluation keeps the bare model, since DDP's forward may sync buffers
            # (a collective) and the validation shards differ in batch counts.
            train_forward = distributed.wrap(model, device, compile) if group.distributed else forward
            for epoch in range(start + 1, epochs + 1):
                bar.set_description(f"epoch {epoch}/{epochs}")
                began = time.perf_counter()
                lr_now = float(opt.param_groups[0]["lr"])
                loader.generator = _epoch_generator(seed, epoch)
                model.train()
                frozen_to_eval(model)
                batches = _batches(train_source, group.shard_batches(loader.indices()), device, channels_last)
                # Each process's step loss is the mean over its share; their mean is the global batch's.
                losses = group.all_reduce_mean(_train_epoch(train_forward, batches, steps, opt, scaler, loss_fn, device, dtype, bar))
                train_seconds = time.perf_counter() - began
                _check_finite(losses, epoch, step, run_dir)
                step += steps
                evaluation = None
                if valid_source is not None:
                    group.broadcast_buffers(model)
                    evaluation = _evaluate(forward, valid_source, loss_fn, valid_batch_size, device, dtype, channels_last, group)
                    if not math.isfinite(evaluation.loss):
                        raise NonFiniteLossError(f"the validation loss became {evaluation.loss} after epoch {epoch}", epoch, None)
                record = EpochRecord(
                    epoch=epoch,
                    train_loss=float(losses.double().mean()),
                    valid_loss=evaluation.loss if evaluation else None,
                    position_error=evaluation.position_error if evaluation else None,
                    lr=lr_now,
                    seconds=time.perf_counter() - began,
                    train_seconds=train_seconds,
                )
                history.epochs.append(record)
                if sched is not None:
                    _step_scheduler(sched, record)
                if writes_run:
                    _write_run(run_dir, model, opt, sched, scaler, history, epoch, step, seed, batch_size, group.world_size)
                log.info(
                    "epoch %d/%d: train loss %.4f, valid loss %s, position error %s (%.1f s)",
                    epoch, epochs, record.train_loss, _fmt(record.valid_loss), _fmt(record.position_error), record.seconds,
                )
                bar.set_postfix(train=f"{record.train_loss:.4f}", valid=_fmt(record.valid_loss))
            if writes_run and not keep_state:
                (run_dir / STATE_FILE).unlink(missing_ok=True)
            group.barrier()  # the run folder is complete before any process returns
        finally:
            bar.close()
            if owns_group:
                distributed.stop()
            if channels_last:
                # Hand back the usual layout: a channels_last model's outputs differ in the last bits
                # from those of the same weights reloaded (save() stores contiguous tensors).
                model.to(memory_format=torch.contiguous_format)
    if start >= epochs:
        log.info("%s already holds %d epochs; nothing to train for epochs=%d", state_path, start, epochs)
    model.eval()
    return history


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _write_run(
    run_dir: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: torch.amp.GradScaler,
    history: History,
    epoch: int,
    step: int,
    seed: int,
    batch_size: int,
    world_size: int,
) -> None:
    """Write the run folder after ``epoch``; the training state goes last, so it never runs ahead."""
    run_dir.mkdir(parents=True, exist_ok=True)
    save(model, run_dir / LAST_FILE)
    if history.best_epoch == epoch:
        save(model, run_dir / BEST_FILE)
    history.to_csv(run_dir / HISTORY_FILE)
    progress = {
        "epoch": epoch, "step": step, "seed": seed, "batch_size": batch_size, "world_size": world_size,
        "history": history.to_records(),
    }
    save_state(run_dir / STATE_FILE, model, optimizer, scheduler=scheduler, scaler=scaler, progress=progress)
