"""``fit``: the training loop, top to bottom. The course's protocol (Adam, lr 1e-4, MSE, batch 32,
20 epochs), device-aware, resumable, and the same under torchrun.

What it loops over lives below it: the ``Run`` (model, optimiser, data on the device, one epoch's
steps), the ``RunFolder`` (the files a run writes, its lock, its rules) and the ``History``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ..data.samples import Samples, TensorSamples
from . import distributed
from .augment import check_probability as check_mirror
from .ema import check_decay
from .evaluation import LossFn
from .history import History
from .modality_dropout import check_probability
from .optimization import OptimizerArg, check_weight_decay
from .recipe import RunRecipe
from .run import Run, Settings
from .rundir import RunFolder
from .schedules import check_schedule

log = distributed.main_process_logger(__name__)


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
    keep_state: bool = False,
    modality_dropout: float = 0.0,
    weight_decay: float = 0.0,
    mirror: float = 0.0,
    schedule: str = "constant",
    warmup: float = 0.0,
    ema: float = 0.0,
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
      validation loss; each checkpoint carries its record: metrics, recipe, data contract),
      ``history.csv`` and ``state.safetensors`` (everything needed to resume). While training, the
      folder is locked (``.lock``, gone at the end): another process given the same folder raises
      ``RunInUseError`` instead of training over this one. A folder that already holds a run is
      refused unless resumed. When the run finishes, the state and ``last.safetensors`` (over two
      thirds of the folder) are deleted, leaving the best checkpoint and the history: an
      interrupted run resumes, a finished one cannot be continued unless ``keep_state=True``
      kept them.
    - ``resume``: a run folder (or its ``state.safetensors``); training continues from the stored
      epoch up to ``epochs`` and keeps writing to that folder unless ``checkpoint_dir`` says otherwise.
      On the CPU, the result equals bit for bit that of a run never stopped. Options that change what
      the run computes (``seed``, ``lr``, the global batch, ``precision``, and the options below) must
      be the run's: a difference raises ``CheckpointError`` naming the option, both values and the fix.
    - ``progress``: a tqdm bar; ``None`` shows it only on a terminal.
    - ``modality_dropout``: the probability ``p`` that a training sample loses one whole input, the
      camera or the LiDAR with equal odds (never both), replaced by what the model reads for an
      absent sensor (its ``missing_fill``, zeros by default). Decided per sample from (``seed``,
      epoch), so it is the same on any number of processes and on resume, where a different ``p``
      is refused like ``lr``. 0 (the default) is the course's protocol, unchanged bit for bit.

    Regularisers and schedules, each off by default (the course's protocol, bit for bit), each
    recorded in the state and the checkpoints' record and held on resume like ``lr``
    (``docs/training.md``; a head dropout is a model option, ``create(name, head_dropout=p)``):

    - ``weight_decay``: AdamW's decoupled decay instead of Adam, on the weights of two or more
      dimensions (biases and normalisations' scales are spared); only with the optimiser ``fit``
      builds.
    - ``mirror``: the probability that a training sample is replaced by its mirror image (camera
      image flipped, LiDAR azimuths reversed and ``x`` negated, targets' ``x`` negated), decided
      per sample from (``seed``, epoch). Only for data whose geometry makes it exact (the
      generator's, sensors on the plane ``x = 0``); ``NotMirrorSymmetricError`` otherwise.
    - ``schedule``: ``"constant"``, ``"cosine"`` or ``"onecycle"``: the learning rate of every
      optimiser step, ``lr`` its peak, after ``warmup`` epochs of linear warm-up (``onecycle``:
      its rise, 30% of the run when 0). A decaying schedule spans ``epochs``, which a resume must
      then keep. Not with ``scheduler``.
    - ``ema``: the decay (e.g. 0.999) of an exponential moving average of the weights, updated
      after every step; validation, the checkpoints and the returned model hold the average.

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
    folder = RunFolder.choose(checkpoint_dir, resume)
    schedule, warmup = check_schedule(schedule, warmup)
    settings = Settings(
        lr=lr, batch_size=batch_size, optimizer=optimizer, scheduler=scheduler, loss_fn=loss_fn, device=device,
        precision=precision, seed=seed, params=params, valid_batch_size=valid_batch_size,
        channels_last=channels_last, compile=compile, modality_dropout=check_probability(modality_dropout),
        epochs=epochs, weight_decay=check_weight_decay(weight_decay), mirror=check_mirror(mirror),
        schedule=schedule, warmup=warmup, ema=check_decay(ema),
    )
    run = Run.prepare(model, train, valid, settings, folder)
    recipe = RunRecipe.of(train, valid, epochs=epochs, device=run.placement.device, loss_fn=loss_fn, optimizer=optimizer,
                          weight_decay=settings.weight_decay)
    writes = folder is not None and run.group.is_main  # the main process alone locks and writes the folder
    with run.restoring_layout(), folder.opened(writes) if folder is not None else contextlib.nullcontext():
        history = run.resume(folder) if folder is not None and folder.resume_from is not None else History()
        start = len(history)
        if writes:
            folder.repair_history(history)
        hidden = (None if progress is None else not progress) if run.group.is_main else True  # None: on a terminal
        bar = tqdm(total=epochs * run.steps, initial=min(start, epochs) * run.steps, unit="batch", disable=hidden)
        with bar, run.connected():
            for epoch in range(start + 1, epochs + 1):
                bar.set_description(f"epoch {epoch}/{epochs}")
                record = run.epoch(epoch, bar)
                history.epochs.append(record)
                if writes:
                    folder.write_epoch(run.state, run.progress(history), recipe)
                log.info(
                    "epoch %d/%d: train loss %.4f, valid loss %s, position error %s (%.1f s)",
                    epoch, epochs, record.train_loss, _fmt(record.valid_loss), _fmt(record.position_error), record.seconds,
                )
                bar.set_postfix(train=f"{record.train_loss:.4f}", valid=_fmt(record.valid_loss))
            if writes and start < epochs:  # a call that trained nothing leaves the folder as it found it
                folder.finish(keep_state)
            run.group.barrier()  # the run folder is complete before any process returns
    if start >= epochs:
        log.info("%s already holds %d epochs; nothing to train for epochs=%d", folder.resume_from, start, epochs)
    model.eval()
    return history


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"
