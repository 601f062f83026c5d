"""Model checkpoints: one safetensors file that rebuilds the model, written atomically, read safely."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import fusionzoo
from fusionzoo import CheckpointError
from fusionzoo.weights import checkpoint
from fusionzoo.registry import ModelConfig, get_spec

from safetensors_files import rewrite

SMALL = {"image_size": 16, "widths": (4, 8), "hidden": (16,)}


def small(name: str, **overrides) -> torch.nn.Module:
    """``name`` with the small overrides its factory accepts, so every test stays fast."""
    accepted = get_spec(name).defaults()
    return fusionzoo.create(name, **{**{k: v for k, v in SMALL.items() if k in accepted}, **overrides})


def inputs(model: torch.nn.Module, batch: int = 3) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return {arg: torch.rand(batch, *shape, generator=generator) for arg, shape in model.input_shapes.items()}


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


@pytest.mark.parametrize("name", fusionzoo.list_models())
def test_round_trip_gives_identical_outputs_for_every_registered_model(name, tmp_path):
    model = small(name).eval()
    path = fusionzoo.save(model, tmp_path / f"{name}.safetensors")
    loaded = fusionzoo.load(path)
    assert type(loaded) is type(model)
    assert fusionzoo.model_config(loaded) == fusionzoo.model_config(model)
    assert not loaded.training
    assert_same_weights(model, loaded)
    x = inputs(model)
    with torch.no_grad():
        assert torch.equal(model(**x), loaded(**x))


def test_file_opens_with_plain_safe_open_and_its_metadata_names_the_model(tmp_path):
    model = small("matmul", num_outputs=6)
    path = fusionzoo.save(model, tmp_path / "m.safetensors", metadata={"note": "trained on cubes"})
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
        keys = set(f.keys())
        tensors = {k: f.get_tensor(k) for k in keys}
    assert keys == set(model.state_dict())
    assert all(torch.equal(tensors[k], v) for k, v in model.state_dict().items())
    assert metadata["fusionzoo.name"] == "matmul"
    assert ModelConfig.from_json(metadata["fusionzoo.config"]) == fusionzoo.model_config(model)
    assert json.loads(metadata["fusionzoo.config"])["options"]["num_outputs"] == 6
    assert metadata["fusionzoo.version"] == fusionzoo.__version__
    assert metadata["note"] == "trained on cubes"


def test_reserved_metadata_keys_are_refused(tmp_path):
    with pytest.raises(ValueError, match="fusionzoo.name"):
        fusionzoo.save(small("sum"), tmp_path / "m.safetensors", metadata={"fusionzoo.name": "other"})
    assert not (tmp_path / "m.safetensors").exists()


def test_a_model_not_built_by_create_cannot_be_saved(tmp_path):
    with pytest.raises(ValueError, match="not built by fusionzoo.create"):
        fusionzoo.save(torch.nn.Linear(2, 2), tmp_path / "m.safetensors")


def test_tied_weights_are_stored_and_loaded_without_error(tmp_path):
    model = small("sum", widths=(4, 4))
    encoder = model.encoders["rgb"].layers
    encoder[3].weight = encoder[0].weight  # both (4, 4, 3, 3): one tensor under two names
    path = fusionzoo.save(model, tmp_path / "tied.safetensors")
    loaded = fusionzoo.load(path)
    assert_same_weights(model, loaded)
    x = inputs(model)
    with torch.no_grad():
        assert torch.equal(model.eval()(**x), loaded(**x))


def test_channels_last_weights_are_saved(tmp_path):
    model = small("concat").to(memory_format=torch.channels_last)
    assert not model.encoders["rgb"].layers[0].weight.is_contiguous()
    assert_same_weights(model, fusionzoo.load(fusionzoo.save(model, tmp_path / "cl.safetensors")))


def test_interrupted_save_leaves_the_old_checkpoint_loadable_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "model.safetensors"
    old = small("matmul")
    fusionzoo.save(old, path)
    before = path.read_bytes()

    def crash_mid_write(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\x10\x00partial header")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", crash_mid_write)
    with pytest.raises(OSError, match="disk full"):
        fusionzoo.save(small("matmul"), path)
    assert path.read_bytes() == before
    assert_same_weights(old, fusionzoo.load(path))
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_load_to_an_unavailable_device_says_so(tmp_path):
    path = fusionzoo.save(small("rgb"), tmp_path / "m.safetensors")
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="'cuda'.*not available"):
        fusionzoo.load(path, map_location="cuda")


def _truncated_in_header(good: bytes) -> bytes:
    return good[:40]


def _truncated_in_data(good: bytes) -> bytes:
    return good[:-100]


def _corrupt_header(good: bytes) -> bytes:
    length = int.from_bytes(good[:8], "little")
    return good[:8] + b"#" * length + good[8 + length :]


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda good: b"", "truncated"),
        (lambda good: good[:5], "truncated"),
        (_truncated_in_header, "truncated.*header claims"),
        (_truncated_in_data, "corrupt or truncated"),
        (_corrupt_header, "corrupt or truncated"),
        (lambda good: b"not a checkpoint at all, just some text in a file", "truncated"),
    ],
    ids=["empty", "shorter-than-length", "truncated-header", "truncated-data", "corrupt-header", "text"],
)
def test_damaged_files_raise_checkpoint_error_naming_the_file(tmp_path, damage, message):
    good = fusionzoo.save(small("sum"), tmp_path / "good.safetensors").read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(damage(good))
    with pytest.raises(CheckpointError, match=message) as err:
        fusionzoo.load(bad)
    assert str(bad) in str(err.value)


def test_missing_file_raises_checkpoint_error_naming_it(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint file") as err:
        fusionzoo.load(tmp_path / "absent.safetensors")
    assert "absent.safetensors" in str(err.value)


def test_foreign_safetensors_file_is_refused_by_load_but_readable_as_weights(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.ones(2, 2)}, str(path), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="without fusionzoo metadata") as err:
        fusionzoo.load(path)
    assert str(path) in str(err.value)
    assert torch.equal(checkpoint.read_weights(path)["weight"], torch.ones(2, 2))


def test_unknown_model_name_says_which_and_lists_the_available_ones(tmp_path):
    good = fusionzoo.save(small("sum"), tmp_path / "good.safetensors")
    config = ModelConfig("no_such_net", fusionzoo.model_config(small("sum")).options).to_json()
    bad = rewrite(good, tmp_path / "bad.safetensors", **{"fusionzoo.name": "no_such_net", "fusionzoo.config": config})
    with pytest.raises(CheckpointError, match="no_such_net") as err:
        fusionzoo.load(bad)
    assert str(bad) in str(err.value)
    assert "matmul" in str(err.value) and "concat" in str(err.value)


def test_weights_that_do_not_fit_list_missing_unexpected_and_misshaped_tensors(tmp_path):
    good = fusionzoo.save(small("sum"), tmp_path / "good.safetensors")

    def damage(tensors):
        tensors.pop("head.layers.1.bias")
        tensors["extra.weight"] = torch.zeros(3)
        tensors["head.layers.3.weight"] = torch.zeros(5, 16)
        return tensors

    bad = rewrite(good, tmp_path / "bad.safetensors", tensors=damage)
    with pytest.raises(CheckpointError) as err:
        fusionzoo.load(bad)
    message = str(err.value)
    assert str(bad) in message
    assert "missing: head.layers.1.bias" in message
    assert "unexpected: extra.weight" in message
    assert "mis-shaped: head.layers.3.weight (file [5, 16], model [9, 16])" in message


def test_a_config_the_factory_refuses_is_a_checkpoint_error(tmp_path):
    good = fusionzoo.save(small("sum"), tmp_path / "good.safetensors")
    config = ModelConfig("sum", {"image_size": 16, "no_such_option": 1}).to_json()
    bad = rewrite(good, tmp_path / "bad.safetensors", **{"fusionzoo.config": config})
    with pytest.raises(CheckpointError, match="no_such_option"):
        fusionzoo.load(bad)
