"""The trainer: the course's protocol, figures per epoch, seeding, exact resume, failures, devices."""

from __future__ import annotations

import errno
import logging
import math
import os
import subprocess
import sys
import warnings

import pytest
import torch
from torch import nn

import fusionzoo
from fusionzoo import CheckpointError, NonFiniteLossError, RunInUseError
from fusionzoo._files import folder_lock
from fusionzoo.data import Samples, TensorSamples
from fusionzoo.registry import ModelConfig
from fusionzoo.training.history import History

from random_samples import random_samples
from safetensors_files import rewrite

SIZE = 16


def make_samples(count: int, seed: int, outputs: int = 9) -> Samples:
    return random_samples(count, seed, SIZE, outputs)


def make_model(name: str = "matmul", seed: int = 0, **overrides) -> nn.Module:
    torch.manual_seed(seed)
    return fusionzoo.create(name, **{"image_size": SIZE, "widths": (4, 8), "hidden": (16,), **overrides})


@pytest.fixture(scope="module")
def train() -> Samples:
    return make_samples(48, seed=1)


@pytest.fixture(scope="module")
def valid() -> Samples:
    return make_samples(37, seed=2)


def weights(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# --- protocol and figures ------------------------------------------------------------------------


def test_fit_lowers_the_training_loss_on_a_learnable_target(train):
    constant = make_samples(48, seed=1)
    constant.targets = torch.tensor([1.0, -2.0, 3.0] * 3).expand(48, 9).clone()
    history = fusionzoo.fit(make_model(), constant, epochs=6, lr=3e-3, batch_size=16, progress=False, device="cpu")
    assert history.train_losses[-1] < 0.5 * history.train_losses[0]


def test_history_has_one_record_per_epoch_with_every_figure(train, valid):
    history = fusionzoo.fit(make_model(), train, valid, epochs=2, lr=1e-3, batch_size=16, progress=False, device="cpu")
    assert [e.epoch for e in history.epochs] == [1, 2]
    for record in history.epochs:
        assert math.isfinite(record.train_loss) and math.isfinite(record.valid_loss)
        assert record.position_error > 0
        assert record.lr == 1e-3
        assert record.seconds >= record.train_seconds > 0
    assert history.best_valid_loss == min(history.valid_losses)
    assert history.epochs[history.best_epoch - 1].valid_loss == history.best_valid_loss


def test_validation_figures_count_every_sample_once(train, valid):
    model = make_model()
    history = fusionzoo.fit(model, train, valid, epochs=1, batch_size=16, valid_batch_size=10, progress=False, device="cpu")
    # Recompute by hand over the whole validation set in one batch (37 samples, batches of 10 above).
    rgb, xyza, target = valid.batch(torch.arange(len(valid)))
    with torch.no_grad():
        output = model(rgb, xyza)
    expected_loss = nn.functional.mse_loss(output, target).item()
    expected_error = (output - target).view(-1, 3, 3).norm(dim=-1).mean().item()
    assert history.epochs[0].valid_loss == pytest.approx(expected_loss, rel=1e-5)
    assert history.epochs[0].position_error == pytest.approx(expected_error, rel=1e-5)
    evaluation = fusionzoo.evaluate(model, valid, batch_size=8)
    assert evaluation.samples == 37
    assert evaluation.loss == pytest.approx(expected_loss, rel=1e-5)


def test_position_error_is_none_when_targets_are_not_points():
    data = make_samples(20, seed=3, outputs=4)
    history = fusionzoo.fit(make_model(num_outputs=4), data, data, epochs=1, batch_size=10, progress=False, device="cpu")
    assert history.epochs[0].position_error is None
    assert history.epochs[0].valid_loss is not None


def test_history_csv_round_trips_exactly(train, valid, tmp_path):
    history = fusionzoo.fit(make_model(), train, valid, epochs=2, batch_size=16, checkpoint_dir=tmp_path, progress=False, device="cpu")
    assert History.from_csv(tmp_path / "history.csv") == history
    no_valid = fusionzoo.fit(make_model(), train, epochs=1, batch_size=16, progress=False, device="cpu")
    assert History.from_csv(no_valid.to_csv(tmp_path / "h.csv")) == no_valid


def test_run_folder_holds_last_best_history_and_state(train, valid, tmp_path):
    model = make_model()
    history = fusionzoo.fit(model, train, valid, epochs=3, lr=1e-3, batch_size=16, checkpoint_dir=tmp_path,
                            keep_state=True, progress=False, device="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.safetensors", "history.csv", "last.safetensors", "state.safetensors"]
    assert_identical(weights(fusionzoo.load(tmp_path / "last.safetensors")), weights(model))
    assert_identical(weights(fusionzoo.load(tmp_path / "state.safetensors")), weights(model))
    best = fusionzoo.load(tmp_path / "best.safetensors")
    assert fusionzoo.evaluate(best, valid).loss == pytest.approx(history.best_valid_loss, rel=1e-6)


def test_torch_dataset_of_tuples_is_accepted(train):
    items = [train[i] for i in range(len(train))]
    dataset = torch.utils.data.TensorDataset(*(torch.stack(column) for column in zip(*items)))
    from_samples = fusionzoo.fit(make_model(), train, epochs=2, batch_size=16, progress=False, device="cpu")
    from_dataset = fusionzoo.fit(make_model(), dataset, epochs=2, batch_size=16, progress=False, device="cpu")
    assert from_dataset.train_losses == pytest.approx(from_samples.train_losses, rel=1e-5)
    index = torch.tensor([3, 0, 7])
    for a, b in zip(TensorSamples.from_dataset(dataset).batch(index), train.batch(index)):
        assert torch.equal(a, b)


# --- optimizers, schedulers, parameter groups, frozen parts -------------------------------------


def test_optimizer_and_scheduler_factories_are_used(train):
    history = fusionzoo.fit(
        make_model(), train, epochs=3, batch_size=16, progress=False,
        optimizer=lambda params: torch.optim.SGD(params, lr=0.01),
        scheduler=lambda opt: torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5), device="cpu")
    assert [e.lr for e in history.epochs] == pytest.approx([0.01, 0.005, 0.0025])


def test_parameter_groups_set_per_part_learning_rates(train):
    model = make_model()
    head, before = model.parts()["head"], weights(model)
    rest = [p for n, p in model.named_parameters() if not n.startswith("head.")]
    groups = [{"params": head.parameters(), "lr": 0.0}, {"params": rest, "lr": 1e-3}]
    fusionzoo.fit(model, train, epochs=1, batch_size=16, params=groups, progress=False, device="cpu")
    after = weights(model)
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("head."))
    assert not all(torch.equal(before[k], after[k]) for k in before if k.startswith("encoders."))


def test_frozen_parameters_are_untouched_and_frozen_modules_stay_in_eval_mode(train):
    model = make_model()
    encoders = model.parts()["encoders"]
    encoders.requires_grad_(False)
    modes: list[bool] = []
    model.encoders["rgb"].register_forward_pre_hook(lambda module, args: modes.append(module.training))
    heads_seen: list[bool] = []
    model.head.register_forward_pre_hook(lambda module, args: heads_seen.append(module.training))
    before = weights(model)
    fusionzoo.fit(model, train, epochs=2, lr=1e-2, batch_size=16, progress=False, device="cpu")
    after = weights(model)
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("encoders."))
    assert not torch.equal(before["head.layers.1.weight"], after["head.layers.1.weight"])
    assert modes == [False] * len(modes) and modes
    assert True in heads_seen


def test_training_nothing_is_an_error(train):
    model = make_model().requires_grad_(False)
    with pytest.raises(ValueError, match="nothing to train"):
        fusionzoo.fit(model, train, epochs=1, progress=False, device="cpu")


# --- seeding and resume ---------------------------------------------------------------------------


def test_same_seed_gives_identical_losses_and_another_seed_does_not(train, valid):
    def run(seed):
        return fusionzoo.fit(make_model(), train, valid, epochs=2, batch_size=16, seed=seed, progress=False, device="cpu")

    first, again, other = run(0), run(0), run(1)
    assert first.train_losses == again.train_losses and first.valid_losses == again.valid_losses
    assert first.train_losses != other.train_losses


def test_resume_after_epoch_one_ends_bit_identical_to_an_uninterrupted_run(train, valid, tmp_path):
    def schedule(opt):
        return torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)

    options = dict(lr=1e-3, batch_size=16, seed=5, scheduler=schedule, progress=False)
    straight = make_model()
    straight_history = fusionzoo.fit(straight, train, valid, epochs=3, **options, device="cpu")

    stopped = make_model()
    fusionzoo.fit(stopped, train, valid, epochs=1, checkpoint_dir=tmp_path, keep_state=True, **options, device="cpu")
    resumed = make_model(seed=99)  # other initial weights: everything must come from the run folder
    resumed_history = fusionzoo.fit(resumed, train, valid, epochs=3, resume=tmp_path, **options, device="cpu")

    assert_identical(weights(resumed), weights(straight))
    assert resumed_history.train_losses == straight_history.train_losses
    assert resumed_history.valid_losses == straight_history.valid_losses
    assert [e.lr for e in resumed_history.epochs] == [e.lr for e in straight_history.epochs]
    assert History.from_csv(tmp_path / "history.csv").train_losses == straight_history.train_losses


def test_resuming_a_finished_run_returns_its_history_without_training(train, tmp_path):
    model = make_model()
    history = fusionzoo.fit(model, train, epochs=2, batch_size=16, checkpoint_dir=tmp_path, keep_state=True, progress=False, device="cpu")
    trained = weights(model)
    again = fusionzoo.fit(model, train, epochs=2, batch_size=16, resume=tmp_path, progress=False, device="cpu")
    assert again == history
    assert_identical(weights(model), trained)


def test_resuming_with_another_model_config_says_what_differs(train, tmp_path):
    fusionzoo.fit(make_model(), train, epochs=1, batch_size=16, checkpoint_dir=tmp_path, keep_state=True, progress=False, device="cpu")
    with pytest.raises(CheckpointError, match=r"hidden: \[16\] in the file, \[32\] given"):
        fusionzoo.fit(make_model(hidden=(32,)), train, epochs=2, batch_size=16, resume=tmp_path, progress=False, device="cpu")
    with pytest.raises(CheckpointError, match="model 'matmul' in the file, 'concat' given"):
        fusionzoo.fit(make_model("concat"), train, epochs=2, batch_size=16, resume=tmp_path, progress=False, device="cpu")


def test_a_state_stored_before_an_option_existed_resumes_with_its_default(train, tmp_path):
    state = tmp_path / "state.safetensors"
    options = fusionzoo.model_config(make_model()).options
    old = {k: v for k, v in options.items() if k != "feature_norm"}  # as written before feature_norm was added

    def store_options(stored: dict) -> None:
        rewrite(state, state, **{"fusionzoo.config": ModelConfig("matmul", stored).to_json()})

    fusionzoo.fit(make_model(), train, epochs=1, batch_size=16, checkpoint_dir=tmp_path, keep_state=True, progress=False, device="cpu")
    store_options(old)
    history = fusionzoo.fit(make_model(), train, epochs=2, batch_size=16, resume=tmp_path, keep_state=True, progress=False, device="cpu")
    assert len(history) == 2
    store_options(old)  # the resumed run stored feature_norm again
    with pytest.raises(CheckpointError, match="feature_norm: False in the file, True given"):
        fusionzoo.fit(make_model(feature_norm=True), train, epochs=3, batch_size=16, resume=tmp_path, progress=False, device="cpu")
    store_options({**options, "retired_option": 1})  # an option the factory no longer takes
    with pytest.raises(CheckpointError, match="retired_option: 1 in the file, None given"):
        fusionzoo.fit(make_model(), train, epochs=3, batch_size=16, resume=tmp_path, progress=False, device="cpu")


def test_a_run_folder_is_never_overwritten_without_resume(train, tmp_path):
    fusionzoo.fit(make_model(), train, epochs=1, batch_size=16, checkpoint_dir=tmp_path, keep_state=True, progress=False, device="cpu")
    before = (tmp_path / "state.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="already holds a run"):
        fusionzoo.fit(make_model(), train, epochs=1, batch_size=16, checkpoint_dir=tmp_path, progress=False, device="cpu")
    assert (tmp_path / "state.safetensors").read_bytes() == before


def test_a_finished_run_keeps_its_best_checkpoint_and_history_and_an_interrupted_one_its_state(train, tmp_path):
    calls = 0

    def nan_in_epoch_two(output, target):
        nonlocal calls
        calls += 1
        return nn.functional.mse_loss(output, target) * (float("nan") if calls == 4 else 1.0)

    with pytest.raises(NonFiniteLossError):
        fusionzoo.fit(make_model(), train, epochs=2, batch_size=16, loss_fn=nan_in_epoch_two, checkpoint_dir=tmp_path,
                      progress=False, device="cpu")
    assert (tmp_path / "state.safetensors").is_file()  # interrupted: it must still resume
    history = fusionzoo.fit(make_model(), train, epochs=2, batch_size=16, resume=tmp_path, progress=False, device="cpu")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.safetensors", "history.csv"]
    assert History.from_csv(tmp_path / "history.csv") == history and len(history) == 2
    assert fusionzoo.read_record(tmp_path / "best.safetensors").record.metrics["epoch"] == history.best_epoch
    kept = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(CheckpointError, match=r"holds a finished run \(history.csv\) without the state.safetensors .*--keep-state"):
        fusionzoo.fit(make_model(), train, epochs=1, batch_size=16, checkpoint_dir=tmp_path, progress=False, device="cpu")
    with pytest.raises(CheckpointError, match=r"holds a finished run \(history.csv\) but no state.safetensors"):
        fusionzoo.fit(make_model(), train, epochs=3, batch_size=16, resume=tmp_path, progress=False, device="cpu")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == kept


def test_a_call_that_trains_nothing_leaves_a_kept_state_in_place(train, tmp_path):
    fusionzoo.fit(make_model(), train, epochs=1, batch_size=16, checkpoint_dir=tmp_path, keep_state=True, progress=False, device="cpu")
    kept = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    fusionzoo.fit(make_model(), train, epochs=1, batch_size=16, resume=tmp_path, progress=False, device="cpu")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == kept


def test_resume_from_a_missing_folder_is_a_checkpoint_error(train, tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        fusionzoo.fit(make_model(), train, epochs=1, resume=tmp_path / "nowhere", progress=False, device="cpu")


# --- failures -------------------------------------------------------------------------------------


def test_non_finite_loss_names_epoch_and_step_and_keeps_the_last_good_checkpoint(train, tmp_path):
    calls = 0

    def poisoned_mse(output, target):
        nonlocal calls
        calls += 1
        loss = nn.functional.mse_loss(output, target)
        return loss * float("nan") if calls == 3 else loss  # the resumed run's first epoch (2), step 3

    model = make_model()
    fusionzoo.fit(model, train, epochs=1, batch_size=16, checkpoint_dir=tmp_path, keep_state=True, progress=False, device="cpu")
    good = (tmp_path / "last.safetensors").read_bytes()
    state = (tmp_path / "state.safetensors").read_bytes()
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 3 \(global step 6\)") as err:
        fusionzoo.fit(model, train, epochs=3, batch_size=16, loss_fn=poisoned_mse, resume=tmp_path, progress=False, device="cpu")
    assert (err.value.epoch, err.value.step) == (2, 3)
    assert isinstance(err.value, FloatingPointError)
    assert str(tmp_path / "last.safetensors") in str(err.value)
    assert (tmp_path / "last.safetensors").read_bytes() == good
    assert (tmp_path / "state.safetensors").read_bytes() == state


def test_nan_in_the_targets_stops_training(train):
    data = make_samples(32, seed=4)
    data.targets[5, 2] = float("nan")
    with pytest.raises(NonFiniteLossError, match="epoch 1, step"):
        fusionzoo.fit(make_model(), data, epochs=2, batch_size=32, progress=False, device="cpu")


def test_too_few_samples_for_one_batch_is_an_error():
    with pytest.raises(ValueError, match="no full batch"):
        fusionzoo.fit(make_model(), make_samples(10, seed=0), epochs=1, batch_size=32, progress=False, device="cpu")


# --- devices, precision, speed options, progress --------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available() or torch.backends.mps.is_available(), reason="an accelerator is present")
def test_auto_device_resolves_to_the_cpu_here():
    assert fusionzoo.resolve_device("auto") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_an_explicit_unavailable_device_is_an_error_that_says_so(train):
    with pytest.raises(ValueError, match="'cuda'.*not available"):
        fusionzoo.resolve_device("cuda")
    with pytest.raises(ValueError, match="not available"):
        fusionzoo.fit(make_model(), train, epochs=1, device="cuda", progress=False)


def test_unknown_device_and_precision_names_are_errors(train):
    with pytest.raises(ValueError, match="not a device name"):
        fusionzoo.resolve_device("gpu0")
    with pytest.raises(KeyError, match="fp32"):
        fusionzoo.fit(make_model(), train, epochs=1, precision="fp8", device="cpu", progress=False)
    with pytest.raises(ValueError, match="fp16.*CUDA"):
        fusionzoo.fit(make_model(), train, epochs=1, precision="fp16", device="cpu", progress=False)


@pytest.mark.parametrize("size", [0, -1, 2.5])
def test_bad_validation_batch_sizes_are_refused_by_name_before_training(train, valid, size, tmp_path):
    with pytest.raises(ValueError, match=f"valid_batch_size must be a positive int, got {size}"):
        fusionzoo.fit(make_model(), train, valid, epochs=1, valid_batch_size=size, checkpoint_dir=tmp_path, progress=False, device="cpu")
    assert not any(tmp_path.iterdir())  # refused before the first epoch, so nothing was written
    with pytest.raises(ValueError, match=f"batch_size must be a positive int, got {size}"):
        fusionzoo.evaluate(make_model(), valid, batch_size=size)


def test_bf16_and_channels_last_train_on_the_cpu(train, valid, tmp_path):
    model = make_model()
    history = fusionzoo.fit(
        model, train, valid, epochs=1, batch_size=16, device="cpu", precision="bf16", channels_last=True,
        checkpoint_dir=tmp_path, keep_state=True, progress=False,
    )
    assert math.isfinite(history.epochs[0].train_loss) and math.isfinite(history.epochs[0].valid_loss)
    fp32 = fusionzoo.fit(make_model(), train, epochs=1, batch_size=16, device="cpu", progress=False)
    assert history.train_losses != fp32.train_losses  # the autocast really ran in bf16
    assert_identical(weights(fusionzoo.load(tmp_path / "last.safetensors")), weights(model))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])  # fp16's GradScaler reads found_inf every step, by design
def test_on_cuda_the_host_waits_once_per_epoch_not_once_per_step(precision, valid):
    def synchronisations(samples: int) -> int:
        # torch warns at each operation that makes the host wait for the device.
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fusionzoo.fit(make_model(), make_samples(samples, seed=3), valid, epochs=1, batch_size=8,
                              device="cuda", precision=precision, progress=False)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        return sum("synchroniz" in str(w.message) for w in caught)

    synchronisations(16)  # first use of the device: lazy initialisation may wait
    assert synchronisations(16) == synchronisations(128)  # 2 steps or 16, the same waits


def test_fit_hands_back_a_contiguous_model_that_matches_its_checkpoint(train, tmp_path):
    # channels_last is the CPU default inside fit; the caller must not inherit it, or the model's
    # outputs would differ in the last bits from the same weights reloaded.
    model = make_model("concat")
    fusionzoo.fit(model, train, epochs=1, batch_size=16, device="cpu", checkpoint_dir=tmp_path, keep_state=True, progress=False)
    assert all(p.is_contiguous() for p in model.parameters())
    rgb, xyza, _ = train.batch(torch.arange(4))
    with torch.no_grad():
        assert torch.equal(model(rgb, xyza), fusionzoo.load(tmp_path / "last.safetensors")(rgb, xyza))


def test_progress_bar_shows_only_when_asked(train, capsys):
    fusionzoo.fit(make_model(), train, epochs=1, batch_size=16, progress=True, device="cpu")
    assert "epoch 1/1" in capsys.readouterr().err
    fusionzoo.fit(make_model(), train, epochs=1, batch_size=16, progress=False, device="cpu")
    assert capsys.readouterr().err == ""


@pytest.mark.skipif(sys.platform == "win32", reason="run folders are locked with flock, which Windows lacks")
def test_a_run_folder_in_use_is_refused_by_name_and_freed_at_the_end(train, valid, tmp_path):
    with folder_lock(tmp_path):
        with pytest.raises(RunInUseError, match=rf"{tmp_path}: process {os.getpid()} on .* is training in this folder"):
            fusionzoo.fit(make_model(), train, valid, epochs=1, batch_size=16, checkpoint_dir=tmp_path, progress=False, device="cpu")
    assert not any(tmp_path.iterdir())  # refused before training: nothing written, and the lock is gone
    fusionzoo.fit(make_model(), train, valid, epochs=1, batch_size=16, checkpoint_dir=tmp_path, keep_state=True, progress=False, device="cpu")
    assert not (tmp_path / ".lock").exists()
    with folder_lock(tmp_path), pytest.raises(RunInUseError):  # a resume is refused the same way
        fusionzoo.fit(make_model(), train, valid, epochs=2, batch_size=16, resume=tmp_path, progress=False, device="cpu")
    assert fusionzoo.History.from_csv(tmp_path / "history.csv").epochs[-1].epoch == 1


@pytest.mark.skipif(sys.platform == "win32", reason="run folders are locked with flock, which Windows lacks")
def test_a_file_system_without_locks_trains_unlocked_and_says_so(train, tmp_path, monkeypatch, caplog):
    def flock(f, operation, error=errno.ENOLCK):
        raise OSError(error, os.strerror(error))

    monkeypatch.setattr("fusionzoo._files.fcntl.flock", flock)
    with caplog.at_level(logging.WARNING, logger="fusionzoo"):
        fusionzoo.fit(make_model(), train, epochs=1, batch_size=16, checkpoint_dir=tmp_path / "a", progress=False, device="cpu")
    assert f"{tmp_path / 'a'}: this file system cannot lock files ({os.strerror(errno.ENOLCK)})" in caplog.text
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["best.safetensors", "history.csv"]
    monkeypatch.setattr("fusionzoo._files.fcntl.flock", lambda f, operation: flock(f, operation, errno.EIO))
    with pytest.raises(OSError, match=os.strerror(errno.EIO)):  # any other failure is not taken for "no locks"
        fusionzoo.fit(make_model(), train, epochs=1, batch_size=16, checkpoint_dir=tmp_path / "b", progress=False, device="cpu")
    assert not (tmp_path / "b" / "history.csv").exists()

@pytest.mark.skipif(sys.platform == "win32", reason="run folders are locked with flock, which Windows lacks")
def test_a_killed_holder_leaves_no_lock_behind(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from fusionzoo._files import folder_lock; from pathlib import Path; import time\n"
         f"with folder_lock(Path({str(tmp_path)!r})):\n    print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunInUseError, match=f"process {holder.pid} on"):
            with folder_lock(tmp_path):
                pass
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the lock file stays
        holder.wait()
    assert (tmp_path / ".lock").exists()
    with folder_lock(tmp_path):
        assert (tmp_path / ".lock").read_text().startswith(f"process {os.getpid()} on")
    assert not (tmp_path / ".lock").exists()
