"""The run folder under hostile use (issue #25): resumes with other options, missing folders, runs
killed mid-write, a second process, damaged progress records, temporaries of killed writes."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

import fusionzoo
from fusionzoo import CheckpointError, RunInUseError
from fusionzoo._files import folder_lock, remove_stale_temporaries
from fusionzoo.data import Samples
from fusionzoo.training.history import History
from fusionzoo.training.rundir import RunFolder

from safetensors import safe_open
from random_samples import random_samples
from safetensors_files import rewrite

SIZE = 16


def make_samples(count: int, seed: int) -> Samples:
    return random_samples(count, seed, SIZE)


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return fusionzoo.create("matmul", image_size=SIZE, widths=(4, 6), hidden=(8,))


@pytest.fixture(scope="module")
def train() -> Samples:
    return make_samples(32, seed=1)


def fit(train, **options):
    # These tests resume runs that finished: they keep what continuing one needs.
    options = {"epochs": 1, "batch_size": 16, "progress": False, "keep_state": True, **options}
    return fusionzoo.fit(make_model(), train, **options, device="cpu")


def progress_of(state) -> dict:
    with safe_open(str(state), framework="pt") as f:
        return json.loads(f.metadata()["fusionzoo.progress"])


def store_progress(state, progress: dict) -> None:
    rewrite(state, state, **{"fusionzoo.progress": json.dumps(progress)})


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# --- a: options given on resume -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changed", "message"),
    [
        ({"lr": 1e9}, r"lr=1000000000.0 given, the run used lr=0.001.*resume with lr=0.001"),
        ({"seed": 7}, r"seed=7 given, the run used seed=0.*resume with seed=0"),
        ({"batch_size": 8}, r"batch_size=8 given, the run used batch_size=16.*resume with batch_size=16"),
        ({"precision": "bf16"}, r"precision='bf16' given, the run used precision='fp32'.*resume with precision='fp32'"),
    ],
    ids=["lr", "seed", "batch_size", "precision"],
)
def test_a_resume_with_an_option_other_than_the_runs_is_refused_naming_it_both_values_and_the_fix(train, tmp_path, changed, message):
    fit(train, lr=1e-3, checkpoint_dir=tmp_path)
    kept = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(CheckpointError, match=message):
        fit(train, epochs=2, resume=tmp_path, **{"lr": 1e-3, **changed})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == kept  # nothing trained, nothing written


def test_a_refused_resume_leaves_the_given_model_as_it_was(train, tmp_path):
    fit(train, lr=1e-3, checkpoint_dir=tmp_path)
    model = make_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match="lr=0.1 given"):
        fusionzoo.fit(model, train, epochs=2, batch_size=16, lr=0.1, resume=tmp_path, progress=False, device="cpu")
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())  # not the run's weights


def test_a_resume_with_the_runs_options_records_its_lr_every_epoch(train, tmp_path):
    fit(train, lr=1e-3, checkpoint_dir=tmp_path)
    history = fit(train, epochs=2, lr=1e-3, resume=tmp_path)
    assert [e.lr for e in history.epochs] == [1e-3, 1e-3]
    assert History.from_csv(tmp_path / "history.csv") == history


def test_a_given_optimizer_leaves_lr_out_of_the_comparison(train, tmp_path):
    def sgd(params):
        return torch.optim.SGD(params, lr=0.01)

    fit(train, optimizer=sgd, checkpoint_dir=tmp_path)
    history = fit(train, epochs=2, lr=5.0, optimizer=sgd, resume=tmp_path)  # lr is unused with a factory
    assert [e.lr for e in history.epochs] == [0.01, 0.01]


def test_a_change_of_global_batch_across_process_counts_is_refused_with_the_batch_size_that_keeps_it(train, tmp_path):
    fit(train, checkpoint_dir=tmp_path)
    progress = progress_of(tmp_path / "state.safetensors")
    store_progress(tmp_path / "state.safetensors", {**progress, "world_size": 2, "batch_size": 4})  # as 2 x 4 stores it
    with pytest.raises(CheckpointError, match=r"the global batch changes from 8 to 16.*resume with batch_size=8"):
        fit(train, epochs=2, resume=tmp_path)


def test_a_state_written_before_lr_and_precision_were_recorded_still_resumes(train, tmp_path):
    fit(train, checkpoint_dir=tmp_path)
    progress = progress_of(tmp_path / "state.safetensors")
    assert (progress["lr"], progress["precision"]) == (1e-4, "fp32")
    store_progress(tmp_path / "state.safetensors", {k: v for k, v in progress.items() if k not in ("lr", "precision", "world_size")})
    assert len(fit(train, epochs=2, lr=3e-4, resume=tmp_path)) == 2


# --- b: resuming what is not there ----------------------------------------------------------------


def test_b_resuming_a_missing_folder_names_it_and_creates_nothing(train, tmp_path):
    missing = tmp_path / "runs" / "nowhere"
    with pytest.raises(CheckpointError, match=rf"resume: {missing} does not exist: there is no such run folder"):
        fit(train, resume=missing)
    with pytest.raises(CheckpointError, match=rf"resume: {missing} does not exist"):
        fit(train, checkpoint_dir=missing, resume=missing)  # the command line passes both
    assert not any(tmp_path.iterdir())


def test_b_resuming_a_folder_without_a_run_says_to_start_one(train, tmp_path):
    with pytest.raises(CheckpointError, match=rf"resume: {tmp_path} holds no state.safetensors: .* nothing to resume. Start it again"):
        fit(train, resume=tmp_path)
    assert not any(tmp_path.iterdir())


# --- c: a run stopped between its files -----------------------------------------------------------


def test_c_a_run_stopped_between_its_state_and_its_history_resumes_and_rewrites_the_history(train, tmp_path, monkeypatch):
    straight = fit(train, epochs=3)
    fit(train, checkpoint_dir=tmp_path)
    to_csv = History.to_csv

    def killed(self, path):
        raise KeyboardInterrupt  # stands for SIGKILL: the state of epoch 2 is written, its history is not

    monkeypatch.setattr(History, "to_csv", killed)
    with pytest.raises(KeyboardInterrupt):
        fit(train, epochs=2, resume=tmp_path)
    monkeypatch.setattr(History, "to_csv", to_csv)
    assert len(History.from_csv(tmp_path / "history.csv")) == 1 and progress_of(tmp_path / "state.safetensors")["epoch"] == 2
    again = fit(train, epochs=2, resume=tmp_path)  # nothing left to train: the history is repaired
    assert History.from_csv(tmp_path / "history.csv") == again and len(again) == 2
    resumed = fit(train, epochs=3, resume=tmp_path)
    assert resumed.train_losses == straight.train_losses
    assert History.from_csv(tmp_path / "history.csv") == resumed


def test_c_a_run_stopped_before_its_first_state_can_be_started_again(train, tmp_path, monkeypatch):
    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("fusionzoo.training.rundir.save_state", killed)
    with pytest.raises(KeyboardInterrupt):
        fit(train, checkpoint_dir=tmp_path)
    monkeypatch.undo()
    assert "history.csv" not in {p.name for p in tmp_path.iterdir()}  # the folder holds no run yet
    with pytest.raises(CheckpointError, match="it was stopped before its first epoch ended, so there is nothing to resume"):
        fit(train, resume=tmp_path)
    assert len(fit(train, checkpoint_dir=tmp_path)) == 1


def test_c_a_folder_with_a_history_but_no_state_says_what_to_do(train, tmp_path):
    fit(train, checkpoint_dir=tmp_path)
    (tmp_path / "state.safetensors").unlink()  # as an older version left a run killed before its first state
    for retry in ({"checkpoint_dir": tmp_path}, {"resume": tmp_path}):
        with pytest.raises(CheckpointError, match=r"without the state.safetensors|but no state.safetensors") as err:
            fit(train, **retry)
        assert "To train it again from the start, delete the folder" in str(err.value)


# --- d: the lock comes first ------------------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="run folders are locked with flock, which Windows lacks")
def test_d_a_folder_in_use_is_reported_as_in_use_even_when_it_holds_a_run(train, tmp_path):
    fit(train, checkpoint_dir=tmp_path)
    with folder_lock(tmp_path), pytest.raises(RunInUseError, match=f"process {os.getpid()} on .* is training in this folder"):
        fit(train, checkpoint_dir=tmp_path)


# --- e: a damaged progress record -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"epoch": "1"}, r"epoch='1' is not a whole number"),
        ({"step": None}, r"step=None is not a whole number"),
        ({"batch_size": 0}, r"batch_size=0 is not a whole number of at least 1"),
        ({"lr": "fast"}, r"lr='fast' is not a float"),
        ({"history": {"1": 2}}, r"history is dict, not a list"),
        ({"history": [{"epoch": 1}]}, r"record 1: expected the fields epoch, train_loss"),
        ({"epoch": 3}, r"epoch=3, but the history holds epochs \[1\]"),
        ({"seed": None, "step": 1}, r"seed=None is not a whole number"),
    ],
    ids=["epoch-text", "step-null", "batch-zero", "lr-text", "history-dict", "record-fields", "epoch-count", "seed-null"],
)
def test_e_a_progress_record_of_wrong_types_is_a_checkpoint_error_naming_the_file(train, tmp_path, change, problem, caplog):
    fit(train, checkpoint_dir=tmp_path)
    state = tmp_path / "state.safetensors"
    store_progress(state, {**progress_of(state), **change})
    with caplog.at_level(logging.INFO, logger="fusionzoo"), pytest.raises(CheckpointError, match=rf"{state}: damaged training progress \({problem}"):
        fit(train, epochs=2, resume=tmp_path)


def test_e_a_record_loss_of_the_wrong_type_is_named_by_field(train, tmp_path):
    fit(train, checkpoint_dir=tmp_path)
    state = tmp_path / "state.safetensors"
    progress = progress_of(state)
    progress["history"][0]["train_loss"] = "0.5"
    store_progress(state, progress)
    with pytest.raises(CheckpointError, match=r"record 1: train_loss='0.5' is not a number"):
        fit(train, epochs=2, resume=tmp_path)


# --- f: temporaries of killed writes ----------------------------------------------------------------


@pytest.mark.skipif(sys.platform == "win32", reason="no process probing on Windows")
def test_f_stale_temporaries_are_removed_when_fit_next_opens_the_folder(train, tmp_path):
    fit(train, checkpoint_dir=tmp_path)
    dead = dead_pid()
    stale = [f".state.safetensors.{dead}-0123abcd.tmp", f".history.csv.{dead}-89abcdef.tmp"]
    kept = [
        f".history.csv.{os.getpid()}-89abcdef.tmp",  # its writer is alive: a write in progress
        "notes.tmp", f".state.safetensors.{dead}.tmp", f"state.safetensors.{dead}-0123abcd.tmp",  # not atomic_path's names
    ]
    for name in stale + kept:
        (tmp_path / name).write_bytes(b"x" * 100)
    fit(train, epochs=2, resume=tmp_path)
    names = {p.name for p in tmp_path.iterdir()}
    assert not names & set(stale) and set(kept) <= names


@pytest.mark.skipif(sys.platform == "win32", reason="no process probing on Windows")
def test_f_the_sweep_keeps_what_a_live_writer_is_writing_and_whatever_is_not_a_temporary(tmp_path):
    dead = dead_pid()
    (tmp_path / f".x.bin.{dead}-aaaaaaaa.tmp").write_bytes(b"")
    (tmp_path / f".x.bin.{os.getpid()}-bbbbbbbb.tmp").write_bytes(b"")
    (tmp_path / f".x.bin.{dead}-ZZZZZZZZ.tmp").write_bytes(b"")  # not hex: not atomic_path's
    (tmp_path / f".dir.{dead}-cccccccc.tmp").mkdir()
    assert remove_stale_temporaries(tmp_path) == [tmp_path / f".x.bin.{dead}-aaaaaaaa.tmp"]
    assert remove_stale_temporaries(tmp_path / "missing") == []


def test_the_run_folder_names_its_files_in_one_place(tmp_path):
    run = RunFolder(tmp_path)
    assert [p.name for p in (run.last, run.best, run.state, run.history)] == [
        "last.safetensors", "best.safetensors", "state.safetensors", "history.csv"
    ]
    assert not run.has_state and run.finished_history(1) is None
