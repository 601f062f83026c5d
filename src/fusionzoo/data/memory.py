"""How a dataset's samples are held: copied into the process's memory (``"load"``) or read through a
memory map of the cache file (``"map"``), and the rule ``"auto"`` follows.

A mapped dataset costs a process almost no memory of its own: its pages belong to the page cache,
which every process of the machine shares and which the kernel fills from the disk as rows are
touched and empties under pressure, so a dataset larger than memory still trains. A loaded one is a
private copy per process. ``"auto"`` loads a dataset that fits comfortably (its tensors, once per
process on this machine, take at most a quarter of the memory available) and maps any other. Both
give the same samples bit for bit (docs/benchmarks.md measures their speed and memory).
"""

from __future__ import annotations

import os

#: The values of ``ReplicatorDataset(memory=...)`` and of the CLI's ``--memory``.
MODES = ("auto", "map", "load")
#: The environment variable that sets the default mode (``auto`` when unset): the test suite runs
#: with ``FUSIONZOO_MEMORY=map`` and ``=load`` to check both paths.
ENVIRONMENT = "FUSIONZOO_MEMORY"
#: The share of the available memory that a dataset's copies (one per process) may take under ``auto``.
COMFORTABLE_SHARE = 0.25


def resolve(memory: str | None) -> str:
    """``memory`` checked (one of ``MODES``); ``None`` gives ``$FUSIONZOO_MEMORY``, else ``"auto"``."""
    if memory is None:
        memory = os.environ.get(ENVIRONMENT) or "auto"
        where = f"the environment variable {ENVIRONMENT}"
    else:
        where = "memory"
    if memory not in MODES:
        raise ValueError(f"{where} must be one of {', '.join(MODES)}, got {memory!r}")
    return memory


def choose(memory: str, nbytes: int) -> str:
    """``"map"`` or ``"load"``: ``memory`` itself, or for ``"auto"`` the rule above for ``nbytes``."""
    if memory != "auto":
        return memory
    return "load" if fits_comfortably(nbytes) else "map"


def fits_comfortably(nbytes: int) -> bool:
    """Whether ``nbytes`` of samples, once in each process on this machine, take at most
    ``COMFORTABLE_SHARE`` of the memory available (taken to fit where that is unknown)."""
    available = available_memory()
    return available is None or nbytes * local_processes() <= COMFORTABLE_SHARE * available


def local_processes() -> int:
    """Processes of this job on this machine: ``LOCAL_WORLD_SIZE`` under ``torchrun``, else 1."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def available_memory() -> int | None:
    """Bytes of memory available to new work (Linux's ``MemAvailable``: free memory plus the page
    cache it can drop), the physical memory elsewhere, or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None
