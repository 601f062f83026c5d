"""Modality-dropout training: off by default (the course's protocol bit for bit), deterministic
under the seed, never both inputs, recorded in the run's state and held on resume, and the same on
one process and two (gloo) for the same global batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fusionzoo
from fusionzoo.data import Samples
from fusionzoo.errors import CheckpointError
from fusionzoo.training.modality_dropout import DropoutPlan
from random_samples import random_samples
from ranks import WORLD, assert_each_rank_got_its_share, enter_rank, record_training_inputs, spawn_ranks

SIZE, SAMPLES, HALF = 16, 48, 8
FIT = dict(epochs=2, lr=1e-3, seed=5, progress=False, device="cpu")  # the references are CPU runs


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


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_cuda_dropping_inputs_makes_the_host_wait_for_nothing():
    """A wait per step (the fill built on the device from host values) slows training on a GPU."""
    model = make_model()
    model.set_missing_fill({"rgb": [0.5, 0.25, 0.125, 1.0]})
    plan = DropoutPlan(torch.tensor([True, False, False]), torch.tensor([False, True, False]))
    index, rgb, xyza = torch.tensor([0, 1, 2]), torch.rand(3, 4, SIZE, SIZE), torch.rand(3, 4, SIZE, SIZE)
    expected = plan.apply(model, index, rgb, xyza)
    on_device = model.cuda(), rgb.cuda(), xyza.cuda()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        got = plan.apply(on_device[0], index, *on_device[1:])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    for name, a, b in zip(("rgb", "xyza"), got, expected):
        assert torch.equal(a.cpu(), b), name


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
        fusionzoo.fit(make_model(), make_samples(1), epochs=1, modality_dropout=1.5, progress=False, device="cpu")


# --- one process against two ------------------------------------------------------------------------


def _recorded_fit(batch_size: int) -> dict:
    """Fit with modality dropout, recording every training batch the model is given."""
    model = make_model()
    seen = record_training_inputs(model)
    history = fusionzoo.fit(model, make_samples(1), make_samples(2, 16), batch_size=batch_size, modality_dropout=0.5, **FIT)
    return {"inputs": seen, "train": history.train_losses, "weights": model.state_dict()}


def _worker(rank: int, port: int, folder: str) -> None:
    enter_rank(rank, port)
    torch.save(_recorded_fit(HALF), Path(folder) / f"rank{rank}.pt")


def test_two_processes_drop_the_same_inputs_as_one_with_the_same_global_batch(tmp_path):
    ranks = spawn_ranks(_worker, tmp_path)
    single = _recorded_fit(WORLD * HALF)
    assert_each_rank_got_its_share(single["inputs"], [r["inputs"] for r in ranks], HALF)  # bit-identical inputs
    assert any(not rgb.flatten(1).any(1).all() for rgb, _ in single["inputs"])  # some cameras were dropped
    for result in ranks:
        assert result["train"] == pytest.approx(single["train"], rel=1e-5)
        for key, value in single["weights"].items():
            torch.testing.assert_close(result["weights"][key], value, rtol=1e-4, atol=1e-6)
