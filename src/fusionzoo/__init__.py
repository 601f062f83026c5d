"""fusionzoo: a model zoo of RGB + LiDAR fusion networks, from the NVIDIA DLI multimodal lab."""

from __future__ import annotations

from . import models as _models  # noqa: F401  (registers the built-in models)
from .encoders import ConvEncoder
from .finetune import LoadReport, freeze, load_branch, load_matching, load_weights, param_groups, unfreeze
from .checkpoint import load, save
from .devices import resolve_device
from .errors import CheckpointError, DatasetError, FusionZooError, NonFiniteLossError, RunInUseError, ShapeError
from .fusion import Fusion, create_fusion, list_fusions, register_fusion
from .heads import MLPHead
from .inference import predict
from .models import ConvNet, EarlyFusionNet, FusionModel, IntermediateFusionNet, LateFusionNet, SingleModalityNet
from .registry import ModelConfig, ModelInfo, create, info, list_models, model_config, register_model
from .seed import convert_seed_state_dict
from .train import EpochRecord, Evaluation, History, evaluate, fit

__version__ = "0.1.0"

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
    "ShapeError",
    "SingleModalityNet",
    "__version__",
    "convert_seed_state_dict",
    "create",
    "create_fusion",
    "evaluate",
    "fit",
    "freeze",
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
