"""The regularised recipe's options of ``fit``: weight decay, mirror, schedules and the weights'
moving average. Off by default, where a fit is the course's bare loop bit for bit; each recorded in
the state and the checkpoints' record, held on resume, and a resumed run equal to one never stopped."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import fusionzoo
from fusionzoo.data import Samples
from fusionzoo.errors import CheckpointError
from fusionzoo.training.ema import WeightAverage
from fusionzoo.training.optimization import build_optimizer
from fusionzoo.training.run import epoch_generator
from fusionzoo.training.schedules import Schedule
from random_samples import random_samples
from ranks import WORLD, assert_each_rank_got_its_share, enter_rank, record_training_inputs, spawn_ranks

SIZE, BATCH = 16, 16
#: What the generator's config says of the default scene's sensors: on the mirror plane x = 0.
SYMMETRIC_SCENE = {"camera_position": [0.0, -24.0, 8.0], "lidar_position": [0.0, -24.0, 8.0], "look_at": [0.0, 0.0, 0.0],
                   "shapes": ["cube", "cube", "cube"]}
RECIPE = dict(weight_decay=0.1, mirror=0.5, schedule="cosine", warmup=1, ema=0.9)
OFF = dict(weight_decay=0.0, mirror=0.0, schedule="constant", warmup=0, ema=0.0)


def samples(count: int, seed: int) -> Samples:
    """Random samples whose source says they come from a mirror-symmetric generated scene."""
    data = random_samples(count, seed, SIZE)
    data.source = {"dataset": {"scene": {"config": SYMMETRIC_SCENE}}}
    return data


@pytest.fixture(scope="module")
def train() -> Samples:
    return samples(48, seed=1)


@pytest.fixture(scope="module")
def valid() -> Samples:
    return samples(16, seed=2)


def make_model(seed: int = 0, **options) -> torch.nn.Module:
    torch.manual_seed(seed)
    return fusionzoo.create("matmul", image_size=SIZE, widths=(4, 8), hidden=(16,), **options)


def fit(model, train, valid=None, **options):
    return fusionzoo.fit(model, train, valid, **{"lr": 1e-3, "batch_size": BATCH, "seed": 5, "progress": False, "device": "cpu", **options})


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


# --- off by default ---------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, OFF], ids=["defaults", "explicitly-off"])
def test_a_default_fit_is_the_course_loop_bit_for_bit(train, options):
    """Adam at lr, MSE, the shuffle of (seed, epoch), nothing else: no decay, schedule, average or mirror."""
    fitted = make_model()
    fusionzoo.fit(fitted, train, epochs=2, batch_size=BATCH, seed=3, channels_last=False, progress=False, **options, device="cpu")

    bare = make_model()
    torch.manual_seed(3)
    optimizer = torch.optim.Adam(bare.parameters(), lr=1e-4)
    bare.train()
    for epoch in (1, 2):
        order = torch.randperm(len(train), generator=epoch_generator(3, epoch))
        for index in order[: len(train) // BATCH * BATCH].split(BATCH):
            rgb, xyza, target = train.batch(index)
            loss = F.mse_loss(bare(rgb, xyza), target)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    assert_same_weights(fitted, bare)


# --- weight decay -----------------------------------------------------------------------------------


def test_weight_decay_is_adamw_on_the_weights_sparing_biases_and_norms():
    model = make_model(feature_norm=True)
    optimizer = build_optimizer(model, None, None, 1e-3, weight_decay=0.05)
    assert type(optimizer) is torch.optim.AdamW
    decayed, spared = optimizer.param_groups
    assert decayed["weight_decay"] == 0.05 and spared["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decayed["params"]) and all(p.dim() == 1 for p in spared["params"])
    assert any(p is model.feature_norms["rgb"].weight for p in spared["params"])
    assert any(p is model.head.output_layer.bias for p in spared["params"])
    assert len(decayed["params"]) + len(spared["params"]) == len(list(model.parameters()))
    assert type(build_optimizer(model, None, None, 1e-3)) is torch.optim.Adam  # the course's, without it


def test_weight_decay_splits_parameter_groups_and_keeps_a_groups_own_decay():
    model = make_model()
    groups = [{"params": model.encoders.parameters(), "lr": 1e-4}, {"params": model.head.parameters(), "weight_decay": 0.0}]
    optimizer = build_optimizer(model, None, groups, 1e-3, weight_decay=0.1)
    assert [(g["lr"], g["weight_decay"]) for g in optimizer.param_groups] == [(1e-4, 0.1), (1e-4, 0.0), (1e-3, 0.0)]
    assert len(optimizer.param_groups[2]["params"]) == len(list(model.head.parameters()))


def test_weight_decay_shrinks_the_weights_and_is_recorded(train, tmp_path):
    plain, decayed = make_model(), make_model()
    fit(plain, train, epochs=2)
    fit(decayed, train, epochs=2, weight_decay=50.0, checkpoint_dir=tmp_path)
    norm = lambda m: sum(float(p.detach().norm()) for p in m.parameters() if p.dim() >= 2)  # noqa: E731
    assert norm(decayed) < 0.95 * norm(plain)
    recipe = fusionzoo.read_record(tmp_path / "best.safetensors").record.recipe
    assert recipe["weight_decay"] == 50.0 and recipe["optimizer"] == "adamw"


def test_weight_decay_applies_to_fits_own_optimiser_only_and_must_be_at_least_zero(train):
    with pytest.raises(ValueError, match="weight_decay: applies to the optimizer fit builds"):
        fit(make_model(), train, epochs=1, weight_decay=0.1, optimizer=lambda ps: torch.optim.SGD(ps, lr=0.1))
    for bad in (-0.1, float("nan"), True):
        with pytest.raises(ValueError, match="weight_decay must be"):
            fit(make_model(), train, epochs=1, weight_decay=bad)


# --- schedules --------------------------------------------------------------------------------------


def test_schedules_warm_up_linearly_and_decay_by_their_shape():
    cosine = Schedule.of("cosine", 1, epochs=4, steps_per_epoch=10)
    assert [cosine.factor(s) for s in range(10)] == [(s + 1) / 10 for s in range(10)]
    assert cosine.factor(10) == 1.0 and cosine.factor(25) == pytest.approx(0.5) and 0 < cosine.factor(39) < 0.01
    constant = Schedule.of("constant", 0.5, epochs=4, steps_per_epoch=10)
    assert [constant.factor(s) for s in (0, 4, 5, 39)] == [0.2, 1.0, 1.0, 1.0]
    onecycle = Schedule.of("onecycle", 0, epochs=10, steps_per_epoch=10)  # rises over 30% of the run
    assert onecycle.warmup == 30 and onecycle.factor(0) == pytest.approx(1 / 25) and onecycle.factor(30) == 1.0
    assert onecycle.factor(99) == pytest.approx(1 / 25 / 1e4) and onecycle.factor(64) == pytest.approx(0.5, abs=0.02)
    assert Schedule.of("constant", 0, epochs=4, steps_per_epoch=10) is None  # nothing to set: the course's


def test_the_rate_is_set_every_step_and_the_history_shows_each_epochs_first(train):
    seen = []

    class Spy(torch.optim.Adam):
        def step(self, closure=None):
            seen.append(self.param_groups[0]["lr"])
            return super().step(closure)

    history = fit(make_model(), train, epochs=3, schedule="cosine", warmup=1, optimizer=lambda ps: Spy(ps, lr=1e-3))
    steps = len(train) // BATCH
    expected = [1e-3 * Schedule.of("cosine", 1, 3, steps).factor(s) for s in range(3 * steps)]
    assert seen == pytest.approx(expected, rel=1e-12)
    assert [e.lr for e in history.epochs] == pytest.approx(expected[::steps], rel=1e-12)


def test_a_schedule_and_a_scheduler_together_are_refused_and_names_are_checked(train):
    with pytest.raises(ValueError, match="pass a scheduler or a schedule, not both"):
        fit(make_model(), train, epochs=1, schedule="cosine", scheduler=lambda o: torch.optim.lr_scheduler.StepLR(o, 1))
    with pytest.raises(KeyError, match="cosine"):
        fit(make_model(), train, epochs=1, schedule="cosin")
    with pytest.raises(ValueError, match="warmup must be"):
        fit(make_model(), train, epochs=1, warmup=-1)


# --- validation -----------------------------------------------------------------------------------


def test_validation_runs_with_head_dropout_off(train, valid):
    model = make_model(head_dropout=0.5)
    history = fit(model, train, valid, epochs=2)
    for _ in range(2):  # the same figure every time: no dropout mask drawn
        assert history.valid_losses[-1] == pytest.approx(fusionzoo.evaluate(model, valid, batch_size=BATCH).loss, rel=1e-5)
    assert not model.training


def test_validation_leaves_batchnorm_statistics_to_the_training_samples(train, valid):
    """Validating in train mode would fold the validation samples into BatchNorm's running statistics
    (and normalise each validation batch by its own): the weights would depend on the validation set."""
    def early() -> torch.nn.Module:
        torch.manual_seed(0)
        return fusionzoo.create("early", image_size=SIZE, widths=(4, 8), hidden=(16,), input_norm=True)

    validated, not_validated = early(), early()
    fit(validated, train, valid, epochs=2)
    fit(not_validated, train, None, epochs=2)
    assert_same_weights(validated, not_validated)
    assert validated.input_norm.num_batches_tracked == 2 * (len(train) // BATCH)

# --- the weights' moving average --------------------------------------------------------------------


def test_ema_validates_and_returns_the_moving_average_of_the_steps(train, valid):
    decay, trajectory = 0.8, []

    class Recording(torch.optim.Adam):
        def step(self, closure=None):
            result = super().step(closure)
            trajectory.append([p.detach().clone() for p in self.param_groups[0]["params"]])
            return result

    model = make_model()
    history = fit(model, train, valid, epochs=2, ema=decay, optimizer=lambda ps: Recording(ps, lr=1e-3))
    average = [w.clone() for w in trajectory[0]]
    for n, weights in enumerate(trajectory[1:], start=1):
        d = min(decay, (1 + n) / (10 + n))
        for a, w in zip(average, weights):
            a.lerp_(w, 1 - d)
    for a, p in zip(average, model.parameters()):
        assert torch.equal(a, p)
    # Validated in channels_last, evaluated contiguous: equal to the last bits' rounding.
    assert history.valid_losses[-1] == pytest.approx(fusionzoo.evaluate(model, valid, batch_size=BATCH).loss, rel=1e-5)
    assert not torch.equal(trajectory[-1][0], next(model.parameters()))  # the average, not the last step


def test_ema_needs_an_optimiser_that_keeps_state(train):
    with pytest.raises(ValueError, match="ema: SGD keeps no per-parameter state"):
        fit(make_model(), train, epochs=1, ema=0.9, optimizer=lambda ps: torch.optim.SGD(ps, lr=1e-3))
    for bad in (1.0, -0.5):
        with pytest.raises(ValueError, match="ema must be a decay"):
            fit(make_model(), train, epochs=1, ema=bad)


def test_the_average_swaps_in_and_out_in_place():
    model = make_model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(torch.rand(2, 4, SIZE, SIZE), torch.rand(2, 4, SIZE, SIZE)).sum().backward()
    optimizer.step()
    average = WeightAverage(optimizer, 0.5)
    average.update(0)
    weight = model.head.output_layer.weight
    live, storage = weight.detach().clone(), weight.data_ptr()
    with torch.no_grad():
        weight.add_(1.0)
    average.swap()
    assert torch.equal(weight, live) and weight.data_ptr() == storage  # the model keeps its tensor
    with pytest.raises(RuntimeError, match="swap it back"):
        average.update(1)
    average.swap()
    assert torch.equal(weight, live + 1.0)


# --- recorded, held on resume, and exact ---------------------------------------------------------------


class Interrupted(Exception):
    pass


def interrupting_loss(after_steps: int):
    """MSE that stops the run at training step ``after_steps + 1``, as a kill would."""
    steps = []

    def loss(prediction, target):
        if torch.is_grad_enabled():
            steps.append(1)
            if len(steps) > after_steps:
                raise Interrupted
        return F.mse_loss(prediction, target)

    return loss


def test_a_run_with_every_option_interrupted_resumes_bit_identical_to_one_never_stopped(train, valid, tmp_path):
    straight = make_model(head_dropout=0.2)
    straight_history = fit(straight, train, valid, epochs=3, **RECIPE)

    with pytest.raises(Interrupted):  # killed in epoch 2, after epoch 1's state was written
        fit(make_model(head_dropout=0.2), train, valid, epochs=3, checkpoint_dir=tmp_path,
            loss_fn=interrupting_loss(len(train) // BATCH + 1), **RECIPE)
    resumed = make_model(seed=99, head_dropout=0.2)  # other initial weights: everything comes from the folder
    resumed_history = fit(resumed, train, valid, epochs=3, resume=tmp_path, **RECIPE)

    assert resumed_history.train_losses == straight_history.train_losses
    assert resumed_history.valid_losses == straight_history.valid_losses
    assert [e.lr for e in resumed_history.epochs] == [e.lr for e in straight_history.epochs]
    assert_same_weights(resumed, straight)


def test_the_options_are_recorded_in_the_state_and_the_record(train, tmp_path):
    fit(make_model(), train, epochs=1, checkpoint_dir=tmp_path, keep_state=True, **RECIPE)
    for name in ("best", "last", "state"):
        recipe = fusionzoo.read_record(tmp_path / f"{name}.safetensors").record.recipe
        assert {k: recipe[k] for k in RECIPE} == {**RECIPE, "warmup": 1.0}, name


@pytest.fixture(scope="module")
def interrupted(train, tmp_path_factory):
    """A run of 2 epochs with every option, killed in epoch 2 (a refused resume leaves it as it is)."""
    folder = tmp_path_factory.mktemp("interrupted")
    with pytest.raises(Interrupted):
        fit(make_model(), train, epochs=2, checkpoint_dir=folder, loss_fn=interrupting_loss(len(train) // BATCH), **RECIPE)
    return folder


@pytest.mark.parametrize(("change", "message"), [
    ({"weight_decay": 0.2}, "weight_decay=0.2 given, the run used weight_decay=0.1"),
    ({"mirror": 0.0}, "mirror=0.0 given, the run used mirror=0.5"),
    ({"schedule": "onecycle"}, "schedule='onecycle' given, the run used schedule='cosine'"),
    ({"warmup": 0}, "warmup=0.0 given, the run used warmup=1.0"),
    ({"ema": 0.99}, "ema=0.99 given, the run used ema=0.9"),
    ({"epochs": 4}, "epochs=4 given, the run used epochs=2"),  # the cosine spans the run's epochs
])
def test_a_resume_with_another_value_is_refused_naming_it(train, interrupted, change, message):
    options = {"epochs": 2, **RECIPE, **change}
    with pytest.raises(CheckpointError, match=message):
        fit(make_model(), train, resume=interrupted, **options)


def test_turning_weight_decay_on_at_a_resume_is_refused(train, tmp_path):
    fit(make_model(), train, epochs=1, checkpoint_dir=tmp_path, keep_state=True)
    # The recipe is checked before the optimizer's groups (AdamW splits decayed from not) are loaded.
    with pytest.raises(CheckpointError, match=r"weight_decay=0.1 given, the run used weight_decay=0.0.*resume with weight_decay=0.0"):
        fit(make_model(), train, epochs=2, resume=tmp_path, weight_decay=0.1)


def test_a_constant_rate_with_warm_up_continues_to_more_epochs(train, tmp_path):
    straight = fit(make_model(), train, epochs=3, warmup=2)
    fit(make_model(), train, epochs=2, warmup=2, checkpoint_dir=tmp_path, keep_state=True)
    resumed = fit(make_model(), train, epochs=3, warmup=2, resume=tmp_path)
    assert resumed.train_losses == straight.train_losses
    # Three steps an epoch: epoch 2 starts at step 4 of the 6-step warm-up, epoch 3 at the peak.
    assert [e.lr for e in resumed.epochs] == pytest.approx([1e-3 / 6, 1e-3 * 4 / 6, 1e-3], rel=1e-12)


# --- one process against two ------------------------------------------------------------------------

HALF = 8


def _recipe_fit(batch_size: int) -> dict:
    """Fit with every option on, recording every training batch the model is given."""
    model = make_model()
    seen = record_training_inputs(model)
    history = fit(model, samples(48, seed=1), samples(16, seed=2), epochs=2, batch_size=batch_size, **RECIPE)
    return {"inputs": seen, "train": history.train_losses, "valid": history.valid_losses, "weights": model.state_dict()}


def _worker(rank: int, port: int, folder: str) -> None:
    enter_rank(rank, port)
    torch.save(_recipe_fit(HALF), Path(folder) / f"rank{rank}.pt")


def test_two_processes_mirror_the_same_samples_and_average_the_same_weights_as_one(tmp_path):
    """Under torchrun each process takes its half of every global batch: the mirrored inputs are
    bit-identical, the losses and the averaged weights equal up to the order of float additions."""
    ranks = spawn_ranks(_worker, tmp_path)
    single = _recipe_fit(WORLD * HALF)
    assert_each_rank_got_its_share(single["inputs"], [r["inputs"] for r in ranks], HALF)
    for result in ranks:
        assert result["train"] == pytest.approx(single["train"], rel=1e-5)
        assert result["valid"] == pytest.approx(single["valid"], rel=1e-5)
        for key, value in single["weights"].items():
            torch.testing.assert_close(result["weights"][key], value, rtol=1e-4, atol=1e-6)
    for key in single["weights"]:  # both processes hold the same average
        assert torch.equal(ranks[0]["weights"][key], ranks[1]["weights"][key]), key
