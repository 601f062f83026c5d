"""Export: every registered model written as ONNX gives PyTorch's outputs under onnxruntime, on random
and on real inputs, at any batch size; what cannot be exported raises ExportError."""

import sys

import pytest
import torch
from torch import nn

import fusionzoo
from fusionzoo.data import ReplicatorDataset
from fusionzoo.deploy import TOLERANCE, OnnxModel, export, max_difference
from fusionzoo.errors import ExportError
from fusionzoo.sim import generate_scenes

TINY = {"widths": (4, 6, 8), "hidden": (12,), "image_size": 16}


@pytest.fixture(scope="module")
def real_inputs(tmp_path_factory):
    root = generate_scenes(tmp_path_factory.mktemp("export") / "d", samples=40, image_size=16, lidar_grid=(16, 16),
                           progress=False)
    rgb, xyza, _ = ReplicatorDataset(root, image_size=16, cache=False).batch(torch.arange(5))
    return {"rgb": rgb, "xyza": xyza}


@pytest.mark.parametrize("name", fusionzoo.list_models())
def test_onnx_export_matches_pytorch_on_random_and_real_inputs(name, real_inputs, tmp_path):
    torch.manual_seed(0)
    model = fusionzoo.create(name, **TINY)
    onnx = OnnxModel(export(model, tmp_path / f"{name}.onnx"))
    reads = set(model.input_shapes)
    assert set(onnx.input_names) == reads
    # Batches of 1, 3 and 5: none is the batch of 2 it was traced with, so the batch axis is dynamic.
    assert max_difference(model, onnx, batch=1) < TOLERANCE
    assert max_difference(model, onnx, batch=3) < TOLERANCE
    assert max_difference(model, onnx, {k: v for k, v in real_inputs.items() if k in reads}) < TOLERANCE
    assert model.training  # the export left the model's mode as it was


def test_an_exported_program_runs_without_the_models_code(tmp_path):
    model = fusionzoo.create("late", **TINY).eval()
    path = export(model, tmp_path / "late.pt2")
    program = torch.export.load(path).module()
    rgb, xyza = torch.rand(4, 4, 16, 16), torch.rand(4, 4, 16, 16)
    assert torch.allclose(program(rgb=rgb, xyza=xyza), fusionzoo.predict(model, rgb, xyza), atol=TOLERANCE)


def test_a_checkpoint_path_exports_the_model_it_holds(tmp_path):
    model = fusionzoo.create("rgb", **TINY)
    fusionzoo.save(model, tmp_path / "rgb.safetensors")
    onnx = OnnxModel(fusionzoo.export(tmp_path / "rgb.safetensors", tmp_path / "rgb.onnx"))
    assert onnx.input_names == ("rgb",) and max_difference(model, onnx) < TOLERANCE


def test_the_format_comes_from_the_extension_or_is_named(tmp_path):
    model = fusionzoo.create("rgb", **TINY)
    with pytest.raises(ValueError, match=r"model\.bin.*\.onnx \(onnx\), \.pt2 \(exported-program\)"):
        export(model, tmp_path / "model.bin")
    with pytest.raises(KeyError, match="unknown export format 'tflite'.*exported-program, onnx"):
        export(model, tmp_path / "model.bin", format="tflite")


class DataDependent(nn.Module):
    """A forward whose path depends on the values it reads: torch.export cannot trace it."""

    input_shapes = {"rgb": (4, 16, 16)}

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4 * 16 * 16, 9)

    def forward(self, rgb=None, xyza=None):
        out = self.linear(rgb.flatten(1))
        return out if out.sum().item() > 0 else -out


def test_what_cannot_be_traced_raises_export_error_naming_the_model(tmp_path):
    with pytest.raises(ExportError, match="DataDependent: torch.export cannot trace it for onnx"):
        export(DataDependent(), tmp_path / "model.onnx")
    assert not list(tmp_path.iterdir())


def test_a_module_without_declared_inputs_raises_export_error(tmp_path):
    with pytest.raises(ExportError, match="Linear: declares no input_shapes"):
        export(nn.Linear(3, 9), tmp_path / "model.onnx")


def test_missing_onnx_tools_name_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)
    with pytest.raises(ExportError, match=r'pip install "fusionzoo\[export\]"'):
        export(fusionzoo.create("rgb", **TINY), tmp_path / "rgb.onnx")
