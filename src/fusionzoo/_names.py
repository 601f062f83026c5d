"""The one "did you mean" helper, for every lookup of a name among known choices."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """`` Did you mean 'x'?`` for the choice closest to ``name``, or ``""`` when none is close."""
    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> KeyError:
    """A KeyError for an unknown ``name`` that lists the choices and the closest match."""
    choices = sorted(choices)
    return KeyError(f"unknown {kind} {name!r}.{did_you_mean(name, choices)} Available: {', '.join(choices)}")
