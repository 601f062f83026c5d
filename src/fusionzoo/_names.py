"""Helpers shared by the model and fusion registries."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> KeyError:
    """A KeyError for an unknown ``name`` that lists the choices and the closest match."""
    choices = sorted(choices)
    close = difflib.get_close_matches(str(name), choices, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return KeyError(f"unknown {kind} {name!r}.{hint} Available: {', '.join(choices)}")
