"""Running an exported ONNX file with onnxruntime, called like the model it came from."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ExportError, ShapeError
from .exporter import example_inputs


class OnnxModel:
    """An ``.onnx`` file written by ``fusionzoo.export``, run by onnxruntime.

    ``OnnxModel(path)(rgb, xyza)`` takes what the model took (``rgb`` ``(B, C, S, S)``, ``xyza``
    ``(B, 4, H, W)``; tensors or arrays, an input the model does not read may be ``None``) and returns
    ``(B, T)`` float32 on the CPU. ``threads`` sets onnxruntime's intra-op threads (default: its own
    choice); ``providers`` its execution providers (default: the CPU's).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        threads: int | None = None,
        providers: Sequence[str] = ("CPUExecutionProvider",),
    ):
        try:
            import onnxruntime
        except ImportError as error:
            raise ExportError(f"{path}: running an ONNX file needs onnxruntime ({error}); "
                              'pip install "fusionzoo[export]"') from error
        self.path = Path(path)
        options = onnxruntime.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(str(self.path), options, providers=list(providers))
        except Exception as error:  # noqa: BLE001  (onnxruntime raises its own types for a bad file)
            raise ExportError(f"{self.path}: onnxruntime cannot load it ({error}); "
                              "write it again with fusionzoo export") from error
        self.input_names = tuple(i.name for i in self.session.get_inputs())

    def __call__(self, rgb: torch.Tensor | np.ndarray | None = None, xyza: torch.Tensor | np.ndarray | None = None
                 ) -> torch.Tensor:
        given = {"rgb": rgb, "xyza": xyza}
        feeds = {}
        for name in self.input_names:
            x = given.get(name)
            if x is None:
                raise ShapeError(f"{name}: {self.path.name} reads this input; got None")
            if isinstance(x, torch.Tensor):
                x = x.detach().cpu().numpy()
            feeds[name] = np.ascontiguousarray(x, dtype=np.float32)
        (positions,) = self.session.run(None, feeds)
        return torch.from_numpy(positions)

    def __repr__(self) -> str:
        return f"OnnxModel({str(self.path)!r}, inputs={self.input_names})"


# float32 sums in another order (onnxruntime's kernels, fused by its optimiser) differ in the last
# bits; outputs are positions of order 1..10, so 1e-4 is far below anything that matters and far above
# the ~1e-6 that a faithful export shows.
TOLERANCE = 1e-4


def max_difference(
    model: nn.Module, onnx: OnnxModel, inputs: Mapping[str, torch.Tensor] | None = None, *, batch: int = 3
) -> float:
    """The largest absolute difference between ``model``'s outputs (PyTorch, eval mode) and ``onnx``'s.

    On ``inputs`` (``{"rgb": ..., "xyza": ...}``, batched) or, by default, a random batch of ``batch``.
    """
    inputs = dict(inputs) if inputs is not None else example_inputs(model, batch)
    training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            expected = model(**inputs).float().cpu()
    finally:
        model.train(training)
    return float((onnx(**inputs) - expected).abs().max())
