"""PNG decoding for the reader: TorchCodec's decoder where it is installed and loads, torchvision's
otherwise.

torchvision 0.29 deprecated its image codecs in favour of TorchCodec's. TorchCodec is an optional
extra (``pip install "fusionzoo[codec]"``) because its releases are built for one torch release
each; where it is missing, or built for another torch and fails to load, the reader falls back to
torchvision's decoder, and ``quiet()`` keeps its deprecation warning from reaching the user (it is
fusionzoo's call, not theirs). Both give the same pixels (``tests/data/test_png.py``);
``benchmarks/dataset_load.py`` measures their speed side by side.
"""

from __future__ import annotations

import contextlib
import functools
import struct
import warnings
import zlib
from collections.abc import Callable, Iterator

import torch

_TORCHVISION_DEPRECATION = "The image decoding and encoding capabilities of TorchVision are deprecated"


def decode(data: torch.Tensor) -> torch.Tensor:
    """The PNG in ``data`` (a 1-D uint8 tensor of the file's bytes) as ``(C, H, W)``: uint8, or
    uint16 for a 16-bit PNG; channels as stored (grey, grey + alpha, RGB, RGBA). Raises
    ``RuntimeError`` (or ``ValueError``) for a corrupt file."""
    return _decoder()[1](data)


def decoder() -> str:
    """Which library decodes here: ``"torchcodec"`` or ``"torchvision"``."""
    return _decoder()[0]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """A block in which torchvision's decoder does not warn that it is deprecated (nothing else is
    silenced). Enter it in the thread that starts the decoding threads: the filter is process-wide
    while the block runs."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_TORCHVISION_DEPRECATION, category=DeprecationWarning)
        yield


@functools.cache
def _decoder() -> tuple[str, Callable[[torch.Tensor], torch.Tensor]]:
    """TorchCodec's decoder if it imports and decodes a probe image here, else torchvision's;
    chosen on the first decode, so importing fusionzoo never loads either library."""
    try:
        from torchcodec.decoders import decode_png as torchcodec_decode_png

        def with_torchcodec(data: torch.Tensor) -> torch.Tensor:
            # "auto": a 16-bit PNG comes back as uint16, as torchvision gives it; the caller scales it.
            return torchcodec_decode_png(data, mode="UNCHANGED", output_dtype="auto")

        if torch.equal(with_torchcodec(_probe()), torch.tensor([1, 2, 3, 255], dtype=torch.uint8).view(4, 1, 1)):
            return "torchcodec", with_torchcodec
    except Exception:  # noqa: BLE001  (missing, or built for another torch, whose libraries fail to load)
        pass
    return "torchvision", _with_torchvision


def _with_torchvision(data: torch.Tensor) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_png

    return decode_png(data, ImageReadMode.UNCHANGED)


def _probe() -> torch.Tensor:
    """A 1 x 1 RGBA PNG of the pixel (1, 2, 3, 255)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x01\x02\x03\xff"))
    return torch.frombuffer(bytearray(png + chunk(b"IEND", b"")), dtype=torch.uint8)
