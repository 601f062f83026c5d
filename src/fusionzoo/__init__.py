"""fusionzoo: a model zoo of RGB + LiDAR fusion networks, from the NVIDIA DLI multimodal lab."""

from __future__ import annotations

from . import models as _models  # noqa: F401  (registers the built-in models)
from ._deprecated import renamed
from ._version import __version__
from .data import from_arrays
from .deploy import OnnxModel, export
from .devices import resolve_device
from .errors import (
    CheckpointError,
    DatasetError,
    ExportError,
    FusionZooError,
    MissingWeightsError,
    NonFiniteLossError,
    RunInUseError,
    ShapeError,
)
from .factory import create
from .inference import predict
from .models import ConvNet, EarlyFusionNet, FusionModel, IntermediateFusionNet, LateFusionNet, SingleModalityNet
from .nn import ConvEncoder, Fusion, MLPHead, create_fusion, list_fusions, register_fusion
from .registry import ModelConfig, ModelInfo, info, list_models, model_config, register_model
from .robustness import corrupt, list_corruptions
from .sim import SceneConfig, generate_scenes
from .training import EpochRecord, Evaluation, History, evaluate, fit, input_means
from .viz import animate_predictions, plot_contact_sheet, plot_predictions, plot_sample, plot_sensor_predictions
from .weights import (
    LoadReport,
    ModelRecord,
    convert_course_state_dict,
    freeze,
    get_weights,
    list_weights,
    load,
    load_branch,
    load_matching,
    load_weights,
    param_groups,
    push_to_hub,
    read_record,
    save,
    save_pretrained,
    unfreeze,
)

__all__ = [
    "CheckpointError",
    "ConvEncoder",
    "ConvNet",
    "DatasetError",
    "EarlyFusionNet",
    "EpochRecord",
    "Evaluation",
    "ExportError",
    "Fusion",
    "FusionModel",
    "FusionZooError",
    "History",
    "IntermediateFusionNet",
    "LateFusionNet",
    "LoadReport",
    "MLPHead",
    "MissingWeightsError",
    "ModelRecord",
    "ModelConfig",
    "ModelInfo",
    "NonFiniteLossError",
    "OnnxModel",
    "RunInUseError",
    "SceneConfig",
    "ShapeError",
    "SingleModalityNet",
    "__version__",
    "animate_predictions",
    "convert_course_state_dict",
    "corrupt",
    "create",
    "create_fusion",
    "evaluate",
    "export",
    "fit",
    "freeze",
    "from_arrays",
    "generate_scenes",
    "get_weights",
    "info",
    "input_means",
    "list_corruptions",
    "list_fusions",
    "list_models",
    "list_weights",
    "load",
    "load_branch",
    "load_matching",
    "load_weights",
    "model_config",
    "param_groups",
    "plot_contact_sheet",
    "plot_predictions",
    "plot_sample",
    "plot_sensor_predictions",
    "predict",
    "push_to_hub",
    "read_record",
    "register_fusion",
    "register_model",
    "resolve_device",
    "save",
    "save_pretrained",
    "unfreeze",
]

__getattr__ = renamed(__name__, {
    "convert_seed_state_dict": ("fusionzoo.convert_course_state_dict", lambda: convert_course_state_dict),
})
