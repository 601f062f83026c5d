"""Where built weights live: ``FUSIONZOO_HOME``, by default the platform's user cache folder.

Nothing downloads at run time, so the cache holds what ``fusionzoo pretrain`` built on this
machine: ``weights/MODEL.TAG/`` (pretrained folders), ``scenes/`` (the generated data a recipe
trains on) and ``runs/MODEL.TAG/`` (the resumable training runs). The default follows each
platform's rule for caches, without a dependency: ``$XDG_CACHE_HOME`` (else ``~/.cache``) on Linux
and other Unix, ``~/Library/Caches`` on macOS, ``%LOCALAPPDATA%`` on Windows.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ENV = "FUSIONZOO_HOME"


def user_cache_dir() -> Path:
    """The platform's folder for a user's caches (``~/.cache`` and its kin), without fusionzoo's part."""
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA")
        return Path(local) if local else Path.home() / "AppData" / "Local"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches"
    xdg = os.environ.get("XDG_CACHE_HOME")
    # The XDG spec says a relative path is invalid and is to be ignored.
    return Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"


def fusionzoo_home() -> Path:
    """The cache root: ``$FUSIONZOO_HOME`` when set, else ``user_cache_dir()/fusionzoo``."""
    configured = os.environ.get(ENV)
    return Path(configured).expanduser() if configured else user_cache_dir() / "fusionzoo"


def weights_dir(name: str) -> Path:
    """The pretrained folder of catalogued weights ``name`` (``"matmul.cubes"``)."""
    return fusionzoo_home() / "weights" / name


def runs_dir(name: str) -> Path:
    """Where ``fusionzoo pretrain`` trains ``name``: kept, so an interrupted build resumes."""
    return fusionzoo_home() / "runs" / name


def scenes_dir() -> Path:
    """Where ``fusionzoo pretrain`` generates the scenes its recipes train on."""
    return fusionzoo_home() / "scenes"
