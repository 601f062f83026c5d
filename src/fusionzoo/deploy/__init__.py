"""Deployment: a model written as an ONNX file or a ``torch.export`` program, and the ONNX file run
by onnxruntime."""

from __future__ import annotations

from .exporter import FORMATS, example_inputs, export
from .runtime import TOLERANCE, OnnxModel, max_difference

__all__ = ["FORMATS", "TOLERANCE", "OnnxModel", "example_inputs", "export", "max_difference"]
