"""Missing-modality inference: every model takes ``None`` for an absent input and reads its declared
fill instead (zeros by default, recorded per-channel values when its config holds them)."""

from __future__ import annotations

import pytest
import torch

import fusionzoo
from fusionzoo.errors import ShapeError

SIZE = 16
TINY = dict(widths=(4, 6, 8), hidden=(12,), image_size=SIZE)
FUSING = [n for n in fusionzoo.list_models() if n not in ("rgb", "lidar")]


def tiny(name: str, **options):
    torch.manual_seed(0)
    return fusionzoo.create(name, **TINY, **options).eval()


def inputs(count: int = 3):
    g = torch.Generator().manual_seed(1)
    return torch.rand(count, 4, SIZE, SIZE, generator=g), torch.randn(count, 4, SIZE, SIZE, generator=g) * 20


@pytest.mark.parametrize("name", fusionzoo.list_models())
def test_a_missing_input_gives_what_the_zero_fill_made_by_hand_gives(name):
    model = tiny(name)
    rgb, xyza = inputs()
    assert model.missing_policy == "zeros"
    with torch.no_grad():
        assert torch.equal(model(rgb, None), model(rgb, torch.zeros_like(xyza)))
        assert torch.equal(model(None, xyza), model(torch.zeros_like(rgb), xyza))
        features = model.forward_features(None, xyza)
        assert torch.equal(model.forward_head(features), model(None, xyza))


@pytest.mark.parametrize("name", fusionzoo.list_models())
def test_both_inputs_missing_is_refused(name):
    with pytest.raises(ShapeError, match="both"):
        tiny(name)(None, None)


@pytest.mark.parametrize("name", ["early", "late", "concat", "gated"])
def test_a_recorded_fill_is_used_and_survives_a_checkpoint(name, tmp_path):
    fill = {"rgb": [0.5, 0.4, 0.3, 1.0], "lidar": [1.0, 20.0, -2.0, 0.1]}
    model = tiny(name, missing_fill=fill)
    rgb, xyza = inputs()
    by_hand = {m: torch.tensor(v).view(1, 4, 1, 1).expand(3, 4, SIZE, SIZE) for m, v in fill.items()}
    with torch.no_grad():
        assert torch.equal(model(None, xyza), model(by_hand["rgb"], xyza))
        assert torch.equal(model(rgb, None), model(rgb, by_hand["lidar"]))
    assert model.missing_policy == "recorded"
    loaded = fusionzoo.load(fusionzoo.save(model, tmp_path / "m.safetensors")).eval()
    assert loaded.missing_fill == model.missing_fill and loaded.missing_policy == "recorded"
    with torch.no_grad():
        assert torch.equal(loaded(None, xyza), model(None, xyza))


def test_set_missing_fill_records_the_policy_in_the_config(tmp_path):
    model = tiny("matmul")
    model.set_missing_fill({"lidar": [0.0, 25.0, 0.0, 0.05]})
    loaded = fusionzoo.load(fusionzoo.save(model, tmp_path / "m.safetensors"))
    assert loaded.missing_fill["lidar"] == (0.0, 25.0, 0.0, 0.05) and loaded.missing_fill["rgb"] == (0.0,) * 4
    with pytest.raises(ShapeError, match="no missing_fill option"):
        tiny("rgb").set_missing_fill({"rgb": [0.5] * 4})
    with pytest.raises(ShapeError, match="missing_fill"):
        tiny("matmul", missing_fill={"camera": [0.0] * 4})
    with pytest.raises(ShapeError, match=r"missing_fill\['rgb'\]"):
        tiny("matmul", missing_fill={"rgb": [0.0] * 3})


def test_input_means_are_the_per_channel_means_of_the_training_inputs():
    from fusionzoo.data import TensorSamples
    from fusionzoo.training import input_means

    rgb, xyza = inputs(7)
    means = input_means(TensorSamples(rgb, xyza, torch.zeros(7, 9)), batch_size=3)
    torch.testing.assert_close(torch.tensor(means["rgb"]), rgb.double().mean((0, 2, 3)).float())
    torch.testing.assert_close(torch.tensor(means["lidar"]), xyza.double().mean((0, 2, 3)).float())
    assert tiny("matmul", missing_fill=means).missing_policy == "recorded"


@pytest.mark.parametrize("name", ["rgb", "lidar", "matmul", "late"])
def test_predict_follows_the_models_policy_for_a_missing_input(name):
    model = tiny(name)
    rgb, xyza = inputs()
    torch.testing.assert_close(fusionzoo.predict(model, rgb, None), fusionzoo.predict(model, rgb, torch.zeros_like(xyza)),
                               rtol=0, atol=0)
    torch.testing.assert_close(fusionzoo.predict(model, None, xyza[0]), fusionzoo.predict(model, torch.zeros_like(rgb[0]), xyza[0]),
                               rtol=0, atol=0)
    with pytest.raises(ShapeError, match="both"):
        fusionzoo.predict(model, None, None)
