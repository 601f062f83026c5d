"""The model registry: names -> factories, in the style of timm and torchvision.

A factory is a function whose keyword arguments (all with defaults) are the model's config. The
registry validates overrides against that signature, and records the resolved arguments on the
model as a ``ModelConfig`` so a checkpoint can rebuild it exactly. It knows nothing of files or
weights (``fusionzoo.factory.create`` loads those) and imports nothing of fusionzoo's layers.
"""

from __future__ import annotations

import fnmatch
import inspect
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import nn

from ._names import unknown_name

Factory = TypeVar("Factory", bound=Callable[..., nn.Module])
CONFIG_ATTR = "fusionzoo_config"


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to rebuild a registered model: its name and its factory's arguments."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"name": self.name, "options": self.options}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelConfig:
        data = json.loads(text)
        if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not isinstance(data.get("options") or {}, dict):
            raise ValueError(f"not a fusionzoo model config (expected {{\"name\": str, \"options\": {{...}}}}): {text[:200]!r}")
        return cls(data["name"], dict(data.get("options") or {}))

    def build(self) -> nn.Module:
        """A fresh, randomly initialised model with this config."""
        return build(self.name, **self.options)

    def resolved(self) -> ModelConfig:
        """This config with every option the factory now has: one missing (stored before the option
        existed) takes its default, which is what ``build`` gives it. ``KeyError`` for an
        unregistered name, ``TypeError`` for an option the factory no longer takes."""
        return ModelConfig(self.name, _resolve(get_spec(self.name), self.options))


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its factory and the data that describe it."""

    name: str
    factory: Callable[..., nn.Module]
    description: str
    reproduces: str | None

    def defaults(self) -> dict[str, Any]:
        """The factory's keyword arguments and their default values."""
        return {
            p.name: p.default
            for p in inspect.signature(self.factory).parameters.values()
            if p.default is not inspect.Parameter.empty
        }


@dataclass(frozen=True)
class ModelInfo:
    """What ``info(name)`` reports, computed from the model itself so it cannot drift."""

    name: str
    description: str
    reproduces: str | None
    num_params: int
    inputs: dict[str, tuple[int, ...]]
    num_outputs: int | None
    defaults: dict[str, Any]

    def __str__(self) -> str:
        inputs = ", ".join(f"{k} {tuple(v)}" for k, v in self.inputs.items()) or "unknown"
        lines = [
            f"{self.name}: {self.description}",
            f"  parameters: {self.num_params:,}",
            f"  inputs:     {inputs}",
            f"  outputs:    {self.num_outputs}",
            f"  reproduces: {self.reproduces or '-'}",
            "  options:    " + ", ".join(f"{k}={v!r}" for k, v in self.defaults.items()),
        ]
        return "\n".join(lines)


_MODELS: dict[str, ModelSpec] = {}
_RESERVED = {"checkpoint", "branches", "weights"}  # fusionzoo.create's own keywords


def register_model(
    name: str | None = None, *, description: str | None = None, reproduces: str | None = None
) -> Callable[[Factory], Factory]:
    """Decorator that registers a model factory under ``name`` (default: the function's name).

    The factory's keyword arguments become the overrides ``create`` accepts. Registering a name
    twice is an error.
    """

    def decorate(factory: Factory) -> Factory:
        key = name or factory.__name__
        if key in _MODELS:
            raise ValueError(f"model {key!r} is already registered (by {_MODELS[key].factory.__module__})")
        reserved = _RESERVED & set(inspect.signature(factory).parameters)
        if reserved:
            raise ValueError(f"model {key!r}: argument(s) {sorted(reserved)} are reserved by create()")
        doc = (inspect.getdoc(factory) or "").split("\n\n")[0].replace("\n", " ")
        _MODELS[key] = ModelSpec(key, factory, description or doc, reproduces)
        return factory

    return decorate


def list_models(pattern: str | Iterable[str] | None = None, exclude: str | Iterable[str] | None = None) -> list[str]:
    """Sorted names of registered models, filtered by glob ``pattern``(s) and ``exclude`` patterns."""

    def patterns(p: str | Iterable[str] | None) -> list[str]:
        return [p] if isinstance(p, str) else list(p or [])

    names = sorted(_MODELS)
    if pattern is not None:
        names = [n for n in names if any(fnmatch.fnmatchcase(n, p) for p in patterns(pattern))]
    return [n for n in names if not any(fnmatch.fnmatchcase(n, p) for p in patterns(exclude))]


def get_spec(name: str) -> ModelSpec:
    """The registration of ``name``; ``KeyError`` listing the names and the closest match if unknown."""
    try:
        return _MODELS[name]
    except KeyError:
        raise unknown_name("model", name, _MODELS) from None


def fits_default(value: Any, default: Any) -> bool:
    """Whether ``value`` has the type of an option whose default is ``default``: a ``None`` default
    takes anything, a list or tuple default takes a list or tuple whose items fit its first item,
    a float default takes any number, a bool only a bool, an int an int (never a bool or float)."""
    if default is None:
        return True
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, (list, tuple)):
        return isinstance(value, (list, tuple)) and (not default or all(fits_default(item, default[0]) for item in value))
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))


def type_error(option: str, value: Any, default: Any) -> str:
    """What is wrong with ``value`` for ``option``, whose default is ``default``, in words."""
    words = {bool: ("a boolean", "booleans"), int: ("an integer", "integers"), float: ("a number", "numbers"),
             str: ("a string", "strings"), dict: ("a JSON object", "JSON objects")}
    if isinstance(default, (list, tuple)):
        items = words.get(type(default[0])) if default else None
        expected = f"a list of {items[1]}" if items else "a list"
    else:
        expected = words.get(type(default), (type(default).__name__,))[0]
    try:
        example, given = json.dumps(default), json.dumps(value)
    except TypeError:
        example, given = repr(default), repr(value)
    return f"{option} expects {expected} (e.g. {example}), got {given}"


def _resolve(spec: ModelSpec, overrides: dict[str, Any]) -> dict[str, Any]:
    defaults = spec.defaults()
    for option, value in overrides.items():
        if option in defaults and not fits_default(value, defaults[option]):
            raise TypeError(f"model {spec.name!r}: {type_error(option, value, defaults[option])}")
    signature = inspect.signature(spec.factory)
    var_keyword = next((p.name for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD), None)
    if var_keyword is None:
        unknown = sorted(set(overrides) - set(signature.parameters))
        if unknown:
            raise TypeError(
                f"model {spec.name!r} got unknown override(s) {', '.join(map(repr, unknown))}; "
                f"it accepts: {', '.join(signature.parameters)}"
            )
    bound = signature.bind(**overrides)
    bound.apply_defaults()
    options = dict(bound.arguments)
    if var_keyword is not None:
        options.update(options.pop(var_keyword, {}))
    # A JSON round trip here makes the recorded config equal to what a checkpoint reads back.
    try:
        return json.loads(json.dumps(options))
    except TypeError as err:
        raise TypeError(f"model {spec.name!r}: options must be JSON-serialisable ({err})") from None


def build(name: str, **overrides: Any) -> nn.Module:
    """A freshly initialised model ``name`` with its defaults replaced by ``overrides``, its config
    recorded on it (``model_config``). ``fusionzoo.create`` adds weight loading on top."""
    spec = get_spec(name)
    options = _resolve(spec, overrides)
    model = spec.factory(**options)
    setattr(model, CONFIG_ATTR, ModelConfig(name, options))
    return model


def model_config(model: nn.Module) -> ModelConfig:
    """The config ``create`` recorded on ``model``; ``ValueError`` if it was not built by ``create``."""
    config = getattr(model, CONFIG_ATTR, None)
    if not isinstance(config, ModelConfig):
        raise ValueError(
            f"{type(model).__name__} was not built by fusionzoo.create(), so it has no config to store; "
            "register its factory with @fusionzoo.register_model and build it with create()"
        )
    return config


def info(name: str) -> ModelInfo:
    """Describe the model ``name`` with default arguments: parameters, inputs, what it reproduces."""
    spec = get_spec(name)
    # The meta device builds the architecture without allocating or initialising weights.
    with torch.device("meta"):
        model = spec.factory(**_resolve(spec, {}))
    inputs = {k: tuple(v) for k, v in getattr(model, "input_shapes", {}).items()}
    return ModelInfo(
        name=name,
        description=spec.description,
        reproduces=spec.reproduces,
        num_params=sum(p.numel() for p in model.parameters()),
        inputs=inputs,
        num_outputs=getattr(model, "num_outputs", None),
        defaults=spec.defaults(),
    )
