"""The weights catalogue, checked entry by entry as torchvision checks its ``Weights``, and one entry
built end to end by the real ``pretrain`` path into a temporary cache."""

from __future__ import annotations

import torch
import pytest

import fusionzoo
from fusionzoo import MissingWeightsError
from fusionzoo.data import course_splits
from fusionzoo.experiments.pretrain import scene_folder
from fusionzoo.registry import build, get_spec
from fusionzoo.weights import catalog
from fusionzoo.weights.catalog import Recipe, Weights, get_weights, list_weights

COURSE_SIX = ("rgb", "lidar", "early", "late", "concat", "matmul")
TINY_OPTIONS = {"widths": [4, 6, 8], "hidden": [12]}
TINY_SCENE = {"samples": 360, "seed": 0, "image_size": 16, "lidar_grid": [16, 16]}


def parameters_on_meta(entry: Weights) -> int:
    """The parameter count of the model an entry's recipe builds: its options plus those the data imply."""
    implied = {"image_size": entry.recipe.image_size, "rgb_channels": 4, "lidar_channels": 4, "num_outputs": 9}
    accepted = get_spec(entry.model).defaults()
    with torch.device("meta"):
        model = build(entry.model, **{**{k: v for k, v in implied.items() if k in accepted}, **entry.options})
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", list_weights())
def test_every_entry_records_its_parameter_count_recipe_and_metrics(name):
    entry = get_weights(name)
    assert entry.num_params == parameters_on_meta(entry)
    assert entry.metrics and entry.tolerance.keys() == entry.metrics.keys()
    assert all(0 < entry.tolerance[k] < entry.metrics[k] for k in entry.metrics)
    recipe = entry.recipe
    assert recipe.scene["samples"] and "seed" in recipe.scene and recipe.split == "course"
    assert recipe.epochs >= 1 and recipe.lr > 0 and recipe.batch_size >= 1 and recipe.precision
    assert entry.command == f"fusionzoo pretrain {name}" and entry.measured


def test_catalogue_holds_the_course_models_and_the_best_leaderboard_variant_under_unique_tags():
    names = list_weights()
    assert len(names) == len(set(names)) == len({(get_weights(n).model, get_weights(n).tag) for n in names})
    assert {f"{m}.cubes" for m in COURSE_SIX} <= set(names)
    norm = get_weights("bilinear.cubes_norm")
    assert norm.options == {"feature_norm": True, "hidden": [996, 100]}
    assert norm.metrics["valid_mse"] < get_weights("matmul.cubes").metrics["valid_mse"]
    assert fusionzoo.info("matmul").num_params == get_weights("matmul.cubes").num_params


def test_course_recipe_is_the_leaderboards_protocol_seed_zero():
    recipe = get_weights("matmul.cubes").recipe
    assert recipe == Recipe(scene={"samples": 9999, "seed": 0}, split="course", epochs=20, lr=1e-4, batch_size=32,
                            precision="fp32", seed=0)
    assert recipe.image_size == 64


def test_a_tag_registered_twice_is_refused():
    with pytest.raises(ValueError, match="already in the catalogue"):
        catalog.register_weights(get_weights("matmul.cubes"))


def test_an_unknown_tag_lists_the_catalogue(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONZOO_HOME", str(tmp_path))
    with pytest.raises(KeyError, match="Did you mean 'matmul.cubes'"):
        fusionzoo.create("matmul", weights="cubez")


def test_weights_not_built_yet_name_the_command_that_builds_them(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONZOO_HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError, match="fusionzoo pretrain matmul.cubes"):
        fusionzoo.create("matmul", weights="cubes")


def test_an_override_contradicting_an_entrys_options_names_both(tmp_path, monkeypatch):
    monkeypatch.setenv("FUSIONZOO_HOME", str(tmp_path))
    with pytest.raises(ValueError, match=r"feature_norm=False given, the weights have feature_norm=True"):
        fusionzoo.create("bilinear", weights="cubes_norm", feature_norm=False)


@pytest.fixture
def tiny_entry(monkeypatch):
    """A one-epoch entry of a tiny model on a tiny scene, in the catalogue for one test."""
    monkeypatch.setattr(catalog, "_WEIGHTS", dict(catalog._WEIGHTS))
    entry = Weights("matmul", "tiny", "a tiny matmul for tests", 0, {"valid_mse": 8.0}, {"valid_mse": 100.0},
                    options=TINY_OPTIONS, recipe=Recipe(scene=TINY_SCENE, epochs=1))
    entry = Weights(**{**entry.__dict__, "num_params": parameters_on_meta(entry)})
    return catalog.register_weights(entry)


def test_a_tiny_entry_is_built_end_to_end_and_create_loads_it(tiny_entry, tmp_path, monkeypatch):
    from fusionzoo.experiments import pretrain

    monkeypatch.setenv("FUSIONZOO_HOME", str(tmp_path / "home"))
    with pytest.raises(MissingWeightsError, match="fusionzoo pretrain matmul.tiny"):
        fusionzoo.create("matmul", weights="tiny")
    built = pretrain("matmul.tiny", progress=False)
    assert built.folder == tmp_path / "home" / "weights" / "matmul.tiny"
    assert built.deviations == [] and set(built.metrics) >= {"valid_mse", "position_error", "train_loss", "best_epoch"}
    model = fusionzoo.create("matmul", weights="tiny")
    assert sum(p.numel() for p in model.parameters()) == tiny_entry.num_params
    # The stored weights are the run's best: they score what the record says on the recipe's split.
    _, valid = course_splits(scene_folder(tiny_entry.recipe.scene), image_size=tiny_entry.recipe.image_size)
    assert fusionzoo.evaluate(model, valid).loss == pytest.approx(built.metrics["valid_mse"], rel=1e-5)
    # One copy of the weights in the cache: the build's run folder is gone, its history kept beside them.
    assert not (tmp_path / "home" / "runs" / "matmul.tiny").exists()
    assert sorted(p.relative_to(tmp_path / "home").as_posix() for p in (tmp_path / "home").rglob("*.safetensors")
                  if "scenes" not in p.parts) == ["weights/matmul.tiny/model.safetensors"]
    history = fusionzoo.History.from_csv(built.folder / "history.csv")
    assert history.best_epoch == built.metrics["epoch"] and history.best_valid_loss == pytest.approx(built.metrics["valid_mse"])
    record = fusionzoo.read_record(built.folder)
    assert record.weights == "matmul.tiny" and record.record.recipe["data"]["scene"]["config"]["samples"] == 360
    assert "fusionzoo pretrain matmul.tiny" in (built.folder / "README.md").read_text()
    # A second call finds the weights built and trains nothing.
    again = pretrain("matmul.tiny", progress=False)
    assert again.deviations is None and again.metrics == built.metrics


def test_a_build_outside_the_tolerance_warns(tiny_entry, tmp_path, monkeypatch, caplog):
    from fusionzoo.experiments import pretrain

    monkeypatch.setenv("FUSIONZOO_HOME", str(tmp_path / "home"))
    off = Weights(**{**tiny_entry.__dict__, "tag": "off", "metrics": {"valid_mse": 0.001}, "tolerance": {"valid_mse": 0.0001}})
    catalog.register_weights(off)
    with caplog.at_level("WARNING"):
        built = pretrain("matmul.off", progress=False)
    assert built.deviations and "misses the catalogue's figures" in caplog.text
    assert (built.folder / "config.json").is_file()  # stored all the same


def test_fusionzoo_home_defaults_to_the_platforms_user_cache(monkeypatch, tmp_path):
    from fusionzoo.weights import home

    monkeypatch.delenv("FUSIONZOO_HOME", raising=False)
    monkeypatch.setattr(home.sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert home.fusionzoo_home() == tmp_path / "xdg" / "fusionzoo"
    monkeypatch.setattr(home.sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert home.fusionzoo_home() == tmp_path / "local" / "fusionzoo"
    monkeypatch.setattr(home.sys, "platform", "darwin")
    assert home.fusionzoo_home().parts[-3:] == ("Library", "Caches", "fusionzoo")
    monkeypatch.setenv("FUSIONZOO_HOME", str(tmp_path / "mine"))
    assert home.fusionzoo_home() == tmp_path / "mine"


def test_an_entry_with_training_options_is_built_with_them_and_says_them(monkeypatch, tmp_path):
    from fusionzoo.experiments import pretrain

    monkeypatch.setattr(catalog, "_WEIGHTS", dict(catalog._WEIGHTS))
    training = {"weight_decay": 0.1, "schedule": "cosine", "warmup": 1, "ema": 0.9}
    entry = Weights("matmul", "tiny_reg", "a tiny regularised matmul for tests", 0, {"valid_mse": 8.0},
                    {"valid_mse": 100.0}, options=TINY_OPTIONS, recipe=Recipe(scene=TINY_SCENE, epochs=1, lr=3e-3, training=training))
    entry = catalog.register_weights(Weights(**{**entry.__dict__, "num_params": parameters_on_meta(entry)}))
    assert entry.compare_command.endswith("--lr 0.003 --weight-decay 0.1 --schedule cosine --warmup 1 --ema 0.9 --seeds 0")
    assert entry.to_json()["recipe"]["training"] == training
    monkeypatch.setenv("FUSIONZOO_HOME", str(tmp_path / "home"))
    built = pretrain("matmul.tiny_reg", progress=False)
    recorded = fusionzoo.read_record(built.folder).record.recipe
    assert {k: recorded[k] for k in training} == training and recorded["lr"] == 3e-3


def test_a_recipe_refuses_training_options_fit_does_not_record():
    with pytest.raises(ValueError, match=r"recipe training options \['lr_decay'\]"):
        Recipe(training={"lr_decay": 0.5})
