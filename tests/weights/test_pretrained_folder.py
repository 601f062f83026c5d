"""Pretrained folders (config.json, model.safetensors, README.md): the round trip, the model card,
and a named error that says what to do for each bad input."""

from __future__ import annotations

import json

import pytest
import torch

import fusionzoo
from fusionzoo import CheckpointError
from fusionzoo.weights.pretrained import CONFIG_FILE, WEIGHTS_FILE
from fusionzoo.weights import record
from fusionzoo.weights.record import Record

TINY = {"widths": (4, 6, 8), "hidden": (12,), "image_size": 16}
RECORD = Record(metrics={"epoch": 3, "best_epoch": 3, "valid_mse": 0.5, "position_error": 0.9, "train_loss": 0.3},
                recipe={"format": 1, "epochs": 3, "lr": 1e-4, "seed": 0, "data": "unrecorded"})


@pytest.fixture
def folder(tmp_path):
    torch.manual_seed(0)
    model = fusionzoo.create("matmul", **TINY)
    return fusionzoo.save_pretrained(model, tmp_path / "matmul", record=RECORD), model


def edit_config(folder, **changes):
    path = folder / CONFIG_FILE
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document))


def test_save_pretrained_writes_the_hugging_face_layout_and_load_round_trips(folder):
    path, model = folder
    assert sorted(p.name for p in path.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((path / CONFIG_FILE).read_text())
    assert config["model"] == "matmul" and config["options"]["widths"] == [4, 6, 8]
    assert config["num_params"] == sum(p.numel() for p in model.parameters())
    assert config["metrics"]["valid_mse"] == 0.5 and config["recipe"]["epochs"] == 3
    assert config["data_config"] is None and config["fusionzoo_version"] == fusionzoo.__version__
    for loaded in (fusionzoo.load(path), fusionzoo.create("matmul", weights=path, **TINY)):
        for key, value in model.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), key
    assert fusionzoo.read_record(path / WEIGHTS_FILE).record.metrics == RECORD.metrics  # the file alone keeps it too


def test_a_model_without_a_record_gets_the_data_contract_its_options_imply(tmp_path):
    path = fusionzoo.save_pretrained(fusionzoo.create("concat", **TINY), tmp_path / "concat")
    record = fusionzoo.read_record(path).record
    assert record.metrics is None and record.data_config["rgb"]["shape"] == [4, 16, 16]


def test_save_pretrained_from_a_checkpoint_keeps_its_record(folder, tmp_path):
    path, _ = folder
    again = fusionzoo.save_pretrained(path / WEIGHTS_FILE, tmp_path / "again")
    assert fusionzoo.read_record(again).record == fusionzoo.read_record(path).record


def test_model_card_says_what_it_is_its_metrics_the_command_and_its_limits(tmp_path):
    model = fusionzoo.create("matmul", **TINY)
    path = fusionzoo.save_pretrained(model, tmp_path / "m", record=RECORD, weights="matmul.tiny",
                                     command="fusionzoo pretrain matmul.tiny")
    card = (path / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: fusionzoo\n")
    assert "# matmul.tiny" in card and "matrix product" in card
    assert "| valid_mse | 0.5 |" in card and "fusionzoo pretrain matmul.tiny" in card
    assert "## Intended use and limits" in card and "synthetic scenes" in card
    assert 'fusionzoo.create(\'matmul\', weights=\'tiny\')' in card


def test_a_weights_file_whose_sha256_disagrees_with_its_record_is_refused(folder):
    path, _ = folder
    other = fusionzoo.create("matmul", **TINY)  # same shapes, other values: only the hash tells
    fusionzoo.save(other, path / WEIGHTS_FILE)
    with pytest.raises(CheckpointError, match=r"model.safetensors: its sha256 .* differs .* changed or damaged"):
        fusionzoo.load(path)


def test_a_parameter_count_that_disagrees_with_the_record_is_refused(folder):
    path, _ = folder
    edit_config(path, num_params=123)
    with pytest.raises(CheckpointError, match=r"has 2,133 parameters, config.json records 123"):
        fusionzoo.load(path)


def test_a_config_naming_an_unknown_model_is_refused_with_the_fix(folder):
    path, _ = folder
    edit_config(path, model="transformer9000")
    with pytest.raises(CheckpointError, match=r"names model 'transformer9000', which this fusionzoo .* upgrade"):
        fusionzoo.load(path)


def test_a_record_from_a_newer_fusionzoo_is_refused_with_the_fix(folder):
    path, _ = folder
    edit_config(path, format=2, fusionzoo_version="9.0.0")
    with pytest.raises(CheckpointError, match=r"written by fusionzoo 9.0.0.*pip install -U fusionzoo"):
        fusionzoo.load(path)
    edit_config(path, format=1, recipe={**RECORD.recipe, "format": 7, "fusionzoo": "9.0.0"})
    with pytest.raises(CheckpointError, match=r"a record of format 7, written by fusionzoo 9.0.0.*Upgrade"):
        fusionzoo.read_record(path)


def test_a_newer_version_writing_the_same_format_loads_with_a_warning(folder, caplog, monkeypatch):
    path, _ = folder
    # An installed release: a source tree never installed is "0+unknown", which compares with nothing.
    monkeypatch.setattr(record, "__version__", "1.0.0")
    edit_config(path, fusionzoo_version="9.0.0")
    with caplog.at_level("WARNING"):
        fusionzoo.load(path)
    assert "written by fusionzoo 9.0.0, newer than this" in caplog.text


def test_a_folder_without_config_json_is_not_a_pretrained_folder(tmp_path):
    (tmp_path / "x.txt").write_text("x")
    with pytest.raises(CheckpointError, match=r"not a pretrained folder \(no config.json; it holds x.txt\)"):
        fusionzoo.load(tmp_path)


def test_a_folder_of_another_model_is_refused_by_create(folder):
    path, _ = folder
    with pytest.raises(CheckpointError, match=r"holds a 'matmul' model, not 'concat'"):
        fusionzoo.create("concat", weights=path)


def test_weights_and_fine_tuning_sources_are_not_mixed(folder):
    path, _ = folder
    with pytest.raises(ValueError, match="not both"):
        fusionzoo.create("matmul", weights=path, checkpoint=path / WEIGHTS_FILE)
