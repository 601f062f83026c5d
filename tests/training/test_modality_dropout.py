"""Modality-dropout training: off by default (the course's protocol bit for bit), deterministic
under the seed, never both inputs, recorded in the run's state and held on resume, and the same on
one process and two (gloo) for the same global batch."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from hypothesis import given, settings
from hypothesis import strategies as st

import fusionzoo
from fusionzoo.data import Samples
from fusionzoo.errors import CheckpointError
from fusionzoo.training.modality_dropout import DropoutPlan
from random_samples import random_samples

SIZE, SAMPLES, WORLD, HALF = 16, 48, 2, 8
FIT = dict(epochs=2, lr=1e-3, seed=5, progress=False)
TIMEOUT = 120


def make_samples(seed: int, count: int = SAMPLES) -> Samples:
    return random_samples(count, seed, SIZE)


def make_model(name: str = "matmul"):
    torch.manual_seed(0)
    return fusionzoo.create(name, image_size=SIZE, widths=(4, 8), hidden=(16,))


def train(p: float | None, name: str = "matmul", **options):
    model = make_model(name)
    extra = {} if p is None else {"modality_dropout": p}
    history = fusionzoo.fit(model, make_samples(1), make_samples(2, 16), batch_size=16, **FIT, **extra, **options)
    return history, model.state_dict()


def test_zero_is_the_default_and_changes_nothing_bit_for_bit():
    (default, w_default), (zero, w_zero) = train(None), train(0.0)
    assert default.train_losses == zero.train_losses and default.valid_losses == zero.valid_losses
    assert all(torch.equal(w_default[k], w_zero[k]) for k in w_default)


def test_dropout_changes_training_and_is_deterministic_under_the_seed():
    (first, w_first), (second, w_second), (plain, _) = train(0.5), train(0.5), train(0.0)
    assert first.train_losses == second.train_losses
    assert all(torch.equal(w_first[k], w_second[k]) for k in w_first)
    assert first.train_losses != plain.train_losses


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31), epoch=st.integers(1, 50), count=st.integers(1, 400), p=st.floats(0, 1))
def test_a_sample_never_loses_both_inputs_and_the_plan_is_a_function_of_seed_and_epoch(seed, epoch, count, p):
    plan = DropoutPlan.draw(seed, epoch, count, p)
    assert not (plan.rgb & plan.lidar).any()
    again = DropoutPlan.draw(seed, epoch, count, p)
    assert torch.equal(plan.rgb, again.rgb) and torch.equal(plan.lidar, again.lidar)
    if p == 0:
        assert not plan.rgb.any() and not plan.lidar.any()
    if p == 1:
        assert bool((plan.rgb | plan.lidar).all())


def test_about_p_of_the_samples_lose_an_input_split_evenly_between_the_sensors():
    plan = DropoutPlan.draw(0, 1, 20000, 0.3)
    assert float((plan.rgb | plan.lidar).float().mean()) == pytest.approx(0.3, abs=0.015)
    assert float(plan.rgb.float().mean()) == pytest.approx(0.15, abs=0.01)
    assert not torch.equal(plan.rgb, DropoutPlan.draw(0, 2, 20000, 0.3).rgb)


def test_a_dropped_input_is_replaced_by_the_models_fill():
    model = make_model()
    model.set_missing_fill({"rgb": [0.5, 0.25, 0.125, 1.0]})
    plan = DropoutPlan(torch.tensor([True, False, False]), torch.tensor([False, True, False]))
    rgb, xyza = torch.rand(3, 4, SIZE, SIZE), torch.rand(3, 4, SIZE, SIZE)
    index = torch.tensor([0, 1, 2])
    new_rgb, new_xyza = plan.apply(model, index, rgb, xyza)
    assert torch.equal(new_rgb[0], model.fill_missing("rgb", 1)[0]) and torch.equal(new_rgb[1:], rgb[1:])
    assert not new_xyza[1].any() and torch.equal(new_xyza[[0, 2]], xyza[[0, 2]])
    # Decided by sample index: the same samples in another order lose the same inputs.
    order = torch.tensor([2, 0, 1])
    shuffled = plan.apply(model, order, rgb[order], xyza[order])
    assert torch.equal(shuffled[0][1], new_rgb[0])


def test_the_state_records_it_and_a_resume_with_another_value_is_refused(tmp_path):
    data, valid = make_samples(1), make_samples(2, 16)
    fusionzoo.fit(make_model(), data, valid, batch_size=16, checkpoint_dir=tmp_path, **{**FIT, "epochs": 1}, modality_dropout=0.25,
                  keep_state=True)
    with pytest.raises(CheckpointError, match=r"modality_dropout=0.0 given, the run used modality_dropout=0.25"):
        fusionzoo.fit(make_model(), data, valid, batch_size=16, resume=tmp_path, **FIT)
    history = fusionzoo.fit(make_model(), data, valid, batch_size=16, resume=tmp_path, **FIT, modality_dropout=0.25)
    assert len(history) == 2
    uninterrupted, _ = train(0.25)
    assert history.train_losses == uninterrupted.train_losses


def test_a_probability_outside_zero_to_one_is_refused():
    with pytest.raises(ValueError, match="modality_dropout"):
        fusionzoo.fit(make_model(), make_samples(1), epochs=1, modality_dropout=1.5, progress=False)


# --- one process against two ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _recorded_fit(batch_size: int) -> dict:
    """Fit with modality dropout, recording every training batch the model is given."""
    model = make_model()
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def record(module, args):
        if not torch.is_inference_mode_enabled():  # a training step, not the validation pass
            seen.append((args[0].detach().clone().contiguous(), args[1].detach().clone().contiguous()))

    model.register_forward_pre_hook(record)
    history = fusionzoo.fit(model, make_samples(1), make_samples(2, 16), batch_size=batch_size, modality_dropout=0.5, **FIT)
    return {"inputs": seen, "train": history.train_losses, "weights": model.state_dict()}


def _worker(rank: int, port: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    torch.save(_recorded_fit(HALF), Path(folder) / f"rank{rank}.pt")


def test_two_processes_drop_the_same_inputs_as_one_with_the_same_global_batch(tmp_path):
    context = mp.spawn(_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=False)
    deadline = time.monotonic() + TIMEOUT
    while not context.join(timeout=1):
        if time.monotonic() > deadline:
            for process in context.processes:
                process.kill()
            pytest.fail(f"the {WORLD} ranks did not finish in {TIMEOUT} s")
    ranks = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(WORLD)]
    single = _recorded_fit(WORLD * HALF)
    assert len(single["inputs"]) == len(ranks[0]["inputs"]) == len(ranks[1]["inputs"])
    for step, (rgb, xyza) in enumerate(single["inputs"]):
        for rank, result in enumerate(ranks):
            share = slice(rank * HALF, (rank + 1) * HALF)
            assert torch.equal(result["inputs"][step][0], rgb[share]), (step, rank)  # bit-identical inputs
            assert torch.equal(result["inputs"][step][1], xyza[share]), (step, rank)
    assert any(not rgb.flatten(1).any(1).all() for rgb, _ in single["inputs"])  # some cameras were dropped
    for result in ranks:
        assert result["train"] == pytest.approx(single["train"], rel=1e-5)
        for key, value in single["weights"].items():
            torch.testing.assert_close(result["weights"][key], value, rtol=1e-4, atol=1e-6)
