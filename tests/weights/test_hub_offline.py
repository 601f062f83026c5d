"""``hf-hub:owner/name`` read through huggingface_hub's own functions from a local hub cache, offline:
no test ever touches the network."""

from __future__ import annotations

import pytest
import torch

import fusionzoo
from fusionzoo import MissingWeightsError

pytest.importorskip("huggingface_hub")

TINY = {"widths": (4, 6, 8), "hidden": (12,), "image_size": 16}
REVISION = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A hub cache holding ``owner/tiny-matmul`` at ``REVISION`` (refs/main points at it), in the
    layout huggingface_hub writes, with the hub set offline."""
    torch.manual_seed(0)
    model = fusionzoo.create("matmul", **TINY)
    repo = tmp_path / "hub" / "models--owner--tiny-matmul"
    fusionzoo.save_pretrained(model, repo / "snapshots" / REVISION)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(REVISION)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    return model


def test_create_reads_hf_hub_weights_from_the_local_cache_offline(hub_cache):
    for loaded in (fusionzoo.create("matmul", weights="hf-hub:owner/tiny-matmul"), fusionzoo.load("hf-hub:owner/tiny-matmul")):
        for key, value in hub_cache.state_dict().items():
            assert torch.equal(loaded.state_dict()[key], value), key


def test_a_hub_model_missing_from_the_offline_cache_says_how_to_get_it(hub_cache):
    with pytest.raises(MissingWeightsError, match="not in the local hub cache .* unset HF_HUB_OFFLINE"):
        fusionzoo.create("matmul", weights="hf-hub:owner/absent")


def test_a_malformed_hub_name_says_the_form(hub_cache):
    with pytest.raises(ValueError, match="hf-hub:OWNER/NAME"):
        fusionzoo.load("hf-hub:just-a-name")


def test_without_huggingface_hub_the_error_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_hub(name, *args, **kwargs):
        if name == "huggingface_hub":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_hub)
    with pytest.raises(ImportError, match=r'pip install "fusionzoo\[hub\]"'):
        fusionzoo.push_to_hub(fusionzoo.create("matmul", **TINY), "owner/name")
