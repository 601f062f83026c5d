"""Training on several processes launched by ``torchrun``: which process this is, the process group's
life, each process's share of the data, and sums across processes.

A run of ``W`` processes splits every global batch of ``batch_size * W`` samples into ``W`` contiguous
shares of ``batch_size`` (``batch_size`` is per process), so it sees the same global batches as one
process with a batch of ``batch_size * W``; DistributedDataParallel averages the gradients, so the
updates are the same up to the order of the float additions. Validation gives each process every
``W``-th sample and adds the sums, so every sample counts once. Outside ``torchrun`` everything here
is the identity: the ``Group`` of one process changes nothing.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..devices import resolve_device

#: The variables ``torchrun`` sets in every process it launches (with ``MASTER_ADDR``/``MASTER_PORT``).
TORCHRUN_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE")


@dataclass(frozen=True)
class Group:
    """This process's place in a training run.

    ``rank`` among ``world_size`` processes (0 is the main process, the one that logs and writes),
    ``local_rank`` among the processes on its machine (it picks the GPU, ``cuda:LOCAL_RANK``).
    ``distributed``: launched by ``torchrun`` or inside an initialised process group. The default,
    one process, makes every method below the identity and every sum a no-op.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    distributed: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard_batches(self, batches: list[torch.Tensor]) -> list[torch.Tensor]:
        """This process's share of each global batch: ``(batch_size * world_size,)`` index tensors in,
        the ``rank``-th contiguous ``(batch_size,)`` slice of each out."""
        if not self.distributed:
            return batches
        return [batch.tensor_split(self.world_size)[self.rank] for batch in batches]

    def shard_samples(self, count: int) -> torch.Tensor:
        """The ``(ceil((count - rank) / world_size),)`` indices ``rank, rank + world_size, ...`` of
        ``count`` samples: disjoint across processes and together every sample once (no padding)."""
        return torch.arange(count)[self.rank :: self.world_size]

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed element-wise over every process (same shape and device as given)."""
        if not self.distributed:
            return tensor
        # NCCL reduces CUDA tensors only; gloo takes host tensors (and CUDA ones).
        on = tensor.device
        if on.type != "cuda" and "gloo" not in str(dist.get_backend()):
            on = torch.device("cuda", torch.cuda.current_device())
        reduced = tensor.to(on, copy=True)
        dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
        return reduced.to(tensor.device)

    def all_reduce_mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` averaged element-wise over every process."""
        return self.all_reduce_sum(tensor) / self.world_size if self.distributed else tensor

    def broadcast_buffers(self, model: nn.Module) -> None:
        """Give every process the main process's buffers (e.g. BatchNorm statistics), which each
        process's last training step updated from its own share of the batch."""
        if self.distributed:
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)

    def barrier(self) -> None:
        """Wait until every process gets here (so files the main process wrote are complete)."""
        if self.distributed:
            dist.barrier()

    def describe(self, batch_size: int) -> str:
        """One line on the batch sizes and learning rate of a run of this group, for the log."""
        return (
            f"{self.world_size} processes x batch_size {batch_size} = global batch {batch_size * self.world_size}; "
            "the learning rate is used as given (not scaled with the global batch)"
        )


def current() -> Group:
    """This process's ``Group``: from the initialised process group, else from the ``torchrun``
    variables ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``, else a single process.

    ``ValueError`` names the variable when only some are set or one is not a valid number.
    """
    if dist.is_available() and dist.is_initialized():
        rank = dist.get_rank()
        return Group(rank, _variable("LOCAL_RANK", default=rank), dist.get_world_size(), True)
    present = [name for name in TORCHRUN_VARIABLES if name in os.environ]
    if not present:
        return Group()
    missing = [name for name in TORCHRUN_VARIABLES if name not in os.environ]
    if missing:
        raise ValueError(
            f"environment: {', '.join(present)} set but {', '.join(missing)} not; launch with torchrun, "
            f"which sets all of {', '.join(TORCHRUN_VARIABLES)}, or unset them to train in one process"
        )
    rank, local_rank, world_size = (_variable(name) for name in TORCHRUN_VARIABLES)
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"environment: RANK={rank} must lie in [0, WORLD_SIZE={world_size})")
    return Group(rank, local_rank, world_size, True)


def _variable(name: str, default: int | None = None) -> int:
    text = os.environ.get(name)
    if text is None and default is not None:
        return default
    try:
        value = int(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"environment: {name}={text!r} is not a whole number") from None
    if value < 0:
        raise ValueError(f"environment: {name}={value} must not be negative")
    return value


def is_main_process() -> bool:
    """Whether this process logs and writes: rank 0, or the only process outside ``torchrun``."""
    return current().is_main


def local_device(device: str | torch.device, group: Group) -> torch.device:
    """The device this process trains on.

    One process: ``resolve_device(device)``. Several: ``"auto"`` and a bare ``"cuda"`` mean
    ``cuda:LOCAL_RANK`` (``"auto"`` falls back to the CPU without CUDA: MPS has no backend for
    collectives, so ``"mps"`` is refused); an explicit ``"cuda:N"`` or ``"cpu"`` is kept.
    """
    if not group.distributed:
        return resolve_device(device)
    if isinstance(device, str) and device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        device = "cuda"
    resolved = resolve_device(device)  # checks the name and that the device exists here
    if resolved.type == "cuda" and torch.device(device).index is None:
        count = torch.cuda.device_count()
        if group.local_rank >= count:
            raise ValueError(
                f"device: LOCAL_RANK={group.local_rank} asks for cuda:{group.local_rank}, but this machine has "
                f"{count} CUDA device(s); launch at most {count} processes per node (--nproc-per-node)"
            )
        return torch.device("cuda", group.local_rank)
    if resolved.type == "mps":
        raise ValueError("device: 'mps' cannot train with several processes (torch.distributed has no MPS backend); use 'cpu'")
    return resolved


def start(group: Group, device: torch.device) -> bool:
    """Initialise the default process group for ``group`` unless one is already: NCCL for a CUDA
    ``device`` (made the current CUDA device), gloo otherwise; rendezvous through ``MASTER_ADDR``
    and ``MASTER_PORT``. Returns whether it initialised one (and so must ``stop`` it)."""
    if not group.distributed or dist.is_initialized():
        return False
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=group.rank, world_size=group.world_size)
    return True


def stop() -> None:
    """Tear down the default process group."""
    dist.destroy_process_group()


def wrap(model: nn.Module, device: torch.device, compile: bool = False) -> nn.Module:
    """``model`` in DistributedDataParallel (compiled after wrapping, as torch recommends, when
    ``compile``); the optimizer keeps ``model``'s parameters, which DDP shares. DDP first copies the
    main process's parameters and buffers to every process, so all start from the same weights."""
    ddp = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return torch.compile(ddp) if compile else ddp


def world_change(stored_world: int, stored_batch: int, world: int, batch: int) -> str:
    """What changes when a run of ``stored_world`` processes x ``stored_batch`` resumes on ``world`` x
    ``batch`` (the per-epoch global order depends on the seed and the epoch only, never on these)."""
    before, after = stored_world * stored_batch, world * batch
    change = f"the run used {_processes(stored_world)} x batch_size {stored_batch}, this one {_processes(world)} x {batch}"
    if before == after:
        return (
            f"{change} (the same global batch of {after}): every epoch draws the same global batches, but each "
            "process computes another share of each, so the results match an uninterrupted run only up to the "
            "order of float additions"
        )
    return (
        f"{change}: the global batch changes from {before} to {after}, so the batches, the steps per epoch and "
        "the training dynamics change (each epoch's sample order does not; the learning rate is not rescaled)"
    )


def _processes(count: int) -> str:
    return f"{count} process" + ("" if count == 1 else "es")


def main_process_logger(name: str) -> logging.Logger:
    """``logging.getLogger(name)`` with ``MainProcessFilter``: under torchrun one process reports the run."""
    logger = logging.getLogger(name)
    if not any(isinstance(f, MainProcessFilter) for f in logger.filters):
        logger.addFilter(MainProcessFilter())
    return logger


class MainProcessFilter(logging.Filter):
    """Passes INFO and DEBUG records on the main process only; warnings and errors on every process."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        try:
            return is_main_process()
        except ValueError:  # a malformed environment is reported where training starts, not here
            return True
