"""Samples held as whole tensors: the unit the trainer consumes.

Batches come from indexing whole tensors, never from a per-sample collate, so one batch costs a
few tensor ops on whichever device the samples live.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import torch

from ..errors import DatasetError
from .cache import MappedCache
from .xyza import DEFAULT_HIT_THRESHOLD, BeamTrig, trig_to_xyza

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def _as_index(indices: Sequence[int] | torch.Tensor, size: int) -> torch.Tensor:
    index = torch.as_tensor(indices, dtype=torch.long).reshape(-1).cpu()
    if index.numel() and (int(index.min()) < -size or int(index.max()) >= size):
        raise IndexError(f"indices must lie in [0, {size}), got range [{int(index.min())}, {int(index.max())}]")
    return index % max(size, 1)


def _rows(index: torch.Tensor, count: int, *tensors: torch.Tensor) -> list[torch.Tensor]:
    """The rows at ``index`` of each of ``tensors`` (``count`` rows each)."""
    # index_select rather than tensor[index]: advanced indexing of uint8 rows is several times slower.
    try:
        return [tensor.index_select(0, index) for tensor in tensors]
    except (IndexError, RuntimeError) as err:
        raise IndexError(f"batch index must hold integers in [0, {count}): {err}") from None


# The tensors that are views of the cache's mapping when the samples are mapped.
_MAPPED = ("rgb", "depth", "targets")


class Samples:
    """RGB images, LiDAR depth grids and targets of ``N`` samples, as tensors.

    - ``rgb``: ``(N, C, S, S)`` uint8 (0..255), scaled to float [0, 1] per batch (4x less memory);
    - ``depth``: ``(N, H, W)`` float32, converted to XYZA per batch with ``azimuth`` (H,) and
      ``zenith`` (W,);
    - ``targets``: ``(N, T)`` float32 (T = 9 for three object centres).

    ``samples[i]`` gives ``(rgb (C,S,S) float, xyza (4,H,W), target (T,))``; ``samples.batch(idx)``
    the same batched, on the samples' device.

    ``source``: where the samples came from, as JSON-ready data (``{"dataset": {...}, "split":
    {...}}``; ``None`` when unknown). The trainer copies it into the recipe a checkpoint records;
    ``subset`` and ``to`` keep it (a subset says how many rows it took).

    ``mapped``: the ``MappedCache`` whose mapping the tensors are views of (``None`` when they are
    in memory). Every read of rows (``batch``, ``subset``, ``to``) then checks first and last that
    the file was not truncated or rewritten meanwhile, and raises ``DatasetError`` if it was.
    ``subset`` and a move to another device copy the rows they read, so their samples are in memory.
    """

    def __init__(
        self,
        rgb: torch.Tensor,
        depth: torch.Tensor,
        targets: torch.Tensor,
        azimuth: torch.Tensor,
        zenith: torch.Tensor,
        hit_threshold: float = DEFAULT_HIT_THRESHOLD,
        source: dict[str, Any] | None = None,
        mapped: MappedCache | None = None,
    ):
        if rgb.dim() != 4 or rgb.dtype != torch.uint8:
            raise DatasetError(f"rgb must be a (N, C, S, S) uint8 tensor, got {tuple(rgb.shape)} {rgb.dtype}")
        if depth.dim() != 3:
            raise DatasetError(f"depth must be (N, len(azimuth), len(zenith)), got {tuple(depth.shape)}")
        if targets.dim() != 2:
            raise DatasetError(f"targets must be (N, T), got {tuple(targets.shape)}")
        if not (len(rgb) == len(depth) == len(targets)):
            raise DatasetError(f"sample counts differ: rgb {len(rgb)}, depth {len(depth)}, targets {len(targets)}")
        self.rgb = rgb
        self.depth = depth.float()
        self.targets = targets.float()
        self.hit_threshold = float(hit_threshold)
        self.source = source
        self.mapped = mapped
        self._set_beams(azimuth, zenith)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        if self.mapped is not None:  # views of a mapping travel as where they lie in it (see MappedCache)
            for name in _MAPPED:
                state[name] = self.mapped.locate(state[name])
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        if state.get("mapped") is not None:
            for name in _MAPPED:
                state[name] = state["mapped"].view(state[name])
        self.__dict__.update(state)

    def _set_beams(self, azimuth: torch.Tensor, zenith: torch.Tensor) -> None:
        if self.depth.shape[1:] != (azimuth.numel(), zenith.numel()):
            raise DatasetError(
                f"depth must be (N, len(azimuth), len(zenith)) = (N, {azimuth.numel()}, {zenith.numel()}), "
                f"got {tuple(self.depth.shape)}"
            )
        self._azimuth = azimuth.float().to(self.depth.device)
        self._zenith = zenith.float().to(self.depth.device)
        # Every batch reuses the beams' sines and cosines, so they are derived once per assignment.
        self._trig = BeamTrig.of(self._azimuth, self._zenith)

    @property
    def azimuth(self) -> torch.Tensor:
        """The beams' azimuths ``(H,)``; assign a new tensor to change them, do not edit in place."""
        return self._azimuth

    @azimuth.setter
    def azimuth(self, value: torch.Tensor) -> None:
        self._set_beams(value, self._zenith)

    @property
    def zenith(self) -> torch.Tensor:
        """The beams' zenith angles ``(W,)``; assign a new tensor to change them, do not edit in place."""
        return self._zenith

    @zenith.setter
    def zenith(self, value: torch.Tensor) -> None:
        self._set_beams(self._azimuth, value)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> Batch:
        try:
            i = operator.index(i)
        except TypeError:
            raise TypeError(
                f"sample index must be an integer, got {type(i).__name__}; "
                "for several samples use .batch(index) or .subset(indices)"
            ) from None
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample index {i} out of range for {len(self)} samples")
        rgb, xyza, target = self.batch(torch.tensor([i % len(self)]))
        return rgb[0], xyza[0], target[0]

    @property
    def device(self) -> torch.device:
        return self.targets.device

    def batch(self, index: torch.Tensor) -> Batch:
        """``(rgb, xyza, targets)`` for the samples at ``index`` (integers in ``[0, N)``), on the
        samples' device."""
        rgb, depth, targets = self._read(lambda: _rows(index.to(self.device), len(self), self.rgb, self.depth,
                                                       self.targets))
        return torch.div(rgb, 255.0), trig_to_xyza(depth, self._trig, self.hit_threshold), targets

    def subset(self, indices: Sequence[int] | torch.Tensor) -> Samples:
        """The samples at ``indices``, in that order (a copy of those rows only)."""
        index = _as_index(indices, len(self)).to(self.device)
        rgb, depth, targets = self._read(lambda: _rows(index, len(self), self.rgb, self.depth, self.targets))
        source = None if self.source is None else {**self.source, "subset": {"of": len(self), "rows": len(index)}}
        return Samples(rgb, depth, targets, self.azimuth, self.zenith, self.hit_threshold, source)

    def to(self, device: torch.device | str) -> Samples:
        """These samples on ``device`` (moved once; batches are then built there)."""
        if torch.device(device) == self.device:
            return self
        rgb, depth, targets = self._read(lambda: [t.to(device) for t in (self.rgb, self.depth, self.targets)])
        return Samples(rgb, depth, targets, self.azimuth, self.zenith, self.hit_threshold, self.source)

    def _read(self, read):
        """``read()``, between two checks that a mapped cache file is unchanged: the first keeps a
        truncated file from being read at all, the second catches a file rewritten during the read."""
        if self.mapped is None:
            return read()
        self.mapped.check()
        rows = read()
        self.mapped.check()
        return rows

    def nbytes(self) -> int:
        """Bytes held by the sample tensors."""
        return sum(t.numel() * t.element_size() for t in (self.rgb, self.depth, self.targets))


class TensorSamples:
    """Samples given as ready float tensors: the trainer's view of any ``(rgb, xyza, target)`` dataset.

    - ``rgb``: ``(N, C, S, S)`` float; ``xyza``: ``(N, 4, H, W)`` float; ``targets``: ``(N, T)`` float.

    Same batch surface as ``Samples`` (``batch``, ``to``, ``len``, ``device``), without the uint8
    and depth compression: use ``Samples`` when the data are images and depth grids.
    """

    def __init__(self, rgb: torch.Tensor, xyza: torch.Tensor, targets: torch.Tensor):
        if rgb.dim() != 4 or xyza.dim() != 4 or targets.dim() != 2:
            raise DatasetError(
                f"expected rgb (N, C, S, S), xyza (N, C, H, W) and targets (N, T), got "
                f"{tuple(rgb.shape)}, {tuple(xyza.shape)} and {tuple(targets.shape)}"
            )
        if not (len(rgb) == len(xyza) == len(targets)):
            raise DatasetError(f"sample counts differ: rgb {len(rgb)}, xyza {len(xyza)}, targets {len(targets)}")
        self.rgb = rgb.float()
        self.xyza = xyza.float()
        self.targets = targets.float()

    @classmethod
    def from_dataset(cls, dataset: torch.utils.data.Dataset) -> TensorSamples:
        """Stack every ``(rgb, xyza, target)`` item of a map-style ``dataset`` once, into tensors."""
        try:
            count = len(dataset)  # type: ignore[arg-type]
        except TypeError:
            raise DatasetError(f"{type(dataset).__name__} has no len(); the trainer needs a map-style dataset") from None
        if count == 0:
            raise DatasetError(f"{type(dataset).__name__} is empty")
        columns: tuple[list[torch.Tensor], ...] = ([], [], [])
        for i in range(count):
            item = dataset[i]
            if not (isinstance(item, (tuple, list)) and len(item) == 3):
                raise DatasetError(f"{type(dataset).__name__}[{i}] must be (rgb, xyza, target), got {type(item).__name__}")
            for column, value in zip(columns, item):
                column.append(torch.as_tensor(value))
        try:
            rgb, xyza, targets = (torch.stack(column) for column in columns)
        except RuntimeError as err:
            raise DatasetError(f"{type(dataset).__name__}: items differ in shape ({err})") from None
        return cls(rgb, xyza, targets.reshape(count, -1))

    def __len__(self) -> int:
        return len(self.targets)

    @property
    def device(self) -> torch.device:
        return self.targets.device

    def batch(self, index: torch.Tensor) -> Batch:
        """``(rgb, xyza, targets)`` for the samples at ``index`` (integers in ``[0, N)``), on the
        samples' device."""
        rgb, xyza, targets = _rows(index.to(self.device), len(self), self.rgb, self.xyza, self.targets)
        return rgb, xyza, targets

    def to(self, device: torch.device | str) -> TensorSamples:
        """These samples on ``device`` (moved once; batches are then built there)."""
        if torch.device(device) == self.device:
            return self
        return TensorSamples(self.rgb.to(device), self.xyza.to(device), self.targets.to(device))

    def nbytes(self) -> int:
        """Bytes held by the sample tensors."""
        return sum(t.numel() * t.element_size() for t in (self.rgb, self.xyza, self.targets))


class BatchLoader:
    """Iterates ``(rgb, xyza, targets)`` batches of ``samples`` by tensor indexing.

    The defaults reproduce the course's training DataLoader (batch 32, shuffled, ``drop_last``);
    pass ``shuffle=False`` for validation. A ``generator`` makes the shuffle reproducible.
    """

    def __init__(
        self,
        samples: Samples | TensorSamples,
        batch_size: int = 32,
        shuffle: bool = True,
        drop_last: bool = True,
        generator: torch.Generator | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.samples = samples
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = generator

    def __len__(self) -> int:
        n, b = len(self.samples), self.batch_size
        return n // b if self.drop_last else -(-n // b)

    def indices(self) -> list[torch.Tensor]:
        """This pass's index tensor of each batch, on the samples' device (draws a new permutation when
        shuffling)."""
        n = len(self.samples)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else torch.arange(n)
        # One copy of the whole order per pass, so no batch waits on a host-to-device index copy.
        order = order.to(self.samples.device)
        return list(order[: len(self) * self.batch_size].split(self.batch_size)) if self.drop_last else list(order.split(self.batch_size))

    def __iter__(self):
        for index in self.indices():
            yield self.samples.batch(index)
