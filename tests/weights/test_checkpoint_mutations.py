"""A property of ``load`` on hostile files: any single mutation of a valid checkpoint's config,
metadata or tensor table gives the model the file describes, or a ``CheckpointError`` naming the
file, quickly and without allocating more than the file holds."""

from __future__ import annotations

import json
import resource
from datetime import timedelta

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file

import fusionzoo
from fusionzoo import CheckpointError
from fusionzoo.registry import ModelConfig

KIND, NAME, CONFIG, VERSION = "fusionzoo.kind", "fusionzoo.name", "fusionzoo.config", "fusionzoo.version"
TINY = {"widths": (4, 6, 8), "hidden": (12,), "image_size": 16}

# JSON values, with the sizes and edge cases a damaged or hostile config would hold.
json_scalars = (
    st.none() | st.booleans() | st.floats() | st.text(max_size=8)
    | st.integers(-10, 100) | st.sampled_from([0, 12000, 10**6, 10**12, 2**63, 10**30])
)
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8
)


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    """A valid tiny checkpoint: (path, its metadata, its tensors, the model's outputs on fixed inputs)."""
    torch.manual_seed(0)
    model = fusionzoo.create("matmul", **TINY).eval()
    path = fusionzoo.save(model, tmp_path_factory.mktemp("mutations") / "good.safetensors")
    with safe_open(str(path), framework="pt") as f:
        metadata, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    return path, metadata, tensors


def outputs(model: torch.nn.Module) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    x = {arg: torch.rand(2, *shape, generator=generator) for arg, shape in model.input_shapes.items()}
    with torch.no_grad():
        return model(**x)


@st.composite
def config_mutations(draw, metadata):
    """The stored config with one option set to any JSON value (or a new option added, or one dropped)."""
    config = json.loads(metadata[CONFIG])
    key = draw(st.sampled_from(sorted(config["options"])) | st.text(min_size=1, max_size=6))
    if draw(st.booleans()) and key in config["options"]:
        del config["options"][key]
    else:
        config["options"][key] = draw(json_values)
    return {**metadata, CONFIG: json.dumps(config, allow_nan=True)}


@st.composite
def metadata_mutations(draw, metadata):
    """One metadata key dropped, or set to any text (for the name, also another registered name)."""
    key = draw(st.sampled_from([KIND, NAME, CONFIG, VERSION, "other"]))
    changed = dict(metadata)
    if draw(st.booleans()):
        changed.pop(key, None)
    elif key == NAME or key == CONFIG and draw(st.booleans()):
        name = draw(st.sampled_from(fusionzoo.list_models()) | st.text(max_size=8))
        changed[NAME] = name
        if key == CONFIG:
            changed[CONFIG] = ModelConfig(name, json.loads(metadata[CONFIG])["options"]).to_json()
    else:
        changed[key] = draw(st.sampled_from(["model", "training-state", "{}", "[]", "null"]) | st.text(max_size=40))
    return changed


@st.composite
def table_mutations(draw, tensors):
    """The tensor table with one tensor dropped, renamed, duplicated, re-typed, re-shaped or spoiled."""
    changed = dict(tensors)
    key = draw(st.sampled_from(sorted(changed)))
    tensor = changed[key]
    how = draw(st.sampled_from(["drop", "rename", "duplicate", "retype", "reshape", "spoil", "empty"]))
    if how == "drop":
        del changed[key]
    elif how == "rename":
        changed[draw(st.text(min_size=1, max_size=12))] = changed.pop(key)
    elif how == "duplicate":
        changed[key + draw(st.text(min_size=1, max_size=4))] = tensor.clone()
    elif how == "retype":
        # float64 holds every float32 exactly; narrower floats change the values by design (a warning).
        changed[key] = tensor.to(draw(st.sampled_from([torch.int64, torch.int32, torch.uint8, torch.bool, torch.float64])))
    elif how == "reshape":
        changed[key] = draw(st.sampled_from([tensor.flatten(), tensor.reshape(1, -1), tensor[:1], torch.zeros(0), torch.zeros(())])).clone()
    elif how == "spoil":
        spoiled = tensor.clone().flatten()
        spoiled[draw(st.integers(0, spoiled.numel() - 1))] = draw(st.sampled_from([float("nan"), float("inf"), -float("inf")]))
        changed[key] = spoiled.reshape(tensor.shape)
    else:
        changed = {}
    return changed


@st.composite
def mutations(draw, original):
    _, metadata, tensors = original
    which = draw(st.sampled_from(["config", "metadata", "table"]))
    if which == "config":
        return draw(config_mutations(metadata)), tensors
    if which == "metadata":
        return draw(metadata_mutations(metadata)), tensors
    return metadata, draw(table_mutations(tensors))


def test_any_single_mutation_loads_the_described_model_or_names_the_file(original, tmp_path_factory):
    path, metadata, tensors = original
    expected = outputs(fusionzoo.load(path))
    bad = tmp_path_factory.mktemp("mutated") / "mutated.safetensors"
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    @settings(max_examples=100, deadline=timedelta(seconds=3), database=None)
    @given(mutations(original))
    def check(mutation):
        changed_metadata, changed_tensors = mutation
        save_file(changed_tensors, str(bad), metadata=changed_metadata)
        try:
            loaded = fusionzoo.load(bad)
        except CheckpointError as err:
            assert str(bad) in str(err)
            return
        # It loaded: the model is exactly what the file describes...
        stored = ModelConfig.from_json(changed_metadata[CONFIG]).resolved()
        assert fusionzoo.model_config(loaded) == stored
        state = loaded.state_dict()
        assert state.keys() == changed_tensors.keys()
        assert all(torch.equal(state[k], changed_tensors[k].to(state[k].dtype)) for k in state)
        # ...and where the mutation left the config alone, it is the original model.
        if stored == ModelConfig.from_json(metadata[CONFIG]).resolved():
            assert torch.equal(outputs(loaded), expected)

    check()
    # Linux reports the peak in KiB: no mutation may have allocated anything near a large model.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 300 * 1024
