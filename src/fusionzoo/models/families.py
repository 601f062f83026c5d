"""The model families: the course's networks as compositions of one encoder, fusion operators and
one head, with the course's sizes (``nn.course.COURSE``) as their defaults.

Every model is called the same way, ``model(rgb, xyza)`` with ``rgb`` of shape
``(B, rgb_channels, S, S)`` and ``xyza`` of shape ``(B, lidar_channels, S, S)``, and returns
``(B, num_outputs)``. Every model names its parts (``parts()``) so fine-tuning can address them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from ..errors import ShapeError
from ..nn.course import COURSE
from ..nn.encoders import ConvEncoder
from ..nn.fusion import create_fusion
from ..nn.heads import MLPHead
from ..registry import CONFIG_ATTR, ModelConfig

MODALITIES = ("rgb", "lidar")
_ARGS = {"rgb": "rgb", "lidar": "xyza"}


class ConvNet(nn.Module):
    """The course's ``Net``: a ``ConvEncoder`` then an ``MLPHead``; ``(B, C, S, S) -> (B, num_outputs)``."""

    def __init__(
        self,
        in_channels: int,
        image_size: int,
        widths: Sequence[int],
        kernel_size: int,
        hidden: Sequence[int],
        num_outputs: int,
    ):
        super().__init__()
        self.encoder = ConvEncoder(in_channels, widths, kernel_size)
        self.head = MLPHead(math.prod(self.encoder.output_shape(image_size)), hidden, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


class FusionModel(nn.Module):
    """Common surface of the zoo's models: input checks, declared input shapes and named parts."""

    def __init__(self, channels: dict[str, int], image_size: int, num_outputs: int):
        super().__init__()
        if image_size < 1:
            raise ShapeError(f"image_size must be positive, got {image_size}")
        if num_outputs < 1:
            raise ShapeError(f"num_outputs must be positive, got {num_outputs}")
        self.channels = dict(channels)
        self.image_size = image_size
        self.num_outputs = num_outputs

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities this model reads, in ``forward``'s argument order."""
        return tuple(self.channels)

    @property
    def input_shapes(self) -> dict[str, tuple[int, int, int]]:
        """Per-sample shape of each ``forward`` argument this model reads."""
        return {_ARGS[m]: (c, self.image_size, self.image_size) for m, c in self.channels.items()}

    def _check(self, rgb: torch.Tensor | None, xyza: torch.Tensor | None) -> None:
        given = {"rgb": rgb, "xyza": xyza}
        for arg, shape in self.input_shapes.items():
            x = given[arg]
            if x is None:
                raise ShapeError(f"{type(self).__name__} needs the {arg!r} input, got None")
            if x.dim() != 4 or tuple(x.shape[1:]) != shape:
                raise ShapeError(f"{arg}: expected a tensor of shape (B, {', '.join(map(str, shape))}), got {tuple(x.shape)}")

    def parts(self) -> dict[str, nn.Module]:
        """Named sub-modules for freezing and parameter groups.

        ``rgb``/``lidar``: everything that sees only that modality (its encoder, or its whole branch);
        ``encoders``: the conv encoders; ``fusion``: the fusion operator; ``head``: the final MLP.
        """
        raise NotImplementedError

    # The feature and head surface, in timm's names: model(x) == forward_head(forward_features(x)).

    def features(self, rgb: torch.Tensor | None, xyza: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Each stage's representation: ``"fused"`` (what the head reads) and, where the model has
        them, ``"rgb"`` and ``"lidar"`` (each modality's own features, as the fusion receives them)."""
        raise NotImplementedError

    def forward_features(self, rgb: torch.Tensor | None, xyza: torch.Tensor | None) -> torch.Tensor:
        """The fused representation before the head, ``(B, *feature_shape)`` (a map, or a vector for
        late fusion): for probes, other heads, or a frozen-feature cache."""
        return self.features(rgb, xyza)["fused"]

    def get_head(self) -> MLPHead:
        """The regression head: the MLP that maps ``forward_features`` to the outputs."""
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """The head on features ``x`` from ``forward_features``: ``(B, num_outputs)``, or with
        ``pre_logits`` the activations its output layer reads."""
        head = self.get_head()
        # A plain call when it can be: a head a user has replaced or wrapped keeps working.
        return head(x, pre_logits=True) if pre_logits else head(x)

    def forward(self, rgb: torch.Tensor | None, xyza: torch.Tensor | None) -> torch.Tensor:
        return self.forward_head(self.forward_features(rgb, xyza))

    @property
    def head_output_layer(self) -> str:
        """The name of the head's output layer in ``state_dict`` (without ``.weight``/``.bias``): the
        layer that depends on the number of outputs, which fine-tuning to new targets drops."""
        output = self.get_head().output_layer
        return next(name for name, module in self.named_modules() if module is output)

    def reset_head(self, num_outputs: int) -> None:
        """Give the model ``num_outputs`` outputs: the head's output layer is replaced by a freshly
        initialised one; every other weight stays. The recorded config changes with it, so the
        model still saves, loads and resumes as what it now is."""
        self.get_head().reset(num_outputs)
        options = self._head_options(num_outputs)
        self.num_outputs = num_outputs
        config = getattr(self, CONFIG_ATTR, None)
        if isinstance(config, ModelConfig):
            setattr(self, CONFIG_ATTR, ModelConfig(config.name, {**config.options, **options}))

    def _head_options(self, num_outputs: int) -> dict[str, object]:
        """The options that rebuild this architecture with ``num_outputs`` outputs."""
        return {"num_outputs": num_outputs}


class SingleModalityNet(FusionModel):
    """The course's single-modality baseline ``Net(4)`` on one input; the other input is ignored."""

    def __init__(
        self,
        modality: str,
        channels: int = COURSE.channels,
        widths: Sequence[int] = COURSE.widths,
        kernel_size: int = COURSE.kernel_size,
        hidden: Sequence[int] = COURSE.hidden,
        num_outputs: int = COURSE.num_outputs,
        image_size: int = COURSE.image_size,
    ):
        if modality not in MODALITIES:
            raise ShapeError(f"modality must be one of {MODALITIES}, got {modality!r}")
        super().__init__({modality: channels}, image_size, num_outputs)
        self.modality = modality
        self.net = ConvNet(channels, image_size, widths, kernel_size, hidden, num_outputs)

    def forward(self, rgb: torch.Tensor | None = None, xyza: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(rgb, xyza)

    def features(self, rgb: torch.Tensor | None = None, xyza: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        self._check(rgb, xyza)
        encoded = self.net.encoder(rgb if self.modality == "rgb" else xyza)
        return {self.modality: encoded, "fused": encoded}

    def get_head(self) -> MLPHead:
        return self.net.head

    def parts(self) -> dict[str, nn.Module]:
        # The modality's part is everything that sees only that modality: here, the whole net.
        return {self.modality: self.net, "encoders": self.net.encoder, "head": self.net.head}


class EarlyFusionNet(FusionModel):
    """Input-level fusion: the two inputs' channels are concatenated and fed to one ``ConvNet``.

    ``input_norm`` puts a ``BatchNorm2d`` over the concatenated channels before the first
    convolution (part of the ``fusion`` part; adds ``2 (rgb_channels + lidar_channels)`` weights),
    because one convolution then sees XYZA in scene units beside RGBA in [0, 1]; the course's model
    has none. Batch statistics, not per-sample ones as in ``feature_norm``: standardising each
    sample would divide out the distances the targets measure. docs/leaderboard.md measures it.
    """

    def __init__(
        self,
        rgb_channels: int = COURSE.channels,
        lidar_channels: int = COURSE.channels,
        widths: Sequence[int] = COURSE.widths,
        kernel_size: int = COURSE.kernel_size,
        hidden: Sequence[int] = COURSE.hidden,
        num_outputs: int = COURSE.num_outputs,
        image_size: int = COURSE.image_size,
        input_norm: bool = False,
    ):
        super().__init__({"rgb": rgb_channels, "lidar": lidar_channels}, image_size, num_outputs)
        self.fusion = create_fusion("concat", list(self.input_shapes.values()))
        channels = self.fusion.out_shape[0]
        self.input_norm = nn.BatchNorm2d(channels) if input_norm else None
        self.net = ConvNet(channels, image_size, widths, kernel_size, hidden, num_outputs)

    def features(self, rgb: torch.Tensor, xyza: torch.Tensor) -> dict[str, torch.Tensor]:
        """Only ``"fused"``: the modalities meet at the input, so no features are one modality's."""
        self._check(rgb, xyza)
        fused = self.fusion(rgb, xyza)
        return {"fused": self.net.encoder(fused if self.input_norm is None else self.input_norm(fused))}

    def get_head(self) -> MLPHead:
        return self.net.head

    def parts(self) -> dict[str, nn.Module]:
        fusion = self.fusion if self.input_norm is None else nn.ModuleList([self.fusion, self.input_norm])
        return {"encoders": self.net.encoder, "fusion": fusion, "head": self.net.head}


class LateFusionNet(FusionModel):
    """Output-level fusion: two full single-modality ``ConvNet``s, their outputs fused by a small MLP."""

    def __init__(
        self,
        rgb_channels: int = COURSE.channels,
        lidar_channels: int = COURSE.channels,
        widths: Sequence[int] = COURSE.widths,
        kernel_size: int = COURSE.kernel_size,
        hidden: Sequence[int] = COURSE.hidden,
        num_outputs: int = COURSE.num_outputs,
        image_size: int = COURSE.image_size,
        fusion: str = "concat",
        fusion_hidden: Sequence[int] | None = None,
        branch_outputs: int | None = None,
    ):
        super().__init__({"rgb": rgb_channels, "lidar": lidar_channels}, image_size, num_outputs)
        # Each branch predicts the targets itself, as in the course; reset_head keeps them when the
        # model's own outputs change.
        self.branch_outputs = num_outputs if branch_outputs is None else branch_outputs
        self.branches = nn.ModuleDict(
            {m: ConvNet(c, image_size, widths, kernel_size, hidden, self.branch_outputs) for m, c in self.channels.items()}
        )
        self.fusion = create_fusion(fusion, [(self.branch_outputs,)] * len(self.branches))
        # The course's late head is 18 -> 90 -> 9: ten hidden units per output.
        self.fusion_hidden = tuple(fusion_hidden) if fusion_hidden is not None else (10 * num_outputs,)
        self.head = MLPHead(math.prod(self.fusion.out_shape), self.fusion_hidden, num_outputs)

    def features(self, rgb: torch.Tensor, xyza: torch.Tensor) -> dict[str, torch.Tensor]:
        """``"rgb"`` and ``"lidar"``: each branch's own predictions ``(B, branch_outputs)``;
        ``"fused"``: the two fused, ``(B, 2 branch_outputs)`` for ``concat``."""
        self._check(rgb, xyza)
        camera, lidar = self.branches["rgb"](rgb), self.branches["lidar"](xyza)
        return {"rgb": camera, "lidar": lidar, "fused": self.fusion(camera, lidar)}

    def get_head(self) -> MLPHead:
        return self.head

    def _head_options(self, num_outputs: int) -> dict[str, object]:
        return {"num_outputs": num_outputs, "branch_outputs": self.branch_outputs, "fusion_hidden": list(self.fusion_hidden)}

    def parts(self) -> dict[str, nn.Module]:
        encoders = nn.ModuleList([b.encoder for b in self.branches.values()])
        return {**self.branches, "encoders": encoders, "branches": self.branches, "fusion": self.fusion, "head": self.head}


class IntermediateFusionNet(FusionModel):
    """Feature-level fusion: one ``ConvEncoder`` per modality, a fusion operator, an ``MLPHead``.

    The head's input size is computed from the operator's declared output shape.

    ``lidar_transpose`` swaps the LiDAR feature map's H and W before fusion. In the course's layout
    the LiDAR grid's rows are azimuth (horizontal) and its columns zenith (vertical), the other way
    round from an image's, so operators that pair the maps position by position need it to pair a
    camera pixel with the LiDAR cell in the same direction. The course's models do not transpose.

    ``feature_norm`` normalises each encoder's output before fusion with ``GroupNorm(1, C)``: every
    sample's map to zero mean and unit variance, then a learned per-channel scale and shift (part
    of the ``fusion`` part), so that neither modality's feature scale (XYZA is in scene units, RGBA
    in [0, 1]) saturates a learned operator's gates. The course's models have none;
    docs/leaderboard.md measures what the option changes.
    """

    def __init__(
        self,
        rgb_channels: int = COURSE.channels,
        lidar_channels: int = COURSE.channels,
        widths: Sequence[int] = COURSE.branch_widths,
        kernel_size: int = COURSE.kernel_size,
        hidden: Sequence[int] = COURSE.hidden,
        num_outputs: int = COURSE.num_outputs,
        image_size: int = COURSE.image_size,
        fusion: str = "matmul",
        fusion_options: dict | None = None,
        lidar_transpose: bool = False,
        feature_norm: bool = False,
    ):
        super().__init__({"rgb": rgb_channels, "lidar": lidar_channels}, image_size, num_outputs)
        self.encoders = nn.ModuleDict({m: ConvEncoder(c, widths, kernel_size) for m, c in self.channels.items()})
        self.lidar_transpose = lidar_transpose
        shapes = {m: e.output_shape(image_size) for m, e in self.encoders.items()}
        self.feature_norms = nn.ModuleDict({m: nn.GroupNorm(1, shape[0]) for m, shape in shapes.items()}) if feature_norm else None
        if lidar_transpose:
            channels, height, width = shapes["lidar"]
            shapes["lidar"] = (channels, width, height)
        self.fusion = create_fusion(fusion, list(shapes.values()), **(fusion_options or {}))
        self.head = MLPHead(math.prod(self.fusion.out_shape), hidden, num_outputs)

    def features(self, rgb: torch.Tensor, xyza: torch.Tensor) -> dict[str, torch.Tensor]:
        """``"rgb"`` and ``"lidar"``: each encoder's map as the operator receives it (normalised and
        transposed where the options say); ``"fused"``: the operator's output, ``(B, *fusion.out_shape)``."""
        self._check(rgb, xyza)
        camera, lidar = self.encoders["rgb"](rgb), self.encoders["lidar"](xyza)
        if self.feature_norms is not None:
            camera, lidar = self.feature_norms["rgb"](camera), self.feature_norms["lidar"](lidar)
        if self.lidar_transpose:
            lidar = lidar.transpose(-1, -2)
        return {"rgb": camera, "lidar": lidar, "fused": self.fusion(camera, lidar)}

    def get_head(self) -> MLPHead:
        return self.head

    def parts(self) -> dict[str, nn.Module]:
        fusion = self.fusion if self.feature_norms is None else nn.ModuleList([self.feature_norms, self.fusion])
        return {**self.encoders, "encoders": self.encoders, "fusion": fusion, "head": self.head}
