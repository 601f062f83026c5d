"""Atomic file writes, shared by checkpoints, run histories, comparison results and the dataset cache."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary file name beside ``path``; what the block writes there replaces ``path`` at the end.

    If the block raises, ``path`` keeps its old content and the temporary file is removed. The
    temporary name is unique per process and call, so concurrent writers never share one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as the target, so os.replace is a rename on one file system, never a copy.
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        yield temporary
        with open(temporary, "rb+") as f:
            os.fsync(f.fileno())  # the bytes reach the disk before the name points at them
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
