"""Memory-mapped samples: the same batches as in memory, a cache larger than memory, bad caches."""

from __future__ import annotations

import logging
import os
import pickle
import re
import sys
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fusionzoo.data import BatchLoader, ReplicatorDataset, course_splits
from fusionzoo.data import cache as tensor_cache
from fusionzoo.data import memory as memory_modes
from fusionzoo.errors import DatasetError

sys.path.insert(0, str(Path(__file__).parent))
from test_dataset import CACHE, cache_path, write_dataset  # noqa: E402

pytestmark = pytest.mark.filterwarnings("error::DeprecationWarning")


def opened(root: Path, memory: str, **kwargs) -> ReplicatorDataset:
    return ReplicatorDataset(root, image_size=8, memory=memory, **kwargs)


def all_batches(samples) -> list[tuple[torch.Tensor, ...]]:
    loader = BatchLoader(samples, 4, shuffle=True, drop_last=False, generator=torch.Generator().manual_seed(3))
    return list(loader)


@pytest.fixture
def data(tmp_path) -> Path:
    root = tmp_path / "data"
    write_dataset(root, n=11, png=12)
    return root


def test_mapped_and_loaded_samples_give_bit_identical_batches(data):
    cold = opened(data, "map")  # the open that builds the cache keeps what it decoded
    mapped, loaded = opened(data, "map"), opened(data, "load")
    assert (cold.memory_mode, mapped.memory_mode, loaded.memory_mode) == ("load", "map", "load")
    assert mapped.from_cache and loaded.from_cache
    assert mapped.mapped is not None and loaded.mapped is None
    for reference in (cold, loaded):
        for ours, theirs in zip(all_batches(mapped), all_batches(reference)):
            assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
        assert all(torch.equal(a, b) for a, b in zip(mapped[7], reference[7]))
        assert all(torch.equal(a, b) for a, b in zip(mapped.subset([9, 0, 4]).batch(torch.arange(3)),
                                                     reference.subset([9, 0, 4]).batch(torch.arange(3))))


def test_a_mapped_dataset_is_a_view_of_its_cache_file(data):
    opened(data, "load")  # the cache
    mapped = opened(data, "map")
    assert mapped.rgb.data_ptr() == mapped.mapped.tensors["rgb"].data_ptr()
    if sys.platform == "linux":
        assert str(cache_path(data)) in Path("/proc/self/maps").read_text()
    subset = mapped.subset([1, 2])
    assert subset.mapped is None  # a copy of the rows it read


def test_course_splits_of_a_mapped_dataset_stay_mapped(tmp_path):
    write_dataset(tmp_path, n=360, png=8)
    opened(tmp_path, "load")
    train, valid = course_splits(opened(tmp_path, "map"))
    assert train.mapped is not None and valid.mapped is train.mapped
    loaded_train, loaded_valid = course_splits(opened(tmp_path, "load"))
    assert torch.equal(valid.batch(torch.arange(5))[1], loaded_valid.batch(torch.arange(5))[1])


def test_auto_loads_a_dataset_that_fits_comfortably_and_maps_one_that_does_not(data, monkeypatch):
    opened(data, "load")
    assert opened(data, "auto").memory_mode == "load"
    monkeypatch.setattr(memory_modes, "available_memory", lambda: 4 * cache_path(data).stat().st_size - 1)
    assert opened(data, "auto").memory_mode == "map"
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # eight processes of a torchrun job on this machine
    monkeypatch.setattr(memory_modes, "available_memory", lambda: 16 * cache_path(data).stat().st_size)
    assert opened(data, "auto").memory_mode == "map"


def test_the_environment_sets_the_default_and_a_bad_value_is_named(data, monkeypatch):
    opened(data, "load")
    monkeypatch.setenv("FUSIONZOO_MEMORY", "map")
    assert ReplicatorDataset(data, image_size=8).memory_mode == "map"
    assert ReplicatorDataset(data, image_size=8, memory="load").memory_mode == "load"  # the argument wins
    monkeypatch.setenv("FUSIONZOO_MEMORY", "mmap")
    with pytest.raises(ValueError, match="FUSIONZOO_MEMORY must be one of auto, map, load, got 'mmap'"):
        ReplicatorDataset(data, image_size=8)


def test_bad_memory_arguments_are_refused_by_name(data):
    with pytest.raises(ValueError, match="memory must be one of auto, map, load"):
        opened(data, "disk")
    with pytest.raises(ValueError, match="memory='map' reads the samples through the cache file"):
        opened(data, "map", cache=False)


def test_a_cache_truncated_under_a_running_job_gives_a_named_error(data):
    opened(data, "load")
    mapped = opened(data, "map")
    mapped.batch(torch.arange(3))
    os.truncate(cache_path(data), 1000)
    with pytest.raises(DatasetError, match=r"changed under this job: it was .* bytes when it was mapped and is now "
                                           r"1,000 bytes"):
        mapped.batch(torch.arange(3))
    with pytest.raises(DatasetError, match="changed under this job"):
        mapped.subset([0])
    with pytest.raises(DatasetError, match="changed under this job"):
        mapped.to("meta")
    assert opened(data, "map").from_cache is False  # the next open rebuilds it


def test_a_cache_rewritten_in_place_under_a_running_job_gives_a_named_error(data):
    opened(data, "load")
    mapped = opened(data, "map")
    size = cache_path(data).stat().st_size
    with open(cache_path(data), "r+b") as f:
        f.seek(size - 100)
        f.write(os.urandom(100))
    stat = cache_path(data).stat()
    os.utime(cache_path(data), ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # coarse clocks
    with pytest.raises(DatasetError, match="rewritten in place"):
        mapped.batch(torch.arange(3))


def test_a_cache_replaced_by_a_new_file_leaves_the_mapped_one_intact(data):
    opened(data, "load")
    mapped = opened(data, "map")
    before = mapped.batch(torch.arange(11))
    tensor_cache.save(cache_path(data), {"rgb": torch.zeros(1, 4, 8, 8, dtype=torch.uint8)}, "another key")
    assert all(torch.equal(a, b) for a, b in zip(mapped.batch(torch.arange(11)), before))


def test_samples_that_do_not_fit_in_memory_are_decoded_straight_into_the_cache(data, monkeypatch):
    in_memory = ReplicatorDataset(data, image_size=8, cache=False)
    monkeypatch.setattr(memory_modes, "fits_comfortably", lambda nbytes: False)
    monkeypatch.setattr(tensor_cache, "save_file", None)  # the in-memory writer is not used
    streamed = opened(data, "auto")
    assert not streamed.from_cache and streamed.memory_mode == "map" and streamed.mapped is not None
    written = load_file(cache_path(data))  # a safetensors file like any other
    for name in ("rgb", "depth", "targets", "azimuth", "zenith"):
        assert torch.equal(getattr(streamed, name), getattr(in_memory, name)), name
        assert torch.equal(written[name], getattr(in_memory, name)), name
    assert opened(data, "map").from_cache
    loaded = opened(data, "load")
    assert loaded.memory_mode == "load" and torch.equal(loaded.rgb, in_memory.rgb)
    assert sorted(p.name for p in (data / CACHE).iterdir()) == [cache_path(data).name]


def test_a_bad_file_found_while_decoding_into_the_cache_leaves_no_cache(data, monkeypatch):
    monkeypatch.setattr(memory_modes, "fits_comfortably", lambda nbytes: False)
    (data / "rgb" / "0006.png").write_bytes(b"not a png")
    with pytest.raises(DatasetError, match="0006.png"):
        opened(data, "auto")
    assert list((data / CACHE).iterdir()) == []


def test_a_disk_too_small_for_the_cache_says_how_much_it_needs_before_writing(data, monkeypatch, caplog):
    usage = tensor_cache.shutil.disk_usage(data)
    monkeypatch.setattr(tensor_cache.shutil, "disk_usage", lambda path: usage._replace(free=10 * 2**20))
    with caplog.at_level(logging.WARNING, logger="fusionzoo"):
        ds = opened(data, "auto")  # fits in memory: read, not cached, and the log says why
    assert ds.memory_mode == "load" and "could not write the cache" in caplog.text and "but its disk has 10.0 MiB free" in caplog.text
    monkeypatch.setattr(memory_modes, "fits_comfortably", lambda nbytes: False)
    with pytest.raises(DatasetError, match=r"needs .* MiB \(and 64.0 MiB to spare\) but its disk has 10.0 MiB free; free "
                                           r"some space, or pass cache_dir="):
        opened(data, "auto")
    assert not (data / CACHE).exists() or list((data / CACHE).iterdir()) == []


def test_processes_opening_a_dataset_at_once_build_its_cache_once(data):
    results, errors = [], []

    def open_it():
        try:
            results.append(opened(data, "map").from_cache)
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=open_it) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and sorted(results) == [False, True, True]
    assert sorted(p.name for p in (data / CACHE).iterdir()) == [cache_path(data).name]  # the lock is gone


def test_a_cache_that_is_not_whole_is_never_mapped(data, caplog):
    opened(data, "load")
    whole = cache_path(data).read_bytes()
    cache_path(data).write_bytes(whole[:-1])
    with caplog.at_level(logging.WARNING, logger="fusionzoo"):
        ds = opened(data, "map")
    assert not ds.from_cache and "ignoring unreadable cache" in caplog.text


@pytest.mark.parametrize("command", [["train", "matmul", "--data", "d"], ["compare"], ["eval", "c.safetensors", "--data", "d"]])
def test_the_cli_takes_memory_where_it_opens_datasets(command):
    from fusionzoo.cli import build_parser

    parser = build_parser()
    assert parser.parse_args([*command, "--memory", "map"]).memory == "map"
    assert parser.parse_args(command).memory is None  # the environment's default, else auto
    with pytest.raises(SystemExit):
        parser.parse_args([*command, "--memory", "disk"])


def test_mapped_samples_cross_to_another_process_as_a_mapping_not_a_copy(tmp_path):
    write_dataset(tmp_path, n=360, png=8)
    opened(tmp_path, "load")
    train, valid = course_splits(opened(tmp_path, "map"))
    blob = pickle.dumps(valid)
    assert len(blob) < cache_path(tmp_path).stat().st_size / 10  # where the rows lie, not the rows
    again = pickle.loads(blob)
    assert again.mapped is not None and again.mapped is not valid.mapped
    assert again.rgb.untyped_storage().data_ptr() == again.mapped.tensors["rgb"].untyped_storage().data_ptr()
    assert all(torch.equal(a, b) for a, b in zip(again.batch(torch.arange(40)), valid.batch(torch.arange(40))))
    assert again.source == valid.source and len(again) == len(valid) == 320
    loaded = pickle.loads(pickle.dumps(opened(tmp_path, "load")))  # in memory: the tensors themselves travel
    assert loaded.mapped is None and torch.equal(loaded.depth[:40], train.depth)


def test_mapped_samples_refuse_to_cross_once_their_cache_changed(data):
    opened(data, "load")
    blob = pickle.dumps(opened(data, "map"))
    with open(cache_path(data), "ab") as f:
        f.write(b"\0" * 8)
    with pytest.raises(DatasetError, match=f"cache {re.escape(str(cache_path(data)))} changed after it was mapped"):
        pickle.loads(blob)


def test_dataloader_workers_started_by_spawn_read_the_mapped_samples(data):
    opened(data, "load")
    mapped = opened(data, "map")
    loader = torch.utils.data.DataLoader(mapped, batch_size=4, num_workers=1, multiprocessing_context="spawn")
    ours = [torch.cat(parts) for parts in zip(*loader)]
    assert all(torch.equal(a, b) for a, b in zip(ours, mapped.batch(torch.arange(len(mapped)))))
