"""Export: a model (or a checkpoint) written as one file that runs without fusionzoo.

Two formats, both traced once by ``torch.export`` with a dynamic batch axis:

- ``"onnx"`` (``.onnx``): an ONNX graph with its weights inside, for onnxruntime, TensorRT and the
  like; inputs ``rgb`` ``(batch, C, S, S)`` and/or ``xyza`` ``(batch, 4, H, W)`` as the model
  reads them, output ``positions`` ``(batch, T)``.
- ``"exported-program"`` (``.pt2``): ``torch.export``'s own file, for PyTorch runtimes without the
  model's Python code (``torch.export.load(path).module()``).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .._files import atomic_path
from .._names import unknown_name
from ..errors import ExportError
from ..registry import model_config
from ..weights import load

FORMATS = {"onnx": ".onnx", "exported-program": ".pt2"}
OUTPUT_NAME = "positions"
BATCH_AXIS = "batch"
# torch.export fixes an axis whose example size is 1 to that constant, so the example batch is 2.
_EXAMPLE_BATCH = 2


def export(
    model: nn.Module | str | os.PathLike[str],
    path: str | os.PathLike[str],
    *,
    format: str | None = None,
) -> Path:
    """Write ``model`` (or the model of a ``.safetensors`` checkpoint) to ``path``; returns the path.

    ``format`` is ``"onnx"`` or ``"exported-program"``; ``None`` reads it from the extension
    (``.onnx``, ``.pt2``). The batch axis is dynamic: the file takes any batch size. The model is
    traced in eval mode (its training flags are restored afterwards), with inputs of the shapes it
    declares (``model.input_shapes``); the file is written atomically.

    Raises ``ExportError`` when the model cannot be traced or converted (the message names the model,
    the format and the tracer's reason), or when the ONNX tools are missing
    (``pip install "fusionzoo[export]"``).
    """
    path = Path(path)
    format = _format(format, path)
    if not isinstance(model, nn.Module):
        model = load(model)
    program = _trace(model, format)
    with atomic_path(path) as temporary:
        if format == "onnx":
            _write_onnx(program, temporary, _name(model))
        else:
            with open(temporary, "wb") as file:  # a file object: torch.export warns of a name not ending in .pt2
                torch.export.save(program, file)
    return path


def _format(format: str | None, path: Path) -> str:
    if format is not None:
        if format not in FORMATS:
            raise unknown_name("export format", format, FORMATS)
        return format
    by_suffix = {suffix: name for name, suffix in FORMATS.items()}
    if path.suffix.lower() not in by_suffix:
        choices = ", ".join(f"{suffix} ({name})" for name, suffix in FORMATS.items())
        raise ValueError(f"{path}: cannot tell the export format from the extension {path.suffix!r}; "
                         f"name the file {choices}, or pass the format")
    return by_suffix[path.suffix.lower()]


def _name(model: nn.Module) -> str:
    try:
        return model_config(model).name
    except ValueError:
        return type(model).__name__


def example_inputs(model: nn.Module, batch: int = _EXAMPLE_BATCH) -> dict[str, torch.Tensor]:
    """Random inputs ``{argument: (batch, *shape)}`` of the shapes ``model`` declares, on its device.

    ``ExportError`` for a module that declares none (only fusionzoo's models, ``FusionModel``, do).
    """
    shapes: dict[str, tuple[int, ...]] | None = getattr(model, "input_shapes", None)
    if not shapes:
        raise ExportError(f"{_name(model)}: declares no input_shapes, so there is nothing to trace it with; "
                          "export a model built by fusionzoo.create() or loaded by fusionzoo.load()")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    return {name: torch.rand(batch, *shape, generator=generator).to(device) for name, shape in shapes.items()}


def _trace(model: nn.Module, format: str) -> torch.export.ExportedProgram:
    """``model`` traced in eval mode by ``torch.export``, the batch axis of every input dynamic."""
    inputs = example_inputs(model)
    batch = torch.export.Dim(BATCH_AXIS)
    training = [m for m in model.modules() if m.training]
    model.eval()
    try:
        return torch.export.export(model, (), inputs, dynamic_shapes={name: {0: batch} for name in inputs})
    except Exception as error:  # noqa: BLE001  (any tracer failure becomes one named error)
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExportError(f"{_name(model)}: torch.export cannot trace it for {format} ({type(error).__name__}: "
                          f"{reason}); its forward must be traceable with a dynamic batch axis") from error
    finally:
        for module in training:
            module.training = True


def _write_onnx(program: torch.export.ExportedProgram, path: Path, name: str) -> None:
    """The ONNX graph of ``program``, weights inside, its batch axis named ``batch``, at ``path``."""
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it; checked here to name the fix)
    except ImportError as error:
        raise ExportError(f"{name}: exporting to ONNX needs the onnx and onnxscript packages ({error}); "
                          'pip install "fusionzoo[export]"') from error
    try:
        onnx_program = torch.onnx.export(program, (), kwargs=None, output_names=[OUTPUT_NAME], dynamo=True,
                                         verbose=False)
    except Exception as error:  # noqa: BLE001
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ExportError(f"{name}: torch.onnx cannot convert it ({type(error).__name__}: {reason})") from error
    proto = onnx_program.model_proto
    # The tracer names the batch axis after an internal symbol (s30, s87, ...); the file says "batch".
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_param = BATCH_AXIS
    onnx.save_model(proto, str(path), save_as_external_data=False)
