"""Safe file handling: atomic writes (checkpoints, run histories, comparison results, the dataset
cache), the sweep of temporaries that killed writers left behind, and the lock that keeps two
trainings out of one run folder."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import secrets
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from .errors import RunInUseError

try:
    import fcntl
except ImportError:  # Windows: no flock; run folders are not locked there
    fcntl = None

LOCK_FILE = ".lock"
# What flock raises where the file system has no locks (some NFS, FUSE and parallel file systems).
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS}

log = logging.getLogger(__name__)

# atomic_path's temporary names: ".NAME.PID-8HEX.tmp" beside NAME; the writer's process id lets a
# later sweep tell a write still in progress from one whose process was killed.
_TEMPORARY = re.compile(r"\..+\.(?P<pid>[0-9]+)-[0-9a-f]{8}\.tmp")


def _temporary_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary file name beside ``path``; what the block writes there replaces ``path`` at the end.

    If the block raises, ``path`` keeps its old content and the temporary file is removed. The
    temporary name is unique per process and call, so concurrent writers never share one.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Same folder as the target, so os.replace is a rename on one file system, never a copy.
    temporary = _temporary_name(path)
    try:
        yield temporary
        with open(temporary, "rb+") as f:
            os.fsync(f.fileno())  # the bytes reach the disk before the name points at them
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files in ``folder`` that ``atomic_path`` writers killed mid-write left
    (SIGKILL, power loss: no ``except`` ran); returns the paths removed.

    Only names of ``atomic_path``'s own pattern count, and only those whose writer process is gone
    from this host (a process id names a process of this host only); a write still in progress keeps
    its file. Callers hold the folder's lock, so no other trainer writes there meanwhile. Does
    nothing on Windows, where probing a process id with ``os.kill`` would terminate it.
    """
    if os.name == "nt" or not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        match = _TEMPORARY.fullmatch(path.name)
        if match and path.is_file() and not _process_alive(int(match["pid"])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: delivers nothing, only checks the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    except OverflowError:
        return False  # no process has an id this large
    return True


@contextlib.contextmanager
def folder_lock(folder: Path) -> Iterator[None]:
    """Holds ``folder``'s lock for the block; raises ``RunInUseError`` if another process holds it.

    The lock is an OS file lock (``flock``), so a process that dies, even by SIGKILL, releases it:
    a lock file left behind never blocks the next run. Not enforced on Windows, which lacks flock,
    nor on file systems that cannot lock (a warning says so).
    """
    if fcntl is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_FILE
    f = _locked_file(path, folder)
    if f is None:
        yield
        return
    try:
        yield
    finally:
        path.unlink(missing_ok=True)  # while still locked, so no one can lock the old file after us
        f.close()


def _locked_file(path: Path, folder: Path) -> TextIO | None:
    """``path`` opened and locked by this process; ``None`` where the file system has no locks."""

    def busy(holder: str) -> None:
        raise RunInUseError(f"{folder}: {holder} is training in this folder; wait for it to finish, or choose another folder") from None

    def cannot_lock(reason: str) -> None:
        log.warning("%s: this file system cannot lock files (%s), so nothing stops a second run in this folder", folder, reason)

    return lock_file(path, busy, cannot_lock)


def lock_file(path: Path, busy: Callable[[str], None], cannot_lock: Callable[[str], None]) -> TextIO | None:
    """``path`` opened and locked (``flock``) by this process, with this process named in it.

    When another process holds the lock, ``busy(holder)`` is called with the name it wrote: it may
    raise, or return to wait for the lock. ``None`` where the file system cannot lock, after
    ``cannot_lock(reason)`` (which says so). Release it by deleting ``path``, then closing the
    file, so no one can lock the old file after us."""
    while True:
        f = open(path, "a+")
        try:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.seek(0)
                busy(f.read().strip() or "another process")
                fcntl.flock(f, fcntl.LOCK_EX)
        except OSError as err:
            f.close()
            if err.errno not in _NO_LOCKS:
                raise
            path.unlink(missing_ok=True)
            cannot_lock(err.strerror)
            return None
        except BaseException:
            f.close()
            raise
        # The holder before us removes the file on release, so the file we locked may be gone:
        # the lock only counts if the name still points at it.
        try:
            same = os.stat(path).st_ino == os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            f.seek(0)
            f.truncate()
            f.write(f"process {os.getpid()} on {socket.gethostname()}")
            f.flush()
            return f
        f.close()
