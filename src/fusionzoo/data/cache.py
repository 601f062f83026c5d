"""The decode-once cache: a dataset's tensors in one safetensors file, tied to the files they came from.

A cache file is only ever used when the key in its metadata equals the key of the source files as
they are now (every file's name, size and modification time, plus the read parameters), so a
stale, foreign or partial cache is ignored and rebuilt, never trusted. It is written to a temporary
file in the same folder and moved into place with ``os.replace``, so a crash mid-write leaves the
previous cache (or none), never half of one.

The file is read one of two ways. ``load`` copies its tensors into the process's memory.
``open_mapped`` maps the file instead (``MappedCache``): its tensors are views of the mapping, so
every process of a machine reads the same pages of the page cache, and a file larger than memory
streams from the disk as rows are touched. A large cache is written the same way round: ``write``
reserves the whole file (after checking that the disk has room), maps it, and lets the caller
decode straight into its tensors, so the decoded data never have to fit in memory.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import mmap
import os
import shutil
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TextIO
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .._files import atomic_path, lock_file
from ..errors import DatasetError

try:
    import fcntl
except ImportError:  # Windows: no flock; concurrent builders then each write their own (atomic) copy
    fcntl = None

logger = logging.getLogger(__name__)

FORMAT = "fusionzoo-cache/1"
# safetensors' dtype names for the dtypes a cache holds.
_DTYPES = {"U8": torch.uint8, "F32": torch.float32, "I64": torch.int64, "F64": torch.float64}
_NAMES = {dtype: name for name, dtype in _DTYPES.items()}
_HEADER_ALIGNMENT = 8  # safetensors pads its header so that the data start on an 8-byte boundary
_SPACE_MARGIN = 64 * 2**20  # left free beyond the cache itself, for the file system's own bookkeeping
# What flock raises where the file system has no locks (some NFS, FUSE and parallel file systems).
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS}


def fingerprint(files: Iterable[tuple[str, os.stat_result]], params: Mapping[str, object]) -> str:
    """A hex key that changes when any file is added, removed, resized or touched, or a param changes.

    ``files`` pairs each file's name (relative to the dataset, so a moved dataset keeps its cache)
    with its ``os.stat`` result; ``params`` are the read parameters that shape the cached tensors.
    """
    digest = hashlib.sha256(FORMAT.encode())
    digest.update(json.dumps(dict(params), sort_keys=True).encode())
    for name, stat in sorted(files, key=lambda item: item[0]):
        # surrogateescape: a file name that is not valid UTF-8 keeps its own bytes (os.fsencode's rule).
        digest.update(f"\n{name}\0{stat.st_size}\0{stat.st_mtime_ns}".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def load(path: Path, key: str) -> dict[str, torch.Tensor] | None:
    """The tensors cached at ``path``, copied into memory, if the file is readable and was written
    for ``key``, else None."""
    if not _written_for(path, key):
        return None
    try:
        with safe_open(path, framework="pt") as cached:
            # clone: safetensors may hand out views of its own private map of the file (0.8 does),
            # which are neither checked for changes nor a copy.
            return {name: cached.get_tensor(name).clone() for name in cached.keys()}
    except (OSError, SafetensorError) as error:
        logger.warning("ignoring unreadable cache %s (%s); rebuilding it", path, error)
        return None


def save(path: Path, tensors: Mapping[str, torch.Tensor], key: str) -> None:
    """Write ``tensors`` to ``path`` under ``key``, atomically; raises ``OSError`` if it cannot,
    and ``DatasetError`` before writing anything if the disk has no room for it."""
    check_space(path, file_size({name: (t.dtype, tuple(t.shape)) for name, t in tensors.items()}, key))
    with atomic_path(path) as temporary:
        save_file(dict(tensors), temporary, metadata={"format": FORMAT, "key": key})


# --- the mapped cache ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Signature:
    """What ``fstat`` says of the mapped file; any change means it was truncated or rewritten (or,
    for a file opened again by its path, replaced)."""

    size: int
    mtime_ns: int
    inode: tuple[int, int]

    @classmethod
    def of(cls, fd: int) -> _Signature:
        stat = os.fstat(fd)
        return cls(stat.st_size, stat.st_mtime_ns, (stat.st_dev, stat.st_ino))


@dataclass(frozen=True)
class MappedView:
    """A view of a mapped tensor, by name and layout: what crosses a process boundary instead of
    the data."""

    name: str
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int


class MappedCache:
    """A cache file mapped into memory: ``tensors`` are views of the mapping, never copies.

    The mapping is private and copy-on-write: the file is opened read-only, pages that are only
    read stay the page cache's (shared by every process that maps the file, and dropped by the
    kernel under memory pressure), and a write into a tensor would change this process's copy of
    that page, never the file. ``check`` raises ``DatasetError`` once the file has been truncated
    or rewritten in place since it was mapped (replacing it by a new file, as ``save`` and
    ``write`` do, leaves the mapped one intact and is not an error): call it before and after
    reading rows, so that a changed file gives a named error rather than garbage (or, for a
    truncated one, a ``SIGBUS`` on the next read of a page past its new end).
    """

    def __init__(self, path: Path, fd: int, mapping: mmap.mmap, tensors: dict[str, torch.Tensor]):
        self.path = path
        self.tensors = tensors
        self._fd = fd
        self._mapping = mapping
        self._signature = _Signature.of(fd)

    def check(self) -> None:
        """Raise ``DatasetError`` if the mapped file changed since it was opened."""
        now = _Signature.of(self._fd)
        if now == self._signature:
            return
        was = self._signature
        if now.size != was.size:
            what = f"it was {was.size:,} bytes when it was mapped and is now {now.size:,} bytes"
        else:
            what = "it was rewritten in place (its size is the same, its modification time is not)"
        raise DatasetError(
            f"cache {self.path} changed under this job: {what}, so the samples read through it can no longer be "
            "trusted. Something truncated or rewrote the file while it was in use; open the dataset again, which "
            "checks the cache against the dataset's files and rebuilds it if it has to"
        )

    def __reduce__(self):
        # A mapping cannot cross to another process (a DataLoader worker started by spawn, as on
        # macOS and Windows): that process maps the same file again, so it shares the page cache
        # instead of receiving a copy of the data, and refuses a file changed since.
        return _remap, (self.path, self._signature)

    def locate(self, tensor: torch.Tensor) -> MappedView:
        """Where ``tensor``, a view of one of the mapped tensors, lies in it (``ValueError`` if it
        views none of them)."""
        pointer = tensor.untyped_storage().data_ptr()
        for name, base in self.tensors.items():
            if base.numel() and base.untyped_storage().data_ptr() == pointer and base.dtype == tensor.dtype:
                return MappedView(name, tuple(tensor.shape), tensor.stride(), tensor.storage_offset())
        raise ValueError(f"the tensor is not a view of the mapped cache {self.path}")

    def view(self, place: MappedView) -> torch.Tensor:
        """The view ``locate`` described, on this mapping."""
        return self.tensors[place.name].as_strided(place.shape, place.stride, place.offset)

    def __del__(self):  # the tensors keep the mapping alive; this runs once they are all gone
        with contextlib.suppress(Exception):
            os.close(self._fd)

    def __repr__(self) -> str:
        return f"MappedCache({str(self.path)!r}, {self._signature.size:,} bytes)"


def open_mapped(path: Path, key: str) -> MappedCache | None:
    """``path`` mapped into memory (``MappedCache``) if it is a readable cache written for ``key``,
    else None (with the reason logged, as ``load`` does)."""
    if not _written_for(path, key):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except OSError as error:
        logger.warning("ignoring unreadable cache %s (%s); rebuilding it", path, error)
        return None
    try:
        return _map(path, fd)
    except (OSError, ValueError) as error:
        logger.warning("ignoring unreadable cache %s (%s); rebuilding it", path, error)
        return None


def _remap(path: Path, signature: _Signature) -> MappedCache:
    """``path`` mapped again in another process, if it is still the file that was mapped."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    if _Signature.of(fd) != signature:
        os.close(fd)
        raise DatasetError(
            f"cache {path} changed after it was mapped (it was {signature.size:,} bytes), before another "
            "process could map it too; open the dataset again"
        )
    return _map(path, fd)


def _map(path: Path, fd: int) -> MappedCache:
    """The open file ``fd`` (``path``) mapped; ``fd`` is closed if that fails."""
    try:
        size = os.fstat(fd).st_size
        header, start = _read_header(fd, size)
        # ACCESS_COPY: a private mapping of a read-only file, writable for torch.frombuffer (so no
        # warning), whose writes would stay in this process.
        mapping = mmap.mmap(fd, size, access=mmap.ACCESS_COPY)
    except BaseException:
        os.close(fd)
        raise
    return MappedCache(path, fd, mapping, _views(mapping, header, start))


def _written_for(path: Path, key: str) -> bool:
    """Whether ``path`` is a whole safetensors file whose metadata carry ``key`` (safetensors checks
    the header against the file's length, so a truncated or padded file is refused here)."""
    if not path.is_file():
        return False
    try:
        with safe_open(path, framework="pt") as cached:
            found = (cached.metadata() or {}).get("key")
    except (OSError, SafetensorError) as error:
        logger.warning("ignoring unreadable cache %s (%s); rebuilding it", path, error)
        return False
    if found != key:
        logger.info("ignoring cache %s: built from other files or settings; rebuilding it", path)
        return False
    return True


def _read_header(fd: int, size: int) -> tuple[dict[str, dict], int]:
    """The tensor entries of a safetensors file's JSON header and where its data start; ValueError
    if an entry does not fit the file (safetensors has checked the file, so only a file changed
    since gets here)."""
    prefix = os.pread(fd, 8, 0)
    if len(prefix) < 8:
        raise ValueError("shorter than a safetensors header")
    (length,) = struct.unpack("<Q", prefix)
    start = 8 + length
    if start > size:
        raise ValueError(f"its header claims {length} bytes, more than the file holds")
    header = json.loads(os.pread(fd, length, 8))
    header.pop("__metadata__", None)
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = _DTYPES.get(entry["dtype"])
        if dtype is None:
            raise ValueError(f"tensor {name!r} has dtype {entry['dtype']}, which a cache never holds")
        count = 1
        for side in entry["shape"]:
            count *= side
        if end - begin != count * dtype.itemsize or start + end > size or (start + begin) % dtype.itemsize:
            raise ValueError(f"tensor {name!r} does not fit the file")
    return header, start


def _views(mapping: mmap.mmap, header: Mapping[str, dict], start: int) -> dict[str, torch.Tensor]:
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = _DTYPES[entry["dtype"]]
        shape = tuple(entry["shape"])
        if end == begin:  # frombuffer refuses an empty range
            tensors[name] = torch.empty(shape, dtype=dtype)
            continue
        flat = torch.frombuffer(mapping, dtype=dtype, count=(end - begin) // dtype.itemsize, offset=start + begin)
        tensors[name] = flat.view(shape)
    return tensors


# --- writing a cache larger than memory ----------------------------------------------------------

Specs = Mapping[str, tuple[torch.dtype, tuple[int, ...]]]


def _layout(specs: Specs, key: str) -> tuple[bytes, dict[str, tuple[int, int]]]:
    """The padded header of a safetensors file holding tensors of ``specs`` and each one's data
    offsets. Like safetensors' own writer, the tensors are ordered by element size (largest first)
    and then by name, so every tensor starts aligned to its element size."""
    order = sorted(specs, key=lambda name: (-specs[name][0].itemsize, name))
    header: dict[str, object] = {"__metadata__": {"format": FORMAT, "key": key}}
    offsets, position = {}, 0
    for name in order:
        dtype, shape = specs[name]
        if dtype not in _NAMES:
            raise ValueError(f"{name}: a cache holds {', '.join(map(str, _NAMES))}, not {dtype}")
        count = 1
        for side in shape:
            count *= side
        offsets[name] = (position, position + count * dtype.itemsize)
        header[name] = {"dtype": _NAMES[dtype], "shape": list(shape), "data_offsets": list(offsets[name])}
        position = offsets[name][1]
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % _HEADER_ALIGNMENT)
    return struct.pack("<Q", len(text)) + text, offsets


def file_size(specs: Specs, key: str) -> int:
    """Bytes of a cache file holding tensors of ``specs`` (name -> (dtype, shape))."""
    header, offsets = _layout(specs, key)
    return len(header) + max((end for _, end in offsets.values()), default=0)


def check_space(path: Path, needed: int) -> None:
    """Raise ``DatasetError`` if the disk that ``path`` goes to cannot take ``needed`` more bytes
    (and a margin), saying how much it needs; a folder that does not exist yet is checked at its
    nearest existing parent."""
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # unknown: the write itself then says what is wrong
    if needed + _SPACE_MARGIN > free:
        raise DatasetError(
            f"cache {path}: needs {_size(needed)} (and {_size(_SPACE_MARGIN)} to spare) but its disk has "
            f"{_size(free)} free; free some space, or pass cache_dir= (a folder on a disk with room)"
        )


def write(path: Path, specs: Specs, key: str, fill: Callable[[dict[str, torch.Tensor]], None]) -> None:
    """Write a cache of tensors ``specs`` (name -> (dtype, shape)) to ``path`` under ``key`` by
    letting ``fill`` write them in place: ``fill`` gets tensors that are views of the new file, so
    what it writes goes to the page cache and on to the disk, never into this process's memory.

    The disk's room is checked and the whole file reserved (``posix_fallocate``) before anything
    is written, so a full disk says how much it needs up front instead of failing mid-write (or,
    for a write through a mapping, killing the process with ``SIGBUS``). Atomic like ``save``: an
    exception from ``fill`` or a crash leaves the previous cache, or none.
    """
    header, offsets = _layout(specs, key)
    size = len(header) + max((end for _, end in offsets.values()), default=0)
    check_space(path, size)
    with atomic_path(path) as temporary:
        with open(temporary, "wb+") as f:
            _reserve(f.fileno(), size, path)
            f.write(header)
            f.flush()
            if size == len(header):
                fill({})
                return
            mapping = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_WRITE)
            entries = {name: {"dtype": _NAMES[dtype], "shape": list(shape), "data_offsets": list(offsets[name])}
                       for name, (dtype, shape) in specs.items()}
            views = _views(mapping, entries, len(header))
            fill(views)
            mapping.flush()
            del views
            # A mapping cannot close while tensors still point into it (the caller may keep some);
            # it is then unmapped when the last of them goes.
            with contextlib.suppress(BufferError):
                mapping.close()


def _reserve(fd: int, size: int, path: Path) -> None:
    """Allocate ``size`` bytes of ``fd``'s file on its disk now, so that writes through a mapping
    never meet a full disk."""
    if hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise DatasetError(f"cache {path}: needs {_size(size)}, more than its disk has free; free some "
                                   "space, or pass cache_dir= (a folder on a disk with room)") from None
            if error.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise
    os.ftruncate(fd, size)  # no fallocate here: the space was checked, but is not reserved


def _size(nbytes: int) -> str:
    return f"{nbytes / 2**30:.2f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


# --- one builder at a time -----------------------------------------------------------------------


@contextlib.contextmanager
def build_lock(path: Path) -> Iterator[None]:
    """Hold the lock on building the cache ``path`` for the block, waiting for it if another
    process (another rank of a torchrun job, say) holds it, so a cache is built once per machine
    (or once per shared file system), and every other process then maps what it wrote.

    The lock is an OS file lock (``flock``) on ``path`` + ``.lock``, removed on release; a process
    that dies releases it. Where the file system cannot lock, every process builds (atomically)
    and a warning says so; where the folder cannot be written, there is nothing to build into,
    and no lock.
    """
    if fcntl is None:
        yield
        return
    lock = path.with_name(path.name + ".lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        f = _acquire(lock)
    except OSError as error:
        # A folder that cannot hold the lock cannot hold the cache either: the write says so.
        logger.debug("no build lock for %s (%s)", path, error)
        f = None
    try:
        yield
    finally:
        if f is not None:
            lock.unlink(missing_ok=True)  # while still locked, so no one can lock the old file after us
            f.close()


def _acquire(lock: Path) -> TextIO | None:
    """The build lock ``lock``, waiting (and saying so once) while another process builds."""
    waited = False

    def wait(holder: str) -> None:
        nonlocal waited
        if not waited:
            logger.info("waiting for %s, which is building the cache %s", holder, lock.with_suffix(""))
            waited = True

    def cannot_lock(reason: str) -> None:
        logger.warning("%s: this file system cannot lock files (%s), so processes that open the dataset at once may "
                       "each build its cache", lock.parent, reason)

    return lock_file(lock, wait, cannot_lock)
