"""The model families: the course's networks as compositions of one encoder, fusion operators and
one head, with the course's sizes (``nn.course.COURSE``) as their defaults.

Every model is called the same way, ``model(rgb, xyza)`` with ``rgb`` of shape
``(B, rgb_channels, S, S)`` and ``xyza`` of shape ``(B, lidar_channels, S, S)``, and returns
``(B, num_outputs)``. Every model names its parts (``parts()``) so fine-tuning can address them.

An absent sensor is passed as ``None``: the model fills that input by its declared policy,
``missing_fill`` (see ``FusionModel``), instead of refusing the call; so a robot whose camera fails
still gets the LiDAR's answer, and modality-dropout training (``fit(..., modality_dropout=p)``)
teaches the model the very input it will see then.

``head_dropout`` (every family, default 0: the course's heads) puts dropout after each hidden layer
of the model's MLP heads while training; it adds no weights and leaves their names as they are.
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
_MODALITY_OF = {arg: modality for modality, arg in _ARGS.items()}


def _fill_values(channels: dict[str, int], values: dict[str, Sequence[float]] | None) -> dict[str, tuple[float, ...]]:
    """Each read modality's per-channel fill for an absent input: ``values``' where given, zeros
    elsewhere; ``ShapeError`` naming ``missing_fill`` for an unknown modality or a wrong length."""
    values = dict(values or {})
    unknown = sorted(set(values) - set(channels))
    if unknown:
        raise ShapeError(f"missing_fill: no input {unknown} in this model, which reads {sorted(channels)}; "
                         "key the values by modality, e.g. {'rgb': [0.5, 0.5, 0.5, 1.0]}")
    fill = {}
    for modality, count in channels.items():
        given = values.get(modality)
        if given is not None and len(given) != count:
            raise ShapeError(f"missing_fill[{modality!r}]: expected {count} per-channel values, got {len(given)}")
        fill[modality] = tuple(float(v) for v in given) if given is not None else (0.0,) * count
    return fill


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
        head_dropout: float = 0.0,
    ):
        super().__init__()
        self.encoder = ConvEncoder(in_channels, widths, kernel_size)
        self.head = MLPHead(math.prod(self.encoder.output_shape(image_size)), hidden, num_outputs, head_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


class FusionModel(nn.Module):
    """Common surface of the zoo's models: input checks, declared input shapes and named parts.

    Missing inputs: an input the model reads may be ``None`` (the sensor is absent) as long as the
    other is given; it is then replaced by ``fill_missing``'s constant map, ``(B, C, S, S)`` with
    channel ``c`` equal to ``missing_fill[modality][c]``. The policy, ``missing_policy``, is
    ``"zeros"`` by default and ``"recorded"`` where the model's config records per-channel values
    (the ``missing_fill`` option, e.g. the training set's means from
    ``fusionzoo.training.input_means``), so a checkpoint carries its policy with it.
    """

    def __init__(self, channels: dict[str, int], image_size: int, num_outputs: int,
                 missing_fill: dict[str, Sequence[float]] | None = None):
        super().__init__()
        if image_size < 1:
            raise ShapeError(f"image_size must be positive, got {image_size}")
        if num_outputs < 1:
            raise ShapeError(f"num_outputs must be positive, got {num_outputs}")
        self.channels = dict(channels)
        self.image_size = image_size
        self.num_outputs = num_outputs
        self.missing_fill = _fill_values(self.channels, missing_fill)
        self.missing_policy = "zeros" if not missing_fill else "recorded"

    _fill_option = True  # whether the model's factory takes ``missing_fill``, so its config can record it

    def set_missing_fill(self, values: dict[str, Sequence[float]] | None) -> None:
        """Record per-channel fill values for absent inputs (``None``: back to zeros), e.g. the
        training means from ``fusionzoo.training.input_means``. The recorded config changes with
        it, so a saved checkpoint keeps the policy. Models without the ``missing_fill`` option (the
        single-modality baselines) keep zeros and raise ``ShapeError``."""
        if not self._fill_option:
            raise ShapeError(f"values: {type(self).__name__} has no missing_fill option; its policy is fixed at zeros")
        self.missing_fill = _fill_values(self.channels, values)
        self.missing_policy = "zeros" if not values else "recorded"
        config = getattr(self, CONFIG_ATTR, None)
        if isinstance(config, ModelConfig):
            stored = None if not values else {m: [float(v) for v in vs] for m, vs in values.items()}
            setattr(self, CONFIG_ATTR, ModelConfig(config.name, {**config.options, "missing_fill": stored}))

    def fill_missing(self, arg: str, batch: int, *, device: torch.device | str | None = None,
                     dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """The input this model reads in place of an absent ``arg`` (``"rgb"`` or ``"xyza"``) for
        ``batch`` samples: ``(batch, C, S, S)``, channel ``c`` constant at ``missing_fill[m][c]``."""
        modality = _MODALITY_OF.get(arg)
        if modality not in self.channels:
            raise ShapeError(f"arg: {type(self).__name__} reads {', '.join(self.input_shapes)}, not {arg!r}")
        # Made on the host and sent without waiting: built on the device from host values, it would
        # make the host wait for the device at every training step of modality dropout.
        values = torch.tensor(self.missing_fill[modality], dtype=dtype).to(device, non_blocking=True)
        return values.view(1, -1, 1, 1).repeat(batch, 1, self.image_size, self.image_size)

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities this model reads, in ``forward``'s argument order."""
        return tuple(self.channels)

    @property
    def input_shapes(self) -> dict[str, tuple[int, int, int]]:
        """Per-sample shape of each ``forward`` argument this model reads."""
        return {_ARGS[m]: (c, self.image_size, self.image_size) for m, c in self.channels.items()}

    def _inputs(self, rgb: torch.Tensor | None, xyza: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """The inputs this model reads, by argument name, checked against the declared shapes, an
        absent (``None``) one replaced by ``fill_missing``; ``ShapeError`` when neither is given."""
        given = {"rgb": rgb, "xyza": xyza}
        present = next((x for x in given.values() if x is not None), None)
        if present is None:
            raise ShapeError(f"rgb, xyza: {type(self).__name__} got None for both inputs; give at least one "
                             "(an absent sensor is filled by the model's missing_fill policy, not both)")
        inputs = {}
        for arg, shape in self.input_shapes.items():
            x = given[arg]
            if x is None:
                x = self.fill_missing(arg, len(present), device=present.device, dtype=present.dtype)
            elif x.dim() != 4 or tuple(x.shape[1:]) != shape:
                raise ShapeError(f"{arg}: expected a tensor of shape (B, {', '.join(map(str, shape))}), got {tuple(x.shape)}")
            inputs[arg] = x
        return inputs

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

    @property
    def input_layers(self) -> dict[str, tuple[str, int, int]]:
        """Each modality's input convolution: ``{modality: (state_dict name, start, stop)}``, the
        layer's input channels ``[start, stop)`` being that modality's, e.g. ``{"rgb":
        ("encoders.rgb.layers.0", 0, 4), ...}``; early fusion's one convolution reads rgb's channels
        then lidar's. Loading weights with other input channels adapts these (``fusionzoo.weights.adapt``)."""
        parts, names = self.parts(), {id(m): n for n, m in self.named_modules()}
        layers, offset = {}, 0
        for modality, count in self.channels.items():
            own = modality in parts  # a part that sees this modality only; else the shared encoder
            conv = next((m for m in (parts[modality] if own else parts["encoders"]).modules() if isinstance(m, nn.Conv2d)), None)
            start = 0 if own else offset
            if conv is not None:
                layers[modality] = (names[id(conv)], start, start + count)
            offset += count
        return layers

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
    """The course's single-modality baseline ``Net(4)`` on one input; the other input is ignored.

    Missing input: its own input may be ``None`` when the other is given (it then reads zeros,
    policy ``"zeros"``, fixed: it has no ``missing_fill`` option); its answer is then a constant.
    """

    _fill_option = False

    def __init__(
        self,
        modality: str,
        channels: int = COURSE.channels,
        widths: Sequence[int] = COURSE.widths,
        kernel_size: int = COURSE.kernel_size,
        hidden: Sequence[int] = COURSE.hidden,
        num_outputs: int = COURSE.num_outputs,
        image_size: int = COURSE.image_size,
        head_dropout: float = 0.0,
    ):
        if modality not in MODALITIES:
            raise ShapeError(f"modality must be one of {MODALITIES}, got {modality!r}")
        super().__init__({modality: channels}, image_size, num_outputs)
        self.modality = modality
        self.net = ConvNet(channels, image_size, widths, kernel_size, hidden, num_outputs, head_dropout)

    def forward(self, rgb: torch.Tensor | None = None, xyza: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(rgb, xyza)

    def features(self, rgb: torch.Tensor | None = None, xyza: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        encoded = self.net.encoder(self._inputs(rgb, xyza)[_ARGS[self.modality]])
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

    Missing input: ``None`` for either input reads as the constant map ``missing_fill`` (zeros by
    default) before the concatenation, and so before ``input_norm``.
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
        missing_fill: dict[str, Sequence[float]] | None = None,
        head_dropout: float = 0.0,
    ):
        super().__init__({"rgb": rgb_channels, "lidar": lidar_channels}, image_size, num_outputs, missing_fill)
        self.fusion = create_fusion("concat", list(self.input_shapes.values()))
        channels = self.fusion.out_shape[0]
        self.input_norm = nn.BatchNorm2d(channels) if input_norm else None
        self.net = ConvNet(channels, image_size, widths, kernel_size, hidden, num_outputs, head_dropout)

    def features(self, rgb: torch.Tensor | None, xyza: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """Only ``"fused"``: the modalities meet at the input, so no features are one modality's."""
        inputs = self._inputs(rgb, xyza)
        rgb, xyza = inputs["rgb"], inputs["xyza"]
        fused = self.fusion(rgb, xyza)
        return {"fused": self.net.encoder(fused if self.input_norm is None else self.input_norm(fused))}

    def get_head(self) -> MLPHead:
        return self.net.head

    def parts(self) -> dict[str, nn.Module]:
        fusion = self.fusion if self.input_norm is None else nn.ModuleList([self.fusion, self.input_norm])
        return {"encoders": self.net.encoder, "fusion": fusion, "head": self.net.head}


class LateFusionNet(FusionModel):
    """Output-level fusion: two full single-modality ``ConvNet``s, their outputs fused by a small MLP.

    Missing input: ``None`` for either input feeds that branch the constant map ``missing_fill``
    (zeros by default); its branch's prediction then is a constant the fusion MLP weighs.

    ``head_dropout`` applies to every MLP head: the two branches' and the fusion MLP.
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
        fusion: str = "concat",
        fusion_hidden: Sequence[int] | None = None,
        branch_outputs: int | None = None,
        missing_fill: dict[str, Sequence[float]] | None = None,
        head_dropout: float = 0.0,
    ):
        super().__init__({"rgb": rgb_channels, "lidar": lidar_channels}, image_size, num_outputs, missing_fill)
        # Each branch predicts the targets itself, as in the course; reset_head keeps them when the
        # model's own outputs change.
        self.branch_outputs = num_outputs if branch_outputs is None else branch_outputs
        self.branches = nn.ModuleDict({
            m: ConvNet(c, image_size, widths, kernel_size, hidden, self.branch_outputs, head_dropout)
            for m, c in self.channels.items()
        })
        self.fusion = create_fusion(fusion, [(self.branch_outputs,)] * len(self.branches))
        # The course's late head is 18 -> 90 -> 9: ten hidden units per output.
        self.fusion_hidden = tuple(fusion_hidden) if fusion_hidden is not None else (10 * num_outputs,)
        self.head = MLPHead(math.prod(self.fusion.out_shape), self.fusion_hidden, num_outputs, head_dropout)

    def features(self, rgb: torch.Tensor | None, xyza: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """``"rgb"`` and ``"lidar"``: each branch's own predictions ``(B, branch_outputs)``;
        ``"fused"``: the two fused, ``(B, 2 branch_outputs)`` for ``concat``."""
        inputs = self._inputs(rgb, xyza)
        camera, lidar = self.branches["rgb"](inputs["rgb"]), self.branches["lidar"](inputs["xyza"])
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

    Missing input: ``None`` for either input feeds that encoder the constant map ``missing_fill``
    (zeros by default); the operator then fuses the other modality's map with that encoder's
    response to a blank input.
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
        missing_fill: dict[str, Sequence[float]] | None = None,
        head_dropout: float = 0.0,
    ):
        super().__init__({"rgb": rgb_channels, "lidar": lidar_channels}, image_size, num_outputs, missing_fill)
        self.encoders = nn.ModuleDict({m: ConvEncoder(c, widths, kernel_size) for m, c in self.channels.items()})
        self.lidar_transpose = lidar_transpose
        shapes = {m: e.output_shape(image_size) for m, e in self.encoders.items()}
        self.feature_norms = nn.ModuleDict({m: nn.GroupNorm(1, shape[0]) for m, shape in shapes.items()}) if feature_norm else None
        if lidar_transpose:
            channels, height, width = shapes["lidar"]
            shapes["lidar"] = (channels, width, height)
        self.fusion = create_fusion(fusion, list(shapes.values()), **(fusion_options or {}))
        self.head = MLPHead(math.prod(self.fusion.out_shape), hidden, num_outputs, head_dropout)

    def features(self, rgb: torch.Tensor | None, xyza: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """``"rgb"`` and ``"lidar"``: each encoder's map as the operator receives it (normalised and
        transposed where the options say); ``"fused"``: the operator's output, ``(B, *fusion.out_shape)``."""
        inputs = self._inputs(rgb, xyza)
        camera, lidar = self.encoders["rgb"](inputs["rgb"]), self.encoders["lidar"](inputs["xyza"])
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
