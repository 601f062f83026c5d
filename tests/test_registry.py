"""The model registry: names, patterns, overrides, third-party registration."""

import re

import pytest
import torch
from torch import nn

import fusionzoo
from fusionzoo import registry


@pytest.fixture
def scratch_registry(monkeypatch):
    """Registrations made in a test vanish after it."""
    monkeypatch.setattr(registry, "_MODELS", dict(registry._MODELS))


def test_list_models_includes_the_course_models_sorted():
    names = fusionzoo.list_models()
    assert names == sorted(names)
    assert {"early", "late", "concat", "matmul", "rgb", "lidar"} <= set(names)


def test_list_models_filters_by_glob_patterns():
    assert fusionzoo.list_models("c*") == ["concat"]
    assert fusionzoo.list_models(["rgb", "lid*"]) == ["lidar", "rgb"]
    assert "matmul" not in fusionzoo.list_models(exclude="m*")
    assert fusionzoo.list_models("no-such-*") == []


def test_unknown_name_lists_choices_and_closest_match():
    with pytest.raises(KeyError) as err:
        fusionzoo.create("matmull")
    message = str(err.value)
    assert "Did you mean 'matmul'?" in message
    assert "concat" in message and "early" in message
    with pytest.raises(KeyError, match="unknown model 'zzz'"):
        fusionzoo.info("zzz")


def test_unknown_override_is_a_type_error_naming_it():
    with pytest.raises(TypeError, match="'num_output'"):
        fusionzoo.create("matmul", num_output=3)
    with pytest.raises(TypeError, match="'fusion'"):
        fusionzoo.create("early", fusion="sum")


def test_registering_a_duplicate_name_is_an_error(scratch_registry):
    with pytest.raises(ValueError, match="'matmul' is already registered"):
        fusionzoo.register_model("matmul")(lambda: nn.Linear(1, 1))


def test_third_party_factory_registers_and_builds_with_overrides(scratch_registry):
    @fusionzoo.register_model(reproduces="nothing")
    def tiny_mlp(width: int = 4, num_outputs: int = 9) -> nn.Module:
        """A third-party model."""
        return nn.Sequential(nn.Linear(width, num_outputs))

    assert "tiny_mlp" in fusionzoo.list_models()
    model = fusionzoo.create("tiny_mlp", width=7)
    assert model[0].in_features == 7
    assert fusionzoo.model_config(model) == registry.ModelConfig("tiny_mlp", {"width": 7, "num_outputs": 9})
    info = fusionzoo.info("tiny_mlp")
    assert (info.num_params, info.description, info.reproduces) == (4 * 9 + 9, "A third-party model.", "nothing")
    with pytest.raises(TypeError, match="'depth'"):
        fusionzoo.create("tiny_mlp", depth=2)


def test_factory_with_var_keywords_records_every_option(scratch_registry):
    @fusionzoo.register_model("kw_model")
    def factory(width: int = 2, **extra) -> nn.Module:
        return nn.Linear(width, extra.get("out", 1))

    model = fusionzoo.create("kw_model", out=3)
    assert fusionzoo.model_config(model).options == {"width": 2, "out": 3}
    rebuilt = fusionzoo.model_config(model).build()
    assert rebuilt.out_features == 3


def test_options_that_are_not_json_serialisable_are_refused(scratch_registry):
    fusionzoo.register_model("takes_anything")(lambda thing=None: nn.Identity())
    with pytest.raises(TypeError, match="JSON"):
        fusionzoo.create("takes_anything", thing=object())


def test_model_config_of_a_hand_built_model_explains_how_to_fix_it():
    with pytest.raises(ValueError, match="register_model"):
        fusionzoo.model_config(nn.Linear(2, 2))


def test_model_config_json_round_trip_and_bad_json():
    config = fusionzoo.model_config(fusionzoo.create("concat", num_outputs=3))
    assert registry.ModelConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="not a fusionzoo model config"):
        registry.ModelConfig.from_json('{"weights": 1}')


def test_a_resolved_config_has_every_current_option_with_its_default():
    config = fusionzoo.model_config(fusionzoo.create("early", num_outputs=3))
    old = registry.ModelConfig("early", {k: v for k, v in config.options.items() if k != "input_norm"})
    assert old != config and old.resolved() == config
    assert old.resolved().options["input_norm"] is False and old.resolved().options["num_outputs"] == 3
    with pytest.raises(TypeError, match="retired"):
        registry.ModelConfig("early", {"retired": 1}).resolved()
    with pytest.raises(KeyError, match="no_such_net"):
        registry.ModelConfig("no_such_net").resolved()


def test_info_builds_nothing_on_a_real_device():
    before = torch.empty(0).device
    assert fusionzoo.info("late").num_params == 26_260_847
    assert torch.empty(0).device == before


def test_factories_cannot_take_the_names_create_reserves(scratch_registry):
    with pytest.raises(ValueError, match="reserved"):
        fusionzoo.register_model("takes_checkpoint")(lambda checkpoint=None: nn.Identity())


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"num_outputs": 9.0}, "num_outputs expects an integer (e.g. 9), got 9.0"),
        ({"image_size": True}, "image_size expects an integer"),
        ({"widths": "abc"}, 'widths expects a list of integers (e.g. [25, 50, 100]), got "abc"'),
        ({"hidden": [8, "a"]}, 'hidden expects a list of integers (e.g. [1000, 100]), got [8, "a"]'),
        ({"feature_norm": 1}, "feature_norm expects a boolean (e.g. false), got 1"),
        ({"fusion": 3}, "fusion expects a string"),
    ],
)
def test_an_override_of_the_wrong_type_is_refused_naming_model_option_value_and_type(overrides, message):
    with pytest.raises(TypeError, match=re.escape(f"model 'matmul': {message}")):
        fusionzoo.create("matmul", **overrides)


def test_overrides_of_the_defaults_types_pass_lists_for_tuples_and_anything_for_a_none_default():
    model = fusionzoo.create("matmul", widths=[4, 6, 8], hidden=(12,), image_size=16, fusion_options={"heads": 2}, fusion="attention")
    assert fusionzoo.model_config(model).options["widths"] == [4, 6, 8]
