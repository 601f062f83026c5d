"""``head_dropout``: off by default (the course's heads, outputs and parameter counts unchanged),
active only while training, no weights of its own and none renamed, stored in the config."""

from __future__ import annotations

import pytest
import torch

import fusionzoo
from fusionzoo.registry import model_config

SIZE = 16
TINY = {"image_size": SIZE, "widths": (4, 8), "hidden": (32, 16)}


def pair(name: str, p: float):
    torch.manual_seed(0)
    plain = fusionzoo.create(name, **TINY)
    torch.manual_seed(0)
    return plain, fusionzoo.create(name, **TINY, head_dropout=p)


@pytest.mark.parametrize("name", ["rgb", "early", "late", "matmul", "bilinear"])
def test_head_dropout_adds_no_weights_renames_none_and_changes_nothing_in_eval(name):
    plain, dropped = pair(name, 0.5)
    assert plain.state_dict().keys() == dropped.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(plain.state_dict().values(), dropped.state_dict().values()))
    x = torch.rand(3, 4, SIZE, SIZE)
    assert torch.equal(plain.eval()(x, x), dropped.eval()(x, x))
    dropped.train()
    torch.manual_seed(1)
    first = dropped(x, x)
    assert not torch.equal(first, plain(x, x))  # while training, units are dropped
    torch.manual_seed(1)
    assert torch.equal(first, dropped(x, x))  # from torch's RNG, which the training state saves


def test_the_default_is_the_course_head_and_the_config_and_info_carry_the_option():
    assert fusionzoo.info("matmul").defaults["head_dropout"] == 0.0
    assert fusionzoo.info("matmul").num_params == 6_616_659
    assert not any(isinstance(m, torch.nn.Dropout) for m in fusionzoo.create("matmul", **TINY).modules())
    model = fusionzoo.create("late", **TINY, head_dropout=0.25)
    assert model_config(model).options["head_dropout"] == 0.25
    assert sum(isinstance(m, torch.nn.Dropout) for m in model.modules()) == 2 * 2 + 1  # both branches' heads, the fusion's


def test_a_checkpoint_keeps_it_and_weights_load_across(tmp_path):
    plain, dropped = pair("matmul", 0.3)
    path = fusionzoo.save(dropped, tmp_path / "dropped.safetensors")
    again = fusionzoo.load(path)
    assert model_config(again).options["head_dropout"] == 0.3
    report = fusionzoo.load_weights(plain, path)  # into a head without it: the same names
    assert not report.missing and not report.unexpected


@pytest.mark.parametrize("bad", [-0.1, 1.0])
def test_a_probability_outside_zero_to_one_is_refused(bad):
    with pytest.raises(ValueError, match="head_dropout must be a probability in"):
        fusionzoo.create("matmul", **TINY, head_dropout=bad)
