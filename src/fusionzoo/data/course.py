"""The course's Replicator dataset layout (``FORMAT.md``), read once into ``Samples`` and cached.

The first open of a folder validates every file, decodes the PNGs (TorchCodec, or torchvision where
it is missing; on a thread pool: decoding releases the GIL) and writes a cache; later opens map or
load the cache instead (``memory``). Every problem with the folder raises ``DatasetError`` naming
the file and what is wrong.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import math
import os
import stat
import struct
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from safetensors import SafetensorError
from torchvision.transforms.v2 import functional as tvf
from tqdm import tqdm

from ..errors import DatasetError
from . import cache as tensor_cache
from . import memory as memory_modes
from . import png
from .samples import BatchLoader, Samples
from .xyza import DEFAULT_HIT_THRESHOLD

logger = logging.getLogger(__name__)

TARGETS_PER_SAMPLE = 9  # red, green, blue cube centres, x y z each
#: The targets' names, in positions.csv's column order (scene units).
TARGET_NAMES = tuple(f"{color}_{axis}" for color in ("red", "green", "blue") for axis in "xyz")
SCENE_FILE = "scene.json"  # the config the built-in generator writes beside its data (fusionzoo.sim)
COURSE_BATCH_SIZE = 32
VALID_SAMPLES = 10 * COURSE_BATCH_SIZE  # the course validates on the last 10 batches
CACHE_FOLDER = ".fusionzoo-cache"
READER_VERSION = 1  # bump when decoding changes, so caches built by older code are rebuilt

MAX_IMAGE_SIDE = 4096  # larger PNGs are refused from their header: 20000 x 20000 would decode to gigabytes
_PNG_HEADER = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR"  # the signature, then the IHDR chunk's length and type
_PNG_COLOR_TYPE_OFFSET = 25  # byte of the IHDR chunk that says grey / RGB / palette / ...
_PNG_PALETTE = 3
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # libpng decodes a file cut here without complaint
_CHANNEL_NAMES = {1: "grey", 2: "grey + alpha", 3: "RGB", 4: "RGBA"}
_MAX_LISTED = 5
_CHUNK = 64  # samples per thread-pool task: few enough tasks that scheduling them costs little


class ReplicatorDataset(Samples):
    """All samples of a folder in the course's layout, as ``Samples`` tensors.

    ``ds[i]`` is ``(rgb (C, S, S) float in [0, 1], xyza (4, H, W), target (9,))`` with
    ``S = image_size``, ``C = channels`` and ``(H, W) = (len(azimuth), len(zenith))``.
    Images are resized like the course's ``Resize(S)`` + ``ToTensor`` (torchvision, antialiased;
    within 1/255 of the course's PIL pipeline for opaque images); with ``channels=4`` an RGB PNG
    gets an opaque alpha channel. ``hit_threshold`` is the depth below which a beam counts as a
    return.

    The cache lives in ``root/.fusionzoo-cache/`` (or ``cache_dir``), the only thing the reader
    ever writes; ``cache=False`` neither reads nor writes it. ``from_cache`` tells which way the
    samples were read. ``progress`` shows a bar while decoding (default: only on a terminal).

    ``memory`` says how the samples are held (``fusionzoo.data.memory``): ``"map"`` reads them
    through a memory map of the cache file, shared by every process of the machine, so a dataset
    larger than memory trains; ``"load"`` copies them into this process's memory; ``"auto"`` (the
    default, or ``$FUSIONZOO_MEMORY``) loads a dataset that fits comfortably and maps any other.
    Both give the same samples bit for bit. ``memory_mode`` tells which way was taken. The open
    that decodes a dataset keeps what it decoded when that fits comfortably in memory; a larger
    dataset is decoded straight into the cache file (after checking that the disk has room for it)
    and mapped. Processes that open a dataset at once (the ranks of a torchrun job) build its cache
    once: the first takes a lock beside it, the others wait and then map or load what it wrote.
    Without a cache (``cache=False``, or a cache folder that cannot be written) the samples are
    decoded into memory.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        image_size: int = 64,
        channels: int = 4,
        hit_threshold: float = DEFAULT_HIT_THRESHOLD,
        cache: bool = True,
        cache_dir: str | os.PathLike[str] | None = None,
        progress: bool | None = None,
        memory: str | None = None,
    ):
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
            raise ValueError(f"image_size must be a positive int, got {image_size!r}")
        if channels not in (3, 4):
            raise ValueError(f"channels must be 3 (RGB) or 4 (RGBA), got {channels!r}")
        if memory == "map" and not cache:
            raise ValueError("memory='map' reads the samples through the cache file, which cache=False turns off; "
                             "pass cache=True, or memory='load'")
        mode = memory_modes.resolve(memory)
        self.root = Path(root)
        self.image_size = image_size
        self.channels = channels
        listing = _Listing.scan(self.root)
        key = tensor_cache.fingerprint(
            listing.stats(), {"reader": READER_VERSION, "image_size": image_size, "channels": channels}
        )
        self.cache_file = _cache_file(self.root, cache_dir, image_size, channels) if cache else None

        opened = self._cached(key, listing.count, mode) if self.cache_file else None
        self.from_cache = opened is not None
        if opened is None and self.cache_file:
            with tensor_cache.build_lock(self.cache_file):
                opened = self._cached(key, listing.count, mode)  # built by the process we waited for
                self.from_cache = opened is not None
                if opened is None:
                    opened = self._build(listing, key, mode, progress)
        elif opened is None:
            opened = _read(listing, image_size, channels, progress), None
        tensors, mapped = opened
        self.memory_mode = "load" if mapped is None else "map"
        # The beam angles are read outside batches (pictures, XYZA of single grids): kept in memory,
        # so no read of them ever meets a cache file changed under the job.
        super().__init__(
            tensors["rgb"], tensors["depth"], tensors["targets"], tensors["azimuth"].clone(), tensors["zenith"].clone(),
            hit_threshold,
            source={"dataset": _provenance(self.root, key, len(tensors["targets"]), image_size, channels)},
            mapped=mapped,
        )

    def _cached(self, key: str, count: int, mode: str
                ) -> tuple[dict[str, torch.Tensor], tensor_cache.MappedCache | None] | None:
        """The cache's tensors, mapped or loaded as ``mode`` says, if it is whole and fits this read."""
        try:
            size = self.cache_file.stat().st_size
        except OSError:
            return None
        mapped = None
        if memory_modes.choose(mode, size) == "map":
            mapped = tensor_cache.open_mapped(self.cache_file, key)
            tensors = None if mapped is None else mapped.tensors
        else:
            tensors = tensor_cache.load(self.cache_file, key)
        if tensors is not None and not _fits(tensors, self.image_size, self.channels, count):
            logger.warning("ignoring cache %s: its tensors do not fit this dataset; rebuilding it", self.cache_file)
            return None
        return None if tensors is None else (tensors, mapped)

    def _build(self, listing: _Listing, key: str, mode: str, progress: bool | None
               ) -> tuple[dict[str, torch.Tensor], tensor_cache.MappedCache | None]:
        """Decode every file and write the cache: in memory when the samples fit comfortably there
        (and keep them), else straight into the cache file (then mapped, or copied for ``load``)."""
        started = time.perf_counter()
        header = _Header(listing, self.image_size, self.channels)
        specs = header.specs()
        nbytes = tensor_cache.file_size(specs, key)
        if memory_modes.fits_comfortably(nbytes):
            tensors = header.decode(progress)
            _log_read(self.root, len(tensors["targets"]), started)
            _write_cache(self.cache_file, tensors, key)
            return tensors, None
        logger.info("%s: decoding %d samples (%.2f GiB) straight into the cache %s, more than fits comfortably in "
                    "memory", self.root, header.count, nbytes / 2**30, self.cache_file)
        try:
            tensor_cache.write(self.cache_file, specs, key, lambda views: header.decode(progress, into=views))
        except OSError as error:
            raise DatasetError(
                f"cache {self.cache_file}: cannot write it ({error}); the {nbytes / 2**30:.2f} GiB of decoded samples "
                "are more than fit comfortably in memory, so they are read through the cache; pass cache_dir= (a "
                "writable folder on a disk with room)"
            ) from error
        _log_read(self.root, header.count, started)
        mapped = tensor_cache.open_mapped(self.cache_file, key)
        if mapped is None:
            raise DatasetError(f"cache {self.cache_file}: changed while it was being opened, right after it was "
                               "written; open the dataset again")
        if mode == "load":
            return {name: tensor.clone() for name, tensor in mapped.tensors.items()}, None
        return mapped.tensors, mapped

    def __repr__(self) -> str:
        return (
            f"ReplicatorDataset({str(self.root)!r}, samples={len(self)}, image_size={self.image_size}, "
            f"channels={self.channels}, lidar={tuple(self.depth.shape[1:])}, from_cache={self.from_cache}, "
            f"memory_mode={self.memory_mode!r})"
        )


def course_splits(source: str | os.PathLike[str] | Samples, **dataset_kwargs) -> tuple[Samples, Samples]:
    """The course's split ``(train, valid)``: the last 320 samples (10 batches of 32) validate.

    ``source`` is a dataset folder (read with ``ReplicatorDataset(source, **dataset_kwargs)``) or
    samples already read. Both splits share the source's tensors (no copy), in file order.
    """
    if isinstance(source, Samples):
        if dataset_kwargs:
            raise TypeError(f"dataset options {sorted(dataset_kwargs)} only apply when source is a folder")
        samples = source
    else:
        samples = ReplicatorDataset(source, **dataset_kwargs)
    needed = VALID_SAMPLES + COURSE_BATCH_SIZE
    if len(samples) < needed:
        raise DatasetError(
            f"the course's split needs at least {needed} samples ({VALID_SAMPLES} to validate and one training "
            f"batch of {COURSE_BATCH_SIZE}); {_describe(source)} has {len(samples)}"
        )
    cut = len(samples) - VALID_SAMPLES
    return _rows(samples, 0, cut, "train"), _rows(samples, cut, len(samples), "valid")


def course_loaders(
    train: Samples, valid: Samples, batch_size: int = COURSE_BATCH_SIZE, generator: torch.Generator | None = None
) -> tuple[BatchLoader, BatchLoader]:
    """Batch loaders with the course's DataLoader settings: train shuffled, both ``drop_last``."""
    return (
        BatchLoader(train, batch_size, shuffle=True, drop_last=True, generator=generator),
        BatchLoader(valid, batch_size, shuffle=False, drop_last=True),
    )


class _FileStat(NamedTuple):
    """What the cache's key takes of a sample file's ``os.stat``."""

    st_size: int
    st_mtime_ns: int

    @classmethod
    def of(cls, stat: os.stat_result) -> _FileStat:
        return cls(stat.st_size, stat.st_mtime_ns)


class _Listing:
    """The files of a dataset folder, checked for presence, with their ``os.stat`` results."""

    FILES = ("positions.csv", "azimuth.npy", "zenith.npy")
    FOLDERS = {"rgb": ".png", "lidar": ".npy"}

    def __init__(self, root: Path, files: dict[str, os.stat_result], folders: dict[str, dict[str, _FileStat]]):
        self.root = root
        self.files = files
        self.folders = folders

    @classmethod
    def scan(cls, root: Path) -> _Listing:
        if not root.exists():
            raise DatasetError(f"dataset folder {root} does not exist")
        if not root.is_dir():
            raise DatasetError(f"dataset folder {root} is not a folder")
        files, folders = {}, {}
        for name in cls.FILES:
            path = root / name
            files[name] = _stat(path, f"a dataset folder holds {', '.join(cls.FILES)}, rgb/ and lidar/")
            if not stat.S_ISREG(files[name].st_mode):
                kind = "a folder" if stat.S_ISDIR(files[name].st_mode) else "not a regular file"
                raise DatasetError(f"{path} is {kind}; a dataset folder holds {', '.join(cls.FILES)} as files")
        for folder in cls.FOLDERS:
            path = root / folder
            if not stat.S_ISDIR(_stat(path, "a dataset folder holds rgb/ and lidar/ sample folders", "/").st_mode):
                raise DatasetError(f"{path} is not a folder: a dataset folder holds rgb/ and lidar/ sample folders")
            try:
                with os.scandir(path) as entries:
                    # Dot-files are the operating system's (.DS_Store and the like), never samples.
                    named = [e for e in entries if not e.name.startswith(".")]
            except OSError as error:
                raise DatasetError(f"{path}/: cannot list its files ({error})") from error
            # Only the size and time of each sample file are kept: a full os.stat_result per file
            # took 340 MB for the 400,000 files of 200,000 samples.
            folders[folder] = {e.name: _FileStat.of(_entry_stat(e, f"{path}/ holds one file per sample"))
                               for e in named}
        return cls(root, files, folders)

    @property
    def count(self) -> int:
        """Sample files in rgb/ (the CSV row count is only checked on a full read)."""
        return len(self.folders["rgb"])

    def stats(self) -> Iterator[tuple[str, os.stat_result | _FileStat]]:
        yield from self.files.items()
        for folder, entries in self.folders.items():
            yield from ((f"{folder}/{name}", stat) for name, stat in entries.items())

    def sample_paths(self, count: int) -> dict[str, list[Path]]:
        """The ``count`` sample files of each folder; raises if any is missing or any other file is there."""
        paths = {}
        for folder, suffix in self.FOLDERS.items():
            expected = [f"{i:04d}{suffix}" for i in range(count)]
            present = self.folders[folder]
            missing = [name for name in expected if name not in present]
            unexpected = sorted(set(present) - set(expected))
            if missing or unexpected:
                problems = [f"missing {_names(self.root / folder, missing)}"] if missing else []
                problems += [f"unexpected {_names(self.root / folder, unexpected)}"] if unexpected else []
                raise DatasetError(
                    f"{self.root / folder}/ holds {len(present)} files for the {count} sample rows of "
                    f"{self.root / 'positions.csv'}: {'; '.join(problems)}"
                )
            paths[folder] = [self.root.joinpath(folder, name) for name in expected]
        return paths


class _Header:
    """What a read learns before decoding a sample: the targets, the beam angles, every sample's
    files and the shapes of the tensors they decode to."""

    def __init__(self, listing: _Listing, image_size: int, channels: int):
        root = listing.root
        self.root = root
        self.targets = _read_targets(root / "positions.csv")
        self.azimuth = _read_angles(root / "azimuth.npy")
        self.zenith = _read_angles(root / "zenith.npy")
        self.paths = listing.sample_paths(len(self.targets))
        self.count = len(self.targets)
        self.image_size = image_size
        self.channels = channels

    def specs(self) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
        """Each tensor's dtype and shape."""
        return {
            "rgb": (torch.uint8, (self.count, self.channels, self.image_size, self.image_size)),
            "depth": (torch.float32, (self.count, len(self.azimuth), len(self.zenith))),
            "targets": (torch.float32, tuple(self.targets.shape)),
            "azimuth": (torch.float32, tuple(self.azimuth.shape)),
            "zenith": (torch.float32, tuple(self.zenith.shape)),
        }

    def decode(self, progress: bool | None, into: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
        """Validate and decode every sample: the tensors ``Samples`` is built from, written into
        ``into`` (tensors of ``specs``, e.g. views of a cache file) or into new tensors."""
        specs = self.specs()
        tensors = into if into is not None else {name: torch.empty(shape, dtype=dtype)
                                                  for name, (dtype, shape) in specs.items()}
        for name in ("targets", "azimuth", "zenith"):
            tensors[name].copy_(getattr(self, name))
        rgb, depth, count = tensors["rgb"], tensors["depth"], self.count
        lidar_shape = specs["depth"][1][1:]

        def read_chunk(start: int) -> int:
            stop = min(start + _CHUNK, count)
            for i in range(start, stop):
                rgb[i] = _read_image(self.paths["rgb"][i], self.image_size, self.channels)
                depth[i] = _read_depth(self.paths["lidar"][i], lidar_shape)
            return stop - start

        pool = ThreadPoolExecutor(max_workers=_cpu_count())
        try:
            # disable=None: tqdm shows the bar only on a terminal.
            hide = None if progress is None else not progress
            with png.quiet(), tqdm(total=count, desc=f"reading {self.root.name}", unit="sample", disable=hide) as bar:
                # map() yields in order, so the first unreadable file in sample order is the one reported.
                for done in pool.map(read_chunk, range(0, count, _CHUNK)):
                    bar.update(done)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        _refuse_non_finite(depth, self.paths["lidar"])
        return tensors


def _read(listing: _Listing, image_size: int, channels: int, progress: bool | None) -> dict[str, torch.Tensor]:
    """Validate and decode every file of ``listing`` into memory: the tensors ``Samples`` is built from."""
    started = time.perf_counter()
    tensors = _Header(listing, image_size, channels).decode(progress)
    _log_read(listing.root, len(tensors["targets"]), started)
    return tensors


def _log_read(root: Path, count: int, started: float) -> None:
    logger.info("read %d samples of %s in %.1f s", count, root, time.perf_counter() - started)


def _stat(path: Path, holds: str, suffix: str = "") -> os.stat_result:
    """``os.stat(path)`` (links followed), or ``DatasetError`` saying what ``path`` is instead:
    missing, a symbolic link loop, a broken symbolic link, or unreadable. ``holds`` says what the
    dataset folder should hold there; ``suffix`` ("/") marks a folder in the message."""
    try:
        return path.stat()
    except OSError as error:
        try:
            target = f" -> {_printable(os.readlink(path))}"
        except OSError:
            target = ""
        shown = _printable(str(path))
        if error.errno == errno.ELOOP:
            problem = f"is a symbolic link loop ({path.name}{target} leads back to itself, never to a file)"
        elif isinstance(error, FileNotFoundError) and target:
            problem = f"is a broken symbolic link (its target{target} does not exist)"
        elif isinstance(error, FileNotFoundError):
            raise DatasetError(f"{shown}{suffix} is missing: {holds}") from None
        else:
            problem = f"cannot be read ({error.strerror or error})"
        raise DatasetError(f"{shown}{suffix} {problem}; {holds}") from None


def _entry_stat(entry: os.DirEntry, holds: str) -> os.stat_result:
    """``entry.stat()`` (faster than a new ``Path``'s: every open stats every sample file), or
    ``_stat``'s error saying what the entry is."""
    try:
        return entry.stat()
    except OSError:
        return _stat(Path(entry.path), holds)


def _read_targets(path: Path) -> torch.Tensor:
    """positions.csv: a header line, then one row of 9 finite numbers per sample -> ``(N, 9)`` float32."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{path}: cannot read it as text ({error})") from error
    if not lines:
        raise DatasetError(f"{path} is empty: expected a header line, then one row per sample")
    while len(lines) > 1 and not lines[-1].strip():
        lines.pop()  # a trailing blank line is an editor's habit, not a sample
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        fields = line.split(",") if line.strip() else []
        if len(fields) != TARGETS_PER_SAMPLE:
            raise DatasetError(f"{path} line {number}: expected {TARGETS_PER_SAMPLE} numbers, got {len(fields)}")
        row = []
        for field in fields:
            try:
                value = float(field)
            except ValueError:
                raise DatasetError(f"{path} line {number}: {field.strip()!r} is not a number") from None
            if not math.isfinite(value):
                raise DatasetError(f"{path} line {number}: target {field.strip()!r} is not finite")
            row.append(value)
        rows.append(row)
    if not rows:
        raise DatasetError(f"{path} has a header but no sample rows: the dataset is empty")
    return torch.tensor(rows, dtype=torch.float32)


def _load_npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:
        raise DatasetError(f"{path}: not a readable .npy array ({error})") from error
    if not isinstance(array, np.ndarray) or not (
        np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)
    ):
        raise DatasetError(f"{path}: expected an array of numbers, got {getattr(array, 'dtype', type(array))}")
    return array


def _read_angles(path: Path) -> torch.Tensor:
    """azimuth.npy / zenith.npy: a non-empty 1-D array of finite beam angles (radians) -> float32."""
    array = _load_npy(path)
    if array.ndim != 1 or array.size == 0:
        raise DatasetError(f"{path}: expected a non-empty 1-D array of beam angles, got shape {array.shape}")
    angles = torch.from_numpy(np.asarray(array, dtype=np.float32))
    if not torch.isfinite(angles).all():
        raise DatasetError(f"{path}: angle {int((~torch.isfinite(angles)).nonzero()[0])} is not finite")
    return angles


def _read_depth(path: Path, shape: tuple[int, int]) -> torch.Tensor:
    """lidar/NNNN.npy: an ``(H, W)`` grid of depths -> float32, as the course converted it."""
    array = _load_npy(path)
    if array.shape != shape:
        raise DatasetError(
            f"{path}: depth of shape {array.shape} does not match (len(azimuth), len(zenith)) = {shape}"
        )
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, refused once all are read
        return torch.from_numpy(np.asarray(array, dtype=np.float32))  # also makes the byte order native


def _refuse_non_finite(depth: torch.Tensor, paths: list[Path]) -> None:
    """Raise naming the first file whose depth grid holds a NaN or infinity (one check for all)."""
    # aminmax propagates NaN and reads the grid once, without a boolean copy of it: ~15x faster.
    if all(torch.isfinite(extreme) for extreme in torch.aminmax(depth)):
        return
    sample, row, column = (int(i) for i in (~torch.isfinite(depth)).nonzero()[0])
    raise DatasetError(
        f"{paths[sample]}: depth at row {row}, column {column} is {float(depth[sample, row, column])} as float32; "
        "depths must be finite (a beam without a return holds the maximum range)"
    )


def _read_image(path: Path, size: int, channels: int) -> torch.Tensor:
    """rgb/NNNN.png: a square 8-bit PNG -> ``(channels, size, size)`` uint8, resized like the course.

    The header's size is checked before decoding: a small file may declare a huge image.
    """
    try:
        # Read by Python, not torchvision's read_file, which cannot open a name that is not valid UTF-8.
        raw = path.read_bytes()
    except OSError as error:
        raise DatasetError(f"{_printable(str(path))}: cannot read it ({error.strerror or error})") from error
    if not raw.startswith(_PNG_HEADER) or len(raw) < len(_PNG_HEADER) + 8:
        raise DatasetError(f"{path}: not a PNG, or cut short before its header (it does not start with the PNG "
                           "signature and IHDR chunk)")
    width, height = struct.unpack_from(">II", raw, len(_PNG_HEADER))
    if height != width:
        raise DatasetError(f"{path}: image is {width} x {height}; the layout's images are square")
    largest = max(MAX_IMAGE_SIDE, size)
    if width > largest:
        raise DatasetError(f"{path}: PNG header declares {width} x {height} pixels; images larger than {largest} x "
                           f"{largest} are refused before decoding (it would take {width * height * 4 / 2**30:.1f} GiB "
                           f"as RGBA); resize the images (the course's are 64 x 64)")
    try:
        image = png.decode(torch.frombuffer(bytearray(raw), dtype=torch.uint8))
    except (RuntimeError, ValueError) as error:
        raise DatasetError(f"{path}: corrupt or truncated PNG ({error})") from error
    if not raw.endswith(_PNG_END):
        raise DatasetError(f"{path}: truncated PNG (it does not end with an IEND chunk)")
    if raw[_PNG_COLOR_TYPE_OFFSET] == _PNG_PALETTE:
        # torchvision decodes palette PNGs to their indices (UNCHANGED) or wrong colours (RGB_ALPHA).
        raise DatasetError(f"{path}: palette (indexed colour) PNG; save the images as RGB or RGBA")
    found = image.shape[0]
    if found != channels and not (found == 3 and channels == 4):
        raise DatasetError(
            f"{path}: image has {found} channel(s) ({_CHANNEL_NAMES[found]}), but channels={channels} "
            f"({_CHANNEL_NAMES[channels]}) was asked"
        )
    if image.dtype != torch.uint8:
        image = tvf.to_dtype(image, torch.uint8, scale=True)  # 16-bit PNG
    if found == 3 and channels == 4:
        image = torch.cat((image, torch.full_like(image[:1], 255)))  # opaque alpha, as FORMAT.md says
    if height != size:
        image = tvf.resize(image, [size, size], antialias=True)
    return image


def _write_cache(path: Path, tensors: dict[str, torch.Tensor], key: str) -> None:
    try:
        tensor_cache.save(path, tensors, key)
    except (OSError, SafetensorError, DatasetError) as error:
        # A read-only dataset is still readable; it is decoded again next time.
        logger.warning("could not write the cache %s (%s); the samples are read but not cached", path, error)


def _fits(tensors: dict[str, torch.Tensor], image_size: int, channels: int, count: int) -> bool:
    """Whether cached tensors have the names, dtypes and shapes this read would produce."""
    try:
        rgb, depth, targets = tensors["rgb"], tensors["depth"], tensors["targets"]
        azimuth, zenith = tensors["azimuth"], tensors["zenith"]
    except KeyError:
        return False
    return (
        rgb.dtype == torch.uint8
        and rgb.shape == (count, channels, image_size, image_size)
        and depth.dtype == torch.float32
        and depth.shape == (count, azimuth.numel(), zenith.numel())
        and targets.dtype == torch.float32
        and targets.shape == (count, TARGETS_PER_SAMPLE)
        and azimuth.dim() == zenith.dim() == 1
    )


def _cache_file(root: Path, cache_dir: str | os.PathLike[str] | None, image_size: int, channels: int) -> Path | None:
    """Where the cache of ``root`` lives; None (no cache) where that path is not valid UTF-8."""
    name = f"replicator-{image_size}px-{channels}ch.safetensors"
    if cache_dir is None:
        path = root / CACHE_FOLDER / name
    else:
        # One cache folder may serve many datasets: tell them apart by their absolute path.
        tag = hashlib.sha256(os.fsencode(root.resolve())).hexdigest()[:12]
        readable = os.fsencode(root.resolve().name).decode("utf-8", "replace")
        path = Path(cache_dir) / f"{readable}-{tag}-{name}"
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        logger.warning("not caching %s: safetensors cannot open %s, whose name is not valid UTF-8; pass cache_dir= "
                       "to cache it elsewhere", _printable(str(root)), _printable(str(path)))
        return None
    return path


def _rows(samples: Samples, start: int, stop: int, part: str) -> Samples:
    """Samples ``start:stop`` as views of ``samples``' tensors, the course split's ``part``."""
    split = {"name": "course", "part": part, "rows": [start, stop], "of": len(samples)}
    return Samples(
        samples.rgb[start:stop], samples.depth[start:stop], samples.targets[start:stop],
        samples.azimuth, samples.zenith, samples.hit_threshold,
        source=None if samples.source is None else {**samples.source, "split": split}, mapped=samples.mapped,
    )


def _provenance(root: Path, key: str, count: int, image_size: int, channels: int) -> dict[str, object]:
    """What a recipe records of the folder ``root``: its fingerprint (the cache key: every file's
    name, size and time, and the read parameters), its size and, when the built-in generator wrote
    it, the generator's config (seed and sample count included) from ``scene.json``."""
    found: dict[str, object] = {"folder": str(root), "fingerprint": key, "samples": count,
                                "image_size": image_size, "channels": channels}
    try:
        manifest = json.loads((root / SCENE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return found
    if isinstance(manifest, dict) and isinstance(manifest.get("config"), dict):
        found["scene"] = {"config": manifest["config"], "generator": manifest.get("source"),
                          "fusionzoo_version": manifest.get("fusionzoo_version")}
    return found


def _describe(source: object) -> str:
    return f"the given {type(source).__name__}" if isinstance(source, Samples) else f"dataset folder {source}"


def _names(folder: Path, names: list[str]) -> str:
    shown = ", ".join(_printable(str(folder / name)) for name in names[:_MAX_LISTED])
    return shown + (f" and {len(names) - _MAX_LISTED} more" if len(names) > _MAX_LISTED else "")


def _printable(name: str) -> str:
    """``name`` with the bytes of a file name that is not valid UTF-8 shown as ``\\xff`` escapes."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
