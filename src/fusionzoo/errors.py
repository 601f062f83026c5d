"""Exception types: one per kind of failure, so callers can catch what they can handle."""

from __future__ import annotations


class FusionZooError(Exception):
    """Base class of every error fusionzoo raises on purpose."""


class DatasetError(FusionZooError, ValueError):
    """A dataset folder, file or cache is missing, malformed or inconsistent."""


class CheckpointError(FusionZooError, ValueError):
    """A checkpoint file is missing, truncated, foreign, or does not fit the model."""


class RunInUseError(FusionZooError, RuntimeError):
    """Another process is training in the run folder this one was given."""


class ShapeError(FusionZooError, ValueError):
    """Tensors or declared shapes that a module cannot take."""


class ExportError(FusionZooError, RuntimeError):
    """A model cannot be written to a deployment format (ONNX, ExportedProgram), or the tools are missing."""


class NonFiniteLossError(FusionZooError, FloatingPointError):
    """Training produced a NaN or infinite loss; ``epoch`` and ``step`` say where it first did."""

    def __init__(self, message: str, epoch: int, step: int | None):
        super().__init__(message)
        self.epoch = epoch
        self.step = step


class MissingWeightsError(FusionZooError, FileNotFoundError):
    """Catalogued weights that are not built in this machine's cache yet; the message names the
    command that builds them (``fusionzoo pretrain MODEL.TAG``)."""
