"""Checkpoints as hostile input (issue #25): a file's config, dtypes, architecture and values are
checked before anything is allocated or copied, and every refusal is a ``CheckpointError`` naming
the file."""

from __future__ import annotations

import json
import logging
import resource
import time

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import fusionzoo
from fusionzoo import CheckpointError
from fusionzoo import registry
from fusionzoo.registry import ModelConfig
from fusionzoo.weights import load_branch, load_weights
from fusionzoo.weights.stored_config import MAX_CONFIG_CHARS, MAX_CONFIG_DEPTH

from safetensors_files import rewrite

TINY = {"widths": (4, 6, 8), "hidden": (12,), "image_size": 16}


def tiny(name: str = "matmul", **overrides) -> nn.Module:
    return fusionzoo.create(name, **{**TINY, **overrides})


@pytest.fixture
def good(tmp_path):
    torch.manual_seed(0)
    return fusionzoo.save(tiny(), tmp_path / "good.safetensors")


def with_options(good, target, **changes):
    options = {**fusionzoo.model_config(fusionzoo.load(good)).options, **changes}
    return rewrite(good, target, **{"fusionzoo.config": ModelConfig("matmul", options).to_json()})


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


# --- 1. a stored config cannot make load allocate more than the file holds ---------------------


def test_a_config_asking_for_gigabytes_is_refused_before_allocating(good, tmp_path):
    # 2.1 GiB of weights under a 10 kB file: small enough that a regression cannot exhaust memory.
    bad = with_options(good, tmp_path / "huge.safetensors", widths=[4000, 4000, 4000])
    before, start = peak_rss_mb(), time.perf_counter()
    with pytest.raises(CheckpointError, match=r"asks for 'matmul' .* 576,504,129 values \(2\.1 GiB\).* the file holds 2,133") as err:
        fusionzoo.load(bad)
    assert str(bad) in str(err.value)
    assert time.perf_counter() - start < 2.0
    assert peak_rss_mb() - before < 500


def test_load_gives_the_same_model_buffers_and_random_stream_as_a_plain_build(tmp_path):
    model = tiny("early", input_norm=True)
    model.train()(torch.rand(5, 4, 16, 16), torch.rand(5, 4, 16, 16))  # moves the BatchNorm statistics
    path = fusionzoo.save(model, tmp_path / "early.safetensors")
    torch.manual_seed(3)
    loaded = fusionzoo.load(path)
    after_load = torch.rand(4)
    torch.manual_seed(3)
    tiny("early", input_norm=True)
    assert torch.equal(after_load, torch.rand(4)), "load draws from the RNG exactly as one build does"
    assert loaded.input_norm.num_batches_tracked.dtype == torch.int64
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


class _WithScratch(nn.Module):
    """A model with a non-persistent buffer, which the file does not hold but the model needs."""

    def __init__(self, size: int = 3):
        super().__init__()
        self.linear = nn.Linear(size, size)
        self.register_buffer("scale", torch.arange(size, dtype=torch.float32) + 1, persistent=False)


def test_non_persistent_buffers_come_out_initialised(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))
    fusionzoo.register_model("with_scratch")(lambda size=3: _WithScratch(size))
    path = fusionzoo.save(fusionzoo.create("with_scratch"), tmp_path / "scratch.safetensors")
    assert torch.equal(fusionzoo.load(path).scale, torch.tensor([1.0, 2.0, 3.0]))


# --- 2. dtypes --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.uint8])
def test_a_weight_stored_with_another_kind_of_dtype_is_refused_naming_it_and_both_dtypes(good, tmp_path, dtype):
    def retype(tensors):
        tensors["head.layers.3.weight"] = tensors["head.layers.3.weight"].to(dtype)
        return tensors

    bad = rewrite(good, tmp_path / "retyped.safetensors", tensors=retype)
    name = str(dtype).removeprefix("torch.")
    with pytest.raises(CheckpointError, match=rf"head\.layers\.3\.weight \(file {name}, model float32\)") as err:
        fusionzoo.load(bad)
    assert str(bad) in str(err.value)
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=rf"head\.layers\.3\.weight \(file {name}, model float32\)"):
        load_weights(model, bad)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "refused before any change"


def test_a_float_width_change_loads_with_a_warning(good, tmp_path, caplog):
    def halve(tensors):
        tensors["head.layers.3.weight"] = tensors["head.layers.3.weight"].half()
        return tensors

    narrow = rewrite(good, tmp_path / "fp16.safetensors", tensors=halve)
    with caplog.at_level(logging.WARNING, logger="fusionzoo"):
        loaded = fusionzoo.load(narrow)
    assert "head.layers.3.weight (float16 -> float32)" in caplog.text and str(narrow) in caplog.text
    expected = fusionzoo.load(good).head.layers[3].weight.half().float()
    assert torch.equal(loaded.head.layers[3].weight, expected)


# --- 3. a checkpoint that matches (almost) nothing -------------------------------------------------


def test_weights_of_another_architecture_are_refused_naming_both_models(tmp_path):
    late = fusionzoo.save(tiny("late"), tmp_path / "late.safetensors")
    model = tiny()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"holds model 'late', not 'matmul'.*strict=False") as err:
        load_weights(model, late)
    assert str(late) in str(err.value)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(CheckpointError, match="holds model 'late', not 'matmul'"):
        fusionzoo.create("matmul", checkpoint=late, **TINY)


def test_strict_false_loads_what_little_fits_with_a_warning(tmp_path, caplog):
    late = fusionzoo.save(tiny("late"), tmp_path / "late.safetensors")
    with caplog.at_level(logging.WARNING, logger="fusionzoo"):
        report = load_weights(tiny(), late, strict=False)
    assert report.loaded == ["head.layers.3.bias"] and report.share < 0.01
    assert "only 0.4% of the model's values were loaded" in caplog.text


def test_a_plain_file_that_fits_nothing_is_refused(tmp_path):
    plain = tmp_path / "plain.safetensors"
    save_file({"weight": torch.ones(2, 2)}, str(plain))
    with pytest.raises(CheckpointError, match=r"is a plain safetensors file: 0 of its 1 tensors fit"):
        load_weights(tiny(), plain)


def test_the_same_model_at_another_image_size_loads_its_encoders_with_a_warning(good, caplog):
    with caplog.at_level(logging.WARNING, logger="fusionzoo"):
        report = load_weights(tiny(image_size=64), good)
    assert list(report.skipped) == ["head.layers.1.weight"] and report.share < 0.5
    assert "of the model's values were loaded" in caplog.text


def test_fine_tuning_to_new_outputs_loads_without_a_warning(good, caplog):
    with caplog.at_level(logging.WARNING, logger="fusionzoo"):
        report = load_weights(tiny(num_outputs=3), good)
        fusionzoo.create("matmul", num_outputs=3, checkpoint=good, **TINY)
    assert set(report.dropped) == {"head.layers.3.weight", "head.layers.3.bias"} and report.share > 0.9
    assert caplog.text == ""


def test_min_share_sets_the_warning_threshold_and_is_checked(good, caplog):
    with caplog.at_level(logging.WARNING, logger="fusionzoo"):
        load_weights(tiny(num_outputs=3), good, min_share=1.0)
    assert "min_share 100%" in caplog.text
    with pytest.raises(ValueError, match="min_share"):
        load_weights(tiny(), good, min_share=2)


def test_a_branch_still_initialises_from_a_single_modality_checkpoint(tmp_path):
    rgb = tiny("rgb")
    path = fusionzoo.save(rgb, tmp_path / "rgb.safetensors")
    late = tiny("late")
    load_branch(late, "rgb", path)
    assert all(torch.equal(late.branches["rgb"].state_dict()[k], v) for k, v in rgb.net.state_dict().items())


# --- 4. unclear errors made clear ------------------------------------------------------------------


def _nested(depth: int) -> str:
    return json.dumps({"name": "matmul", "options": {}})[:-2] + '"x": ' + "[" * depth + "]" * depth + "}}"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (lambda options: ModelConfig("matmul", {**options, "image_size": "sixteen"}).to_json(),
         r'wrong type: image_size expects an integer \(e.g. 64\), got "sixteen"'),
        (lambda options: ModelConfig("matmul", {**options, "num_outputs": True}).to_json(), r"num_outputs expects an integer \(e.g. 9\), got true"),
        (lambda options: ModelConfig("matmul", {**options, "widths": [4, "6", 8]}).to_json(), r'widths expects a list of integers \(e.g. \[25, 50, 100\]\), got \[4, "6", 8\]'),
        (lambda options: json.dumps({"name": "matmul", "options": [1, 2]}), r"options must be a JSON object"),
        (lambda options: json.dumps({"name": 7}), r"expected \{\"name\": str"),
        (lambda options: "{not json", r"not JSON"),
        (lambda options: _nested(5000), r"nested too deeply"),
        (lambda options: _nested(MAX_CONFIG_DEPTH), r"nested too deeply to read \(more than 16 levels\)"),  # json reads it on any Python
        (lambda options: " " * (MAX_CONFIG_CHARS + 1) + "{}", r"16,387 characters long"),
        (lambda options: ModelConfig("matmul", {**options, "image_size": 10**30}).to_json(), r"cannot rebuild model 'matmul'"),
        (lambda options: ModelConfig("matmul", {**options, "widths": [-4, 6, 8]}).to_json(), r"cannot rebuild model 'matmul'.*widths"),
        (lambda options: ModelConfig("matmul", {**options, "fusion": "nope"}).to_json(), r"nope"),
    ],
    ids=["str-for-int", "bool-for-int", "str-in-list", "options-list", "name-not-str", "not-json", "deep", "deeper-than-the-bound",
         "too-long", "too-large-to-allocate", "negative-width", "unknown-fusion"],
)
def test_a_damaged_config_is_a_checkpoint_error_naming_the_file(good, tmp_path, config, message):
    options = fusionzoo.model_config(fusionzoo.load(good)).options
    bad = rewrite(good, tmp_path / "bad.safetensors", **{"fusionzoo.config": config(options)})
    with pytest.raises(CheckpointError, match=message) as err:
        fusionzoo.load(bad)
    assert str(bad) in str(err.value)
    with pytest.raises(CheckpointError):
        fusionzoo.weights.checkpoint.check_config(bad, tiny())


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_refused_naming_the_tensor(good, tmp_path, value):
    def spoil(tensors):
        tensors["encoders.rgb.layers.0.bias"][1] = value
        return tensors

    bad = rewrite(good, tmp_path / "diverged.safetensors", tensors=spoil)
    with pytest.raises(CheckpointError, match=r"non-finite weights: encoders\.rgb\.layers\.0\.bias \(") as err:
        fusionzoo.load(bad)
    assert str(bad) in str(err.value)
    with pytest.raises(CheckpointError, match=r"encoders\.rgb\.layers\.0\.bias"):
        load_weights(tiny(), bad)
    assert not torch.isfinite(fusionzoo.weights.read_weights(bad)["encoders.rgb.layers.0.bias"]).all(), "raw reads still work"


def test_huge_but_finite_weights_still_load(good, tmp_path):
    def enlarge(tensors):
        tensors["encoders.rgb.layers.0.bias"][:] = 3e38  # their sum overflows float32; each is finite
        return tensors

    loaded = fusionzoo.load(rewrite(good, tmp_path / "large.safetensors", tensors=enlarge))
    assert torch.equal(loaded.encoders["rgb"].layers[0].bias, torch.full((4,), 3e38))
