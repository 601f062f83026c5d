"""Training on several processes: two CPU processes (gloo on 127.0.0.1) against one, and the CLI
under torchrun, including a resume from one process to two."""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import fusionzoo
import fusionzoo.training.history
from fusionzoo.weights import checkpoint
from fusionzoo.cli import main as cli_main
from fusionzoo.data import Samples
from fusionzoo.sim.scenes import generate_scenes
from fusionzoo.training.distributed import Group, current, is_main_process, local_device, world_change
from random_samples import random_samples
from ranks import TIMEOUT, WORLD, enter_rank, free_port, spawn_ranks

SIZE, SAMPLES, HALF, EPOCHS = 16, 45, 8, 3
FIT = dict(epochs=EPOCHS, lr=1e-3, seed=3, valid_batch_size=11, device="cpu")  # 45 valid -> shards of 23 and 22, 3 and 2 batches


def make_samples(seed: int) -> Samples:
    return random_samples(SAMPLES, seed, SIZE)


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return fusionzoo.create("matmul", image_size=SIZE, widths=(4, 8), hidden=(16,))


# --- one process per rank, spawned ----------------------------------------------------------------


def _recording(function, record):
    def recorded(path, *args, **kwargs):
        record.append(Path(path).name)
        return function(path, *args, **kwargs)

    return recorded


def _worker(rank: int, port: int, folder: str) -> None:
    """One rank: fit on the shared folder, recording what it writes, evaluates, logs and shows."""
    enter_rank(rank, port)
    written: list[str] = []
    checkpoint.atomic_path = _recording(checkpoint.atomic_path, written)
    history_csv = fusionzoo.training.history
    history_csv.atomic_path = _recording(history_csv.atomic_path, written)
    data, valid = make_samples(1), make_samples(2)
    evaluated: list[torch.Tensor] = []
    batch = valid.batch
    valid.batch = lambda index: (evaluated.append(index.clone()), batch(index))[1]
    logs = io.StringIO()
    logger = logging.getLogger("fusionzoo.training")
    logger.setLevel(logging.INFO)
    logger.addHandler(logging.StreamHandler(logs))
    shown = io.StringIO()
    model = make_model()
    with contextlib.redirect_stderr(shown):
        history = fusionzoo.fit(model, data, valid, batch_size=HALF, checkpoint_dir=Path(folder) / "run", progress=True,
                                keep_state=True, **FIT)
    torn_down = not dist.is_initialized()
    # A process group the caller started is left to the caller.
    dist.init_process_group("gloo")
    fusionzoo.fit(make_model(), data, epochs=1, batch_size=HALF, progress=False, device="cpu")
    kept = dist.is_initialized()
    dist.destroy_process_group()
    torch.save(
        {
            "train": history.train_losses, "valid": history.valid_losses, "weights": model.state_dict(),
            "written": written, "evaluated": evaluated[: len(evaluated) // EPOCHS], "logs": logs.getvalue(),
            "shown": shown.getvalue(), "torn_down": torn_down, "kept": kept,
        },
        Path(folder) / f"rank{rank}.pt",
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("ddp")


@pytest.fixture(scope="module")
def ranks(folder) -> list[dict]:
    return spawn_ranks(_worker, folder)


@pytest.fixture(scope="module")
def single():
    """One process with the same global batch (2 x 8) and seed."""
    model = make_model()
    history = fusionzoo.fit(model, make_samples(1), make_samples(2), batch_size=WORLD * HALF, progress=False, **FIT)
    return history, model.state_dict()


def test_two_processes_match_one_with_the_same_global_batch(ranks, single):
    history, weights = single
    for result in ranks:
        assert result["train"] == pytest.approx(history.train_losses, rel=1e-5)
        assert result["valid"] == pytest.approx(history.valid_losses, rel=1e-5)
        assert result["weights"].keys() == weights.keys()
        for key in weights:
            torch.testing.assert_close(result["weights"][key], weights[key], rtol=1e-4, atol=1e-6)
    # The replicas stay in step exactly: DDP gives every process the same averaged gradients.
    for key in weights:
        assert torch.equal(ranks[0]["weights"][key], ranks[1]["weights"][key]), key


def test_validation_counts_every_sample_once_over_uneven_shards(ranks, single):
    shards = [torch.cat(result["evaluated"]) for result in ranks]
    assert [len(s) for s in shards] == [23, 22]
    assert torch.equal(torch.cat(shards).sort().values, torch.arange(SAMPLES))
    assert ranks[0]["valid"] == pytest.approx(single[0].valid_losses, rel=1e-5)


def test_only_rank_zero_writes_logs_and_shows_progress(ranks):
    main, other = ranks
    assert sorted(set(main["written"])) == ["best.safetensors", "history.csv", "last.safetensors", "state.safetensors"]
    assert main["written"].count("state.safetensors") == EPOCHS
    assert other["written"] == []
    assert "global batch 16" in main["logs"] and "epoch 3/3: train loss" in main["logs"]
    assert other["logs"] == ""
    assert "epoch 3/3" in main["shown"] and other["shown"] == ""
    assert main["torn_down"] and other["torn_down"]
    assert main["kept"] and other["kept"]


def test_the_run_folder_holds_the_bare_model_as_one_process_would_write_it(ranks, folder):
    loaded = fusionzoo.load(folder / "run" / "last.safetensors").state_dict()
    assert loaded.keys() == ranks[0]["weights"].keys()
    assert all(torch.equal(loaded[k], ranks[0]["weights"][k]) for k in loaded)
    history = fusionzoo.History.from_csv(folder / "run" / "history.csv")
    assert history.train_losses == ranks[0]["train"]


# --- the CLI under torchrun -----------------------------------------------------------------------


def test_cli_resumes_a_one_process_run_on_two_processes_with_a_warning(tmp_path):
    data = generate_scenes(tmp_path / "data", samples=352, image_size=SIZE, lidar_grid=(SIZE, SIZE), progress=False)
    out = tmp_path / "run"
    common = [
        "train", "matmul", "--data", str(data), "--image-size", str(SIZE), "--out", str(out), "--no-progress",
        "--set", f"image_size={SIZE}", "--set", "widths=[4,8]", "--set", "hidden=[16]", "--lr", "1e-3", "--device", "cpu",
    ]
    assert cli_main([*common, "--epochs", "1", "--batch-size", "16", "--keep-state"]) == 0
    run = subprocess.run(
        [
            sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={WORLD}", "--master-addr=127.0.0.1",
            f"--master-port={free_port()}", "-m", "fusionzoo", *common, "--epochs", "2", "--batch-size", str(HALF), "--resume",
        ],
        capture_output=True, text=True, timeout=TIMEOUT, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "the run used 1 process x batch_size 16, this one 2 processes x 8 (the same global batch of 16)" in run.stderr
    assert run.stdout.count("best valid MSE") == 1  # only rank 0 prints
    history = fusionzoo.History.from_csv(out / "history.csv")
    assert [e.epoch for e in history.epochs] == [1, 2]
    assert fusionzoo.load(out / "best.safetensors").state_dict().keys() == make_model().state_dict().keys()
    assert sorted(p.name for p in out.iterdir()) == ["best.safetensors", "history.csv"]  # rank 0 closed the finished run


def test_cli_compare_under_torchrun_generates_once_and_matches_one_process(tmp_path):
    common = ["--models", "rgb", "matmul", "--epochs", "1", "--no-plot", "--no-progress", "--lr", "1e-3",
              "--set", "widths=[4,8]", "--set", "hidden=[16]", "--device", "cpu"]
    data = tmp_path / "data"
    run = subprocess.run(
        [
            sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={WORLD}", "--master-addr=127.0.0.1",
            f"--master-port={free_port()}", "-m", "fusionzoo", "compare", "--samples", "352", "--scene-dir", str(data),
            "--out", str(tmp_path / "two"), "--batch-size", str(HALF), *common,
        ],
        capture_output=True, text=True, timeout=TIMEOUT, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("best valid MSE") == 1  # only rank 0 prints the table
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "two"]  # one scene, nothing left half-written
    assert cli_main(["compare", "--data", str(data), "--out", str(tmp_path / "one"), "--batch-size", str(2 * HALF), *common]) == 0
    two, one = (list(csv.DictReader((tmp_path / name / "results.csv").open())) for name in ("two", "one"))
    assert [r["model"] for r in two] == [r["model"] for r in one] == ["rgb", "matmul"]
    for a, b in zip(two, one):
        assert float(a["best_valid_mse"]) == pytest.approx(float(b["best_valid_mse"]), rel=1e-4)
    assert sorted(p.name for p in (tmp_path / "two" / "matmul" / "seed0").iterdir()) == ["best.safetensors", "history.csv"]


# --- the pieces, in one process -------------------------------------------------------------------


@given(world=st.integers(1, 4), per=st.integers(1, 5), batches=st.integers(1, 3))
def test_each_process_takes_a_contiguous_share_and_together_they_make_the_global_batch(world, per, batches):
    order = torch.randperm(world * per * batches)
    global_batches = list(order.split(world * per))
    shares = [Group(r, r, world, True).shard_batches(global_batches) for r in range(world)]
    for step, whole in enumerate(global_batches):
        parts = [share[step] for share in shares]
        assert all(len(p) == per for p in parts)
        assert torch.equal(torch.cat(parts), whole)


@given(world=st.integers(1, 5), count=st.integers(0, 60))
def test_validation_shards_are_disjoint_and_cover_every_sample(world, count):
    shards = [Group(r, r, world, True).shard_samples(count) for r in range(world)]
    assert torch.equal(torch.cat(shards).sort().values, torch.arange(count))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_outside_torchrun_the_group_is_one_process_and_changes_nothing(monkeypatch):
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    group = current()
    assert group == Group() and not group.distributed and is_main_process()
    batches, values = [torch.arange(8)], torch.rand(3)
    assert group.shard_batches(batches) is batches
    assert group.all_reduce_sum(values) is values and group.all_reduce_mean(values) is values


def test_torchrun_variables_make_the_group(monkeypatch):
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert current() == Group(3, 1, 4, True)
    assert not is_main_process()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RANK": "0"}, "RANK set but LOCAL_RANK, WORLD_SIZE not"),
        ({"RANK": "x", "LOCAL_RANK": "0", "WORLD_SIZE": "2"}, "RANK='x' is not a whole number"),
        ({"RANK": "2", "LOCAL_RANK": "0", "WORLD_SIZE": "2"}, r"RANK=2 must lie in \[0, WORLD_SIZE=2\)"),
    ],
)
def test_a_broken_torchrun_environment_names_the_variable(monkeypatch, env, message):
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message):
        current()
    with pytest.raises(ValueError, match=message):
        fusionzoo.fit(make_model(), make_samples(1), epochs=1, progress=False, device="cpu")


def test_each_process_gets_the_gpu_of_its_local_rank(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert local_device("auto", Group(3, 1, 4, True)) == torch.device("cuda", 1)
    assert local_device("cuda", Group(3, 1, 4, True)) == torch.device("cuda", 1)
    assert local_device("cuda:0", Group(3, 1, 4, True)) == torch.device("cuda", 0)
    assert local_device("cpu", Group(3, 1, 4, True)) == torch.device("cpu")
    with pytest.raises(ValueError, match=r"LOCAL_RANK=2 asks for cuda:2, but this machine has 2 CUDA device\(s\)"):
        local_device("auto", Group(2, 2, 4, True))


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_without_cuda_the_processes_train_on_the_cpu():
    assert local_device("auto", Group(1, 1, 2, True)) == torch.device("cpu")


def test_resume_warning_says_what_changes_with_the_process_count():
    same = world_change(1, 16, 2, 8)
    assert "the same global batch of 16" in same and "same global batches" in same
    other = world_change(1, 16, 2, 16)
    assert "the global batch changes from 16 to 32" in other and "learning rate is not rescaled" in other
