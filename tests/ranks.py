"""Two gloo processes on one machine, started as torchrun starts them, for tests that compare them
with one process holding the same global batch."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

WORLD, TIMEOUT = 2, 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def enter_rank(rank: int, port: int) -> None:
    """Set the environment torchrun gives rank ``rank`` of ``WORLD``, one thread each."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)


def spawn_ranks(worker: Callable[[int, int, str], None], folder: Path) -> list[dict]:
    """Run ``worker(rank, port, folder)`` on ``WORLD`` processes; each saves ``folder/rankR.pt``,
    returned in rank order. A rank that fails stops the others; a hang fails the test."""
    context = mp.spawn(worker, args=(free_port(), str(folder)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + TIMEOUT
    while not context.join(timeout=1):  # raises, and stops the other rank, if one fails
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the {WORLD} ranks did not finish in {TIMEOUT} s")
    return [torch.load(folder / f"rank{rank}.pt") for rank in range(WORLD)]


def record_training_inputs(model: torch.nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The ``(rgb, xyza)`` of every training step ``model`` is given from now on (not validation)."""
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def record(module, args):
        if not torch.is_inference_mode_enabled():  # a training step, not the validation pass
            seen.append((args[0].detach().clone().contiguous(), args[1].detach().clone().contiguous()))

    model.register_forward_pre_hook(record)
    return seen


def assert_each_rank_got_its_share(single: list, ranks: list[list], half: int) -> None:
    """Every step's inputs of each rank equal, bit for bit, its slice of one process's global batch."""
    assert all(len(inputs) == len(single) for inputs in ranks)
    for step, (rgb, xyza) in enumerate(single):
        for rank, inputs in enumerate(ranks):
            share = slice(rank * half, (rank + 1) * half)
            assert torch.equal(inputs[step][0], rgb[share]), (step, rank)
            assert torch.equal(inputs[step][1], xyza[share]), (step, rank)
