"""The weights catalogue: trained weights described by data, in the spirit of torchvision's ``Weights``.

Nothing downloads at run time, so an entry is a promise that a fixed command can keep on any
machine: the model and its options, the exact recipe (a scene the library generates, the course's
split and protocol, a seed), the metrics that recipe measured and how far a rebuild may stray from
them, and the parameter count. ``fusionzoo pretrain MODEL.TAG`` builds an entry into the cache
(``home``); ``fusionzoo.create(MODEL, weights=TAG)`` loads it.

Every figure below is a seed-0 run of exactly its recipe, from docs/leaderboard.md ("Course
protocol"), measured on 2 CPU cores in fp32. The tolerance of each is the larger of three times the
sample standard deviation of that model's best validation MSE over seeds 0, 1 and 2 and 5% of the
figure: a rebuild on a GPU, with another thread count, or under torchrun sums floats in another
order, and over 20 epochs such a run drifts from the recorded one by about as much as another seed
does, which the seed spread measures. ``tests/weights/test_weights_catalog.py`` checks every entry.
"""

from __future__ import annotations

import fnmatch
import json
import math
from dataclasses import dataclass, field
from typing import Any

from .._names import unknown_name

#: Where the catalogue's figures were measured.
LEADERBOARD = "docs/leaderboard.md#course-protocol"
#: The ``fit`` options a recipe may add to the course's protocol (each the command line's ``--name-with-dashes``).
TRAINING_OPTIONS = ("weight_decay", "mirror", "schedule", "warmup", "ema", "modality_dropout")


@dataclass(frozen=True)
class Recipe:
    """How catalogued weights are trained: ``fusionzoo compare --models MODEL --seeds SEED`` on a
    generated scene, i.e. ``generate_scenes(folder, **scene)``, ``course_splits`` (the last 320
    samples validate), ``torch.manual_seed(seed)``, ``create(model, **options implied by the data,
    **entry options)`` and ``fit(model, train, valid, epochs, lr, batch_size, seed, precision)``.

    ``scene``: the generator's knobs that differ from ``SceneConfig()``'s defaults; ``samples`` and
    the generator's ``seed`` are always given, so the recipe says them outright. ``training``: the
    ``fit`` options beyond the course's protocol (``weight_decay``, ``mirror``, ``schedule``,
    ``warmup``, ``ema``, ``modality_dropout``; docs/training.md), empty for the course's own loop."""

    scene: dict[str, Any] = field(default_factory=lambda: {"samples": 9999, "seed": 0})
    split: str = "course"
    epochs: int = 20
    lr: float = 1e-4
    batch_size: int = 32
    precision: str = "fp32"
    seed: int = 0
    training: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        unknown = sorted(set(self.training) - set(TRAINING_OPTIONS))
        if unknown:
            raise ValueError(f"recipe training options {unknown} are not fit options a recipe records; "
                             f"known: {sorted(TRAINING_OPTIONS)}")

    @property
    def image_size(self) -> int:
        """The size the images are read at: the scene's own (64 unless the scene says otherwise)."""
        return int(self.scene.get("image_size", 64))

    def to_json(self) -> dict[str, Any]:
        return {"scene": dict(self.scene), "split": self.split, "epochs": self.epochs, "lr": self.lr,
                "batch_size": self.batch_size, "precision": self.precision, "seed": self.seed,
                "training": dict(self.training)}


@dataclass(frozen=True)
class Weights:
    """One catalogued set of weights, ``MODEL.TAG``.

    - ``options``: the model's options beyond its registered defaults (those implied by the data,
      image size, channels and outputs, are added by the recipe); ``create(model, weights=tag)``
      builds exactly these, and refuses overrides that contradict them.
    - ``metrics``: what the recipe measured (``valid_mse``: best validation MSE), within
      ``tolerance`` (absolute, per metric) of which a rebuild must land.
    - ``num_params``: the model's parameter count, checked against the built model.
    - ``measured``: where the figures come from.
    """

    model: str
    tag: str
    description: str
    num_params: int
    metrics: dict[str, float]
    tolerance: dict[str, float]
    options: dict[str, Any] = field(default_factory=dict)
    recipe: Recipe = field(default_factory=Recipe)
    measured: str = LEADERBOARD

    @property
    def name(self) -> str:
        return f"{self.model}.{self.tag}"

    @property
    def command(self) -> str:
        """The command that builds these weights into the cache."""
        return f"fusionzoo pretrain {self.name}"

    @property
    def compare_command(self) -> str:
        """The ``fusionzoo compare`` command whose seed-``recipe.seed`` run the recipe is."""
        words = ["fusionzoo compare --models", self.model]
        words += [f"--set '{k}={_json(v)}'" for k, v in self.options.items()]
        words += [f"--lr {self.recipe.lr:g}"] if self.recipe.lr != Recipe.lr else []
        words += [f"--{k.replace('_', '-')} {v}" for k, v in self.recipe.training.items()]
        return " ".join([*words, "--seeds", str(self.recipe.seed)])

    def deviations(self, measured: dict[str, Any]) -> list[str]:
        """Each recorded metric that ``measured`` misses by more than its tolerance, in words."""
        found = []
        for key, expected in self.metrics.items():
            value = measured.get(key)
            allowed = self.tolerance.get(key, 0.0)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or abs(value - expected) > allowed:
                found.append(f"{key} {value} against the recorded {expected} +- {allowed}")
        return found

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "tag": self.tag, "options": dict(self.options),
                "recipe": self.recipe.to_json(), "metrics": dict(self.metrics), "tolerance": dict(self.tolerance),
                "num_params": self.num_params, "measured": self.measured, "command": self.command}


_WEIGHTS: dict[str, Weights] = {}


def register_weights(weights: Weights) -> Weights:
    """Add ``weights`` to the catalogue; a name already there is a ``ValueError``."""
    if weights.name in _WEIGHTS:
        raise ValueError(f"weights {weights.name!r} are already in the catalogue")
    _WEIGHTS[weights.name] = weights
    return weights


def list_weights(pattern: str | None = None) -> list[str]:
    """Sorted names (``MODEL.TAG``) of catalogued weights, filtered by the glob ``pattern``
    (``"matmul.*"``, ``"*.cubes"``). Whether each is built here: ``fusionzoo.weights.is_built``."""
    return sorted(n for n in _WEIGHTS if pattern is None or fnmatch.fnmatchcase(n, pattern))


def get_weights(name: str, tag: str | None = None) -> Weights:
    """The entry ``name`` (``"matmul.cubes"``), or of model ``name`` and ``tag``; ``KeyError``
    listing the catalogue and the closest name when there is none."""
    key = name if tag is None else f"{name}.{tag}"
    try:
        return _WEIGHTS[key]
    except KeyError:
        raise unknown_name("weights", key, _WEIGHTS) from None


def catalog_table() -> str:
    """The catalogue as a Markdown table (docs/weights.md holds it; a test keeps them equal)."""
    rows = ["| weights | model options | parameters | best valid MSE (seed 0) | tolerance | built by |", "|---|---|---|---|---|---|"]
    for name in list_weights():
        w = _WEIGHTS[name]
        options = ", ".join(f"`{k}={_json(v)}`" for k, v in w.options.items()) or "as registered"
        rows.append(f"| `{name}` | {options} | {w.num_params:,} | {w.metrics['valid_mse']:.3f} | "
                    f"± {w.tolerance['valid_mse']:.3f} | `{w.command}` |")
    return "\n".join(rows)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _tolerance(figure: float, seed_std: float) -> float:
    """The larger of 3 x the seed spread and 5% of the figure, rounded up to 0.001 (see the module)."""
    return math.ceil(max(3 * seed_std, 0.05 * figure) * 1000) / 1000


# (model, tag, options, parameters, best valid MSE of seed 0, sample std over seeds 0-2): every
# figure is docs/leaderboard.md's, a run of exactly the recipe, seed 0.
_COURSE = "the course's {} model, trained by the course's protocol on the default cubes scene"
for _model, _tag, _options, _params, _mse, _std, _what in (
    ("rgb", "cubes", {}, 13_129_159, 2.058, 0.020, _COURSE.format("camera-only")),
    ("lidar", "cubes", {}, 13_129_159, 5.857, 0.010, _COURSE.format("LiDAR-only")),
    ("early", "cubes", {}, 13_130_959, 5.871, 0.026, _COURSE.format("early-fusion")),
    ("late", "cubes", {}, 26_260_847, 1.068, 0.089, _COURSE.format("late-fusion")),
    ("concat", "cubes", {}, 13_016_659, 0.549, 0.044, _COURSE.format("intermediate (concatenation) fusion")),
    ("matmul", "cubes", {}, 6_616_659, 0.369, 0.015, _COURSE.format("intermediate (matrix product) fusion")),
    ("bilinear", "cubes_norm", {"feature_norm": True, "hidden": [996, 100]}, 6_610_483, 0.224, 0.015,
     "low-rank bilinear fusion with normalised features on matmul's parameter budget, the leaderboard's best "
     "under the course's protocol"),
    # The same configuration under its registered name: built and seeded exactly as the entry above
    # (tests/models/test_named_winners.py), so the same recipe trains the same weights.
    ("bilinear_fn", "cubes", {}, 6_610_483, 0.224, 0.015,
     "bilinear_fn (bilinear with normalised features on matmul's parameter budget, the leaderboard's best under "
     "the course's protocol), trained by the course's protocol on the default cubes scene"),
):
    register_weights(Weights(_model, _tag, _what, _params, {"valid_mse": _mse}, {"valid_mse": _tolerance(_mse, _std)},
                             options=_options))

# The regularised recipe (issue #24; docs/leaderboard.md, "Regularised recipes"): the winner trained
# with mirrored samples and a cosine decay from 3e-4, the course's protocol otherwise.
register_weights(Weights(
    "bilinear_fn", "cubes_mirror", "bilinear_fn trained with mirrored samples (p 0.5) and a cosine decay of the rate "
    "from 3e-4 after a 1-epoch warm-up, the course's protocol otherwise (20 epochs, batch 32, default cubes scene)",
    6_610_483, {"valid_mse": 0.159}, {"valid_mse": _tolerance(0.159, 0.004)},  # seeds 0-2: 0.159, 0.151, 0.155
    recipe=Recipe(lr=3e-4, training={"mirror": 0.5, "schedule": "cosine", "warmup": 1.0}),
    measured="docs/leaderboard.md#regularised-recipes-issue-24",
))
