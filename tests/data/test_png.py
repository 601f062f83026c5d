"""PNG decoding: TorchCodec where it loads, torchvision's decoder otherwise, the same pixels and no
deprecation warning from fusionzoo's own calls."""

from __future__ import annotations

import io
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fusionzoo.data import ReplicatorDataset, png

sys.path.insert(0, str(Path(__file__).parent))
from test_dataset import write_dataset, write_png_16bit_rgb  # noqa: E402


def encoded(array: np.ndarray, mode: str) -> torch.Tensor:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8)


@pytest.fixture
def torchvision_only(monkeypatch):
    """The reader as it runs where TorchCodec is missing."""
    monkeypatch.setattr(png, "_decoder", lambda: ("torchvision", png._with_torchvision))


@pytest.mark.parametrize("mode,channels", [("RGBA", 4), ("RGB", 3), ("L", 1), ("LA", 2)])
def test_both_decoders_give_the_pixels_pil_wrote(mode, channels):
    array = np.random.default_rng(0).integers(0, 256, (9, 9, channels), dtype=np.uint8).squeeze()
    expected = torch.from_numpy(array.reshape(9, 9, channels)).permute(2, 0, 1)
    with png.quiet():  # the reader's own calls decode in this block
        assert torch.equal(png._with_torchvision(encoded(array, mode)), expected)
        assert torch.equal(png.decode(encoded(array, mode)), expected)


def test_a_16_bit_png_decodes_to_uint16_either_way(tmp_path):
    deep = np.random.default_rng(1).integers(0, 65536, (6, 6, 3), dtype=np.uint16)
    write_png_16bit_rgb(tmp_path / "deep.png", deep)
    data = torch.frombuffer(bytearray((tmp_path / "deep.png").read_bytes()), dtype=torch.uint8)
    with png.quiet():
        fallback = png._with_torchvision(data)
        ours = png.decode(data)
    assert ours.dtype == fallback.dtype == torch.uint16
    assert torch.equal(ours.int(), fallback.int())


def test_torchcodec_decodes_where_it_is_installed():
    pytest.importorskip("torchcodec.decoders")
    assert png.decoder() == "torchcodec"


def test_the_fallback_reads_a_dataset_like_torchcodec_and_warns_nothing(tmp_path, monkeypatch):
    write_dataset(tmp_path, n=4, png=12)
    ours = ReplicatorDataset(tmp_path, image_size=8, cache=False)
    monkeypatch.setattr(png, "_decoder", lambda: ("torchvision", png._with_torchvision))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning, torchvision's deprecation included, fails the test
        fallback = ReplicatorDataset(tmp_path, image_size=8, cache=False)
    assert png.decoder() == "torchvision"
    assert torch.equal(ours.rgb, fallback.rgb)


def test_quiet_silences_torchvisions_deprecation_and_nothing_else(torchvision_only):
    data = encoded(np.zeros((2, 2, 4), dtype=np.uint8), "RGBA")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        png._with_torchvision(data)
        with png.quiet():
            png._with_torchvision(data)
            warnings.warn("some other deprecation", DeprecationWarning)
    messages = [str(w.message) for w in caught]
    assert sum("capabilities of TorchVision are deprecated" in m for m in messages) == 1
    assert "some other deprecation" in messages
