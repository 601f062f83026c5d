"""Old public names that keep working for one release, each with a ``DeprecationWarning``."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

REMOVED_IN = "0.3"


def renamed(module: str, aliases: Mapping[str, tuple[str, Callable[[], Any]]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving each old name of ``aliases`` (old -> (new name, getter)):
    it warns that the name is deprecated, says what replaces it, and returns the new object."""

    def __getattr__(name: str) -> Any:
        if name not in aliases:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new, get = aliases[name]
        warnings.warn(f"{module}.{name} is deprecated and will be removed in fusionzoo {REMOVED_IN}; use {new}",
                      DeprecationWarning, stacklevel=2)
        return get()

    return __getattr__
