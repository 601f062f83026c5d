"""fusionzoo: a model zoo of RGB + LiDAR fusion networks, from the NVIDIA DLI multimodal lab."""

from __future__ import annotations

from . import models as _models  # noqa: F401  (registers the built-in models)
from ._deprecated import renamed
from ._version import __version__
from .devices import resolve_device
from .errors import CheckpointError, DatasetError, FusionZooError, NonFiniteLossError, RunInUseError, ShapeError
from .factory import create
from .inference import predict
from .models import ConvNet, EarlyFusionNet, FusionModel, IntermediateFusionNet, LateFusionNet, SingleModalityNet
from .nn import ConvEncoder, Fusion, MLPHead, create_fusion, list_fusions, register_fusion
from .registry import ModelConfig, ModelInfo, info, list_models, model_config, register_model
from .sim import SceneConfig, generate_scenes
from .training import EpochRecord, Evaluation, History, evaluate, fit
from .weights import (
    LoadReport,
    convert_course_state_dict,
    freeze,
    load,
    load_branch,
    load_matching,
    load_weights,
    param_groups,
    save,
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
    "Fusion",
    "FusionModel",
    "FusionZooError",
    "History",
    "IntermediateFusionNet",
    "LateFusionNet",
    "LoadReport",
    "MLPHead",
    "ModelConfig",
    "ModelInfo",
    "NonFiniteLossError",
    "RunInUseError",
    "SceneConfig",
    "ShapeError",
    "SingleModalityNet",
    "__version__",
    "convert_course_state_dict",
    "create",
    "create_fusion",
    "evaluate",
    "fit",
    "freeze",
    "generate_scenes",
    "info",
    "list_fusions",
    "list_models",
    "load",
    "load_branch",
    "load_matching",
    "load_weights",
    "model_config",
    "param_groups",
    "predict",
    "register_fusion",
    "register_model",
    "resolve_device",
    "save",
    "unfreeze",
]

__getattr__ = renamed(__name__, {
    "convert_seed_state_dict": ("fusionzoo.convert_course_state_dict", lambda: convert_course_state_dict),
})
