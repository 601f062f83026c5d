"""fusionzoo: a model zoo of RGB + LiDAR fusion networks, from the NVIDIA DLI multimodal lab."""

from __future__ import annotations

from . import models as _models  # noqa: F401  (registers the built-in models)
from .encoders import ConvEncoder
from .finetune import LoadReport, freeze, load_branch, load_matching, load_weights, param_groups, unfreeze
from .errors import CheckpointError, DatasetError, FusionZooError, ShapeError
from .fusion import Fusion, create_fusion, list_fusions, register_fusion
from .heads import MLPHead
from .models import ConvNet, EarlyFusionNet, FusionModel, IntermediateFusionNet, LateFusionNet, SingleModalityNet
from .registry import ModelConfig, ModelInfo, create, info, list_models, model_config, register_model
from .seed import convert_seed_state_dict

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConvEncoder",
    "ConvNet",
    "DatasetError",
    "EarlyFusionNet",
    "Fusion",
    "FusionModel",
    "FusionZooError",
    "IntermediateFusionNet",
    "LateFusionNet",
    "LoadReport",
    "MLPHead",
    "ModelConfig",
    "ModelInfo",
    "ShapeError",
    "SingleModalityNet",
    "__version__",
    "convert_seed_state_dict",
    "create",
    "create_fusion",
    "freeze",
    "info",
    "list_fusions",
    "list_models",
    "load_branch",
    "load_matching",
    "load_weights",
    "model_config",
    "param_groups",
    "register_fusion",
    "register_model",
    "unfreeze",
]
