"""The decode-once cache: a dataset's tensors in one safetensors file, tied to the files they came from.

A cache file is only ever used when the key in its metadata equals the key of the source files as
they are now (every file's name, size and modification time, plus the read parameters), so a
stale, foreign or partial cache is ignored and rebuilt, never trusted. It is written to a temporary
file in the same folder and moved into place with ``os.replace``, so a crash mid-write leaves the
previous cache (or none), never half of one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .._files import atomic_path

logger = logging.getLogger(__name__)

FORMAT = "fusionzoo-cache/1"


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
    """The tensors cached at ``path`` if the file is readable and was written for ``key``, else None."""
    if not path.is_file():
        return None
    try:
        with safe_open(path, framework="pt") as cached:
            found = (cached.metadata() or {}).get("key")
            if found != key:
                logger.info("ignoring cache %s: built from other files or settings; rebuilding it", path)
                return None
            return {name: cached.get_tensor(name) for name in cached.keys()}
    except (OSError, SafetensorError) as error:
        logger.warning("ignoring unreadable cache %s (%s); rebuilding it", path, error)
        return None


def save(path: Path, tensors: Mapping[str, torch.Tensor], key: str) -> None:
    """Write ``tensors`` to ``path`` under ``key``, atomically; raises ``OSError`` if it cannot."""
    with atomic_path(path) as temporary:
        save_file(dict(tensors), temporary, metadata={"format": FORMAT, "key": key})
