"""The ``fusionzoo`` command line: list, info, pretrain, generate, train, eval, compare, robustness, show, export."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import registry
from ._deprecated import REMOVED_IN
from .experiments.report import model_table
from .training import distributed

log = logging.getLogger("fusionzoo")


def _parse_value(key: str, text: str) -> Any:
    """The value of ``--set KEY=TEXT``: ``text`` as JSON, or as a string when it is a bare word
    (``--set fusion=gated``). Text that looks like JSON (``[``, ``{`` or ``"`` first) but does not
    parse raises ``ValueError``, so ``[32,64`` never reaches a model as a string."""
    try:
        return json.loads(text)
    except ValueError as error:
        if text.lstrip()[:1] in ("[", "{", '"'):
            raise ValueError(f"--set {key}={text}: the value looks like JSON but does not parse ({error}); write "
                             f"it as JSON and quote the pair for the shell, e.g. --set '{key}=[32,64,128]'") from None
        return text


def _options(pairs: Sequence[str]) -> dict[str, Any]:
    """``--set KEY=VALUE`` pairs as model options (values parsed by ``_parse_value``), each checked
    against the type of that option's default in the registered models that take it."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        key = key.replace("-", "_")
        options[key] = _parse_value(key, value)
        defaults = [d[key] for d in (registry.get_spec(n).defaults() for n in registry.list_models()) if key in d]
        # Unknown options are the registry's to refuse, listing what the model takes.
        if defaults and not any(registry.fits_default(options[key], default) for default in defaults):
            raise ValueError(f"--set {key}={value}: {registry.type_error(key, options[key], defaults[0])}")
    return options


def _cmd_list(args: argparse.Namespace) -> int:
    names = registry.list_models(args.pattern or None)
    print(" ".join(names) if args.names else model_table(names, markdown=args.markdown))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    if args.model in registry.list_models() or not Path(args.model).exists():
        print(registry.info(args.model))
    else:
        from .weights import read_record

        print(read_record(args.model))
    return 0


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from .weights import get_weights
    from .weights.catalog import catalog_table

    if args.list or not args.weights:
        print(catalog_table())
        return 0
    from .experiments import pretrain

    built = pretrain(args.weights, device=args.device, progress=False if args.no_progress else None, force=args.force,
                     scene_dir=args.scene_dir)
    entry = get_weights(args.weights)
    if built.deviations is None:
        print(f"{entry.name} is already built in {built.folder} (--force builds it again)")
    else:
        verdict = "within the catalogue's tolerance" if not built.deviations else "OUTSIDE the tolerance: " + "; ".join(built.deviations)
        print(f"{entry.name}: best valid MSE {built.metrics.get('valid_mse', float('nan')):.4f} at epoch "
              f"{built.metrics.get('epoch')} (catalogue: {entry.metrics['valid_mse']} +- {entry.tolerance['valid_mse']}, "
              f"{verdict}); stored in {built.folder}")
    print(f"load it with: fusionzoo.create({entry.model!r}, weights={entry.tag!r})")
    return 0


def _scene_knobs(args: argparse.Namespace) -> dict[str, Any]:
    from .sim.scenes import SceneConfig

    knobs = {f.name: getattr(args, f.name) for f in dataclasses.fields(SceneConfig) if getattr(args, f.name, None) is not None}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in knobs.items()}


def _cmd_generate(args: argparse.Namespace) -> int:
    from .sim.scenes import generate_scenes

    root = generate_scenes(args.folder, overwrite=args.overwrite, progress=not args.no_progress, workers=args.workers,
                           **_scene_knobs(args))
    print(f"dataset ready in {root}")
    return 0


def _require_folder(path: str, what: str) -> Path:
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} {folder} does not exist or is not a folder")
    return folder


def _fit_options(args: argparse.Namespace) -> dict[str, Any]:
    """``fit``'s options from the training flags; an unset ``--lr`` leaves ``fit``'s (the course's)."""
    options = {
        "batch_size": args.batch_size,
        "device": args.device,
        "precision": args.precision,
        "progress": False if args.no_progress else None,
        "keep_state": args.keep_state,
        "modality_dropout": args.modality_dropout,
        "weight_decay": args.weight_decay,
        "mirror": args.mirror,
        "schedule": args.schedule,
        "warmup": args.warmup,
        "ema": args.ema,
    }
    return options if args.lr is None else {**options, "lr": args.lr}


def _cmd_train(args: argparse.Namespace) -> int:
    import torch

    from .data import course_splits
    from .factory import create
    from .training import fit
    from .training.rundir import RunFolder
    from .weights import freeze, load_weights

    # Under torchrun every process runs this command; rank 0 alone reports and writes.
    main = distributed.is_main_process()
    train, valid = course_splits(_require_folder(args.data, "--data"), image_size=args.image_size, memory=args.memory)
    torch.manual_seed(args.seed)
    # The model is built at the size the data are read at, unless --set image_size=... says otherwise.
    size = {"image_size": args.image_size} if "image_size" in registry.get_spec(args.model).defaults() else {}
    model = create(args.model, **{**size, **_options(args.set)})
    if args.init:
        report = load_weights(model, args.init)
        if main:
            print(report)
    if args.freeze:
        freeze(model, *args.freeze)
    out = Path(args.out or f"runs/{args.model}")
    resume = out if args.resume else None
    history = fit(model, train, valid, epochs=args.epochs, seed=args.seed, checkpoint_dir=out, resume=resume, **_fit_options(args))
    if not main:
        return 0
    best = history.epochs[history.best_epoch - 1]
    run = RunFolder(out)
    kept = f"; the last epoch's in {run.last} and the state to continue in {run.state}" if args.keep_state else ""
    print(f"{args.model}: best valid MSE {best.valid_loss:.4f} at epoch {history.best_epoch}; "
          f"final {history.epochs[-1].valid_loss:.4f}; best weights in {run.best}{kept}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    import math

    from .data import ReplicatorDataset, course_splits
    from .training import evaluate
    from .weights import load

    model = load(args.checkpoint)
    size = getattr(model, "image_size", 64)
    folder = _require_folder(args.data, "--data")
    if args.split == "all":
        samples = ReplicatorDataset(folder, image_size=size, memory=args.memory)
    else:
        train, valid = course_splits(folder, image_size=size, memory=args.memory)
        samples = valid if args.split == "valid" else train
    result = dataclasses.asdict(evaluate(model, samples, device=args.device, batch_size=args.batch_size))
    # JSON has no NaN or infinity: such a figure prints as null, and "non_finite" keeps its value.
    non_finite = {k: repr(v) for k, v in result.items() if isinstance(v, float) and not math.isfinite(v)}
    report = {"checkpoint": str(args.checkpoint), "split": args.split, **result, **dict.fromkeys(non_finite)}
    if non_finite:
        report["non_finite"] = non_finite
        log.warning("%s: on these samples %s; JSON has no such numbers, so they print as null, their values under "
                    '"non_finite" (the model\'s outputs overflow or are NaN)', args.checkpoint,
                    " and ".join(f"{k} is {v}" for k, v in non_finite.items()))
    print(json.dumps(report, indent=2, allow_nan=False))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from .data import course_splits
    from .experiments import (PRESETS, best_runs, compare, format_table, plot_curves, write_results_csv,
                              write_results_markdown)
    from .sim import generate_scenes

    preset = PRESETS["quick" if args.quick else "full"]
    epochs = args.epochs or preset.epochs
    # Under torchrun every process runs this command: one process group serves every model's fit.
    group = distributed.current()
    owns_group = distributed.start(group, distributed.local_device(args.device, group))
    try:
        # The main process goes first: it may generate the scene, and it writes the dataset cache
        # that the others then read.
        if not group.is_main:
            group.barrier()
        if args.data:
            folder = _require_folder(args.data, "--data")
        else:
            samples = args.samples or preset.samples
            folder = generate_scenes(args.scene_dir or f"data/cubes-{samples}", samples=samples,
                                     progress=group.is_main and not args.no_progress)
        train, valid = course_splits(folder, image_size=args.image_size, memory=args.memory)
        if group.is_main:
            group.barrier()
        fit_options = {"lr": preset.lr, **_fit_options(args)}
        log.info("data: %s (%d train, %d valid samples); %d epochs, lr %g", folder, len(train), len(valid), epochs,
                 fit_options["lr"])
        out = Path(args.out)
        results, histories = compare(
            train, valid, args.models, epochs=epochs, seeds=args.seeds, out=out, model_options=_options(args.set),
            **fit_options,
        )
    finally:
        if owns_group:
            distributed.stop()
    if not group.is_main:
        return 0
    print(format_table(results))
    write_results_csv(results, out / "results.csv")
    write_results_markdown(results, out / "results.md")
    plot = None if args.no_plot else plot_curves(histories, out / "curves.png")
    print(f"results: {out / 'results.csv'} and, as a Markdown table, {out / 'results.md'}; "
          f"per-epoch histories and best checkpoints: {out}/MODEL/seedN/")
    print("best weights of each model: " + ", ".join(f"{r.model} {r.checkpoint}" for r in best_runs(results).values()))
    if plot:
        print(f"validation curves: {plot}")
    elif not args.no_plot:
        print('plot skipped: matplotlib is not installed (pip install "fusionzoo[plot]")')
    if args.robustness:
        from .experiments import robustness_of_runs

        _report_robustness(robustness_of_runs(results, valid, device=args.device, seed=0), out, args.no_plot)
    return 0


def _report_robustness(results: Sequence[Any], out: Path, no_plot: bool) -> None:
    """Print the robustness tables; write robustness.csv, robustness.md and robustness.png in ``out``."""
    from .experiments import format_robustness, plot_robustness, write_robustness_csv, write_robustness_markdown

    print(format_robustness(results))
    out.mkdir(parents=True, exist_ok=True)
    write_robustness_csv(results, out / "robustness.csv")
    write_robustness_markdown(results, out / "robustness.md")
    print(f"robustness: {out / 'robustness.csv'} (MSE per model, corruption and severity) and, as Markdown tables, "
          f"{out / 'robustness.md'}; relative robustness = clean MSE / corrupted MSE (1.0: unaffected)")
    plot = None if no_plot else plot_robustness(results, out / "robustness.png")
    if plot:
        print(f"error against severity: {plot}")
    elif not no_plot:
        print('plot skipped: matplotlib is not installed (pip install "fusionzoo[plot]")')


def _cmd_robustness(args: argparse.Namespace) -> int:
    from .data import course_splits
    from .experiments import evaluate_robustness
    from .experiments.robustness import checkpoint_of, labels_of, load_labelled

    paths = [checkpoint_of(p) for p in args.checkpoints]
    models = load_labelled(paths, args.labels or labels_of(paths))
    sizes = {label: getattr(m, "image_size", 64) for (label, _), m in models.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"checkpoints: the models read images of different sizes ({sizes}); evaluate each size "
                         "in its own call")
    _, valid = course_splits(_require_folder(args.data, "--data"), image_size=next(iter(sizes.values())))
    bad = [s for s in args.severities if not 1 <= s <= 5]
    if bad:
        raise ValueError(f"--severities: {bad} outside 1 to 5; give severities from 1 (mild) to 5 (worst)")
    results = evaluate_robustness(models, valid, corruptions=args.corruptions, severities=args.severities,
                                  seed=args.seed, device=args.device, batch_size=args.batch_size)
    _report_robustness(results, Path(args.out), args.no_plot)
    return 0


def _cmd_show_predictions(args: argparse.Namespace) -> int:
    from .errors import DatasetError
    from .viz import animate_predictions, plot_predictions, plot_sensor_predictions, save_figure, scene_config
    from .viz.predictions import split_predictions
    from .weights import load

    model = load(args.checkpoint)
    folder = _require_folder(args.data, "--data")
    predictions, samples, first = split_predictions(model, folder, split=args.split, count=args.samples,
                                                    device=args.device)
    config = scene_config(folder)
    out = Path(args.out)
    if args.view == "sensors":
        if config is None:
            raise DatasetError(f"{folder}: has no scene.json, the generator's record of where the sensors stood "
                               "(the course's own data do not say), so nothing can be projected onto them; "
                               "draw the 3-D picture instead (--view 3d)")
        save_figure(plot_sensor_predictions(predictions, samples, config, first_index=first), out)
    elif out.suffix.lower() == ".gif":
        animate_predictions(predictions, out, frames=args.frames)
    else:
        save_figure(plot_predictions(predictions), out)
    print(f"wrote {out}: {len(predictions.indices)} {args.split} samples, mean error {predictions.errors.mean():.3f}")
    if config is None:
        print(f"{folder} has no scene.json (sensor placement): the 3-D picture is all that can be drawn for it")
    return 0


def _cmd_show_data(args: argparse.Namespace) -> int:
    from .data import ReplicatorDataset
    from .viz import plot_contact_sheet, plot_sample, save_figure, scene_config

    folder = _require_folder(args.folder, "FOLDER")
    samples = ReplicatorDataset(folder, image_size=args.image_size)
    if args.grid:
        figure = plot_contact_sheet(samples, args.grid, start=args.index)
    else:
        figure = plot_sample(samples, args.index, scene_config(folder))
    print(f"wrote {save_figure(figure, args.out)}")
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from .deploy import FORMATS, TOLERANCE, OnnxModel, export, max_difference
    from .errors import ExportError
    from .weights import load

    model = load(args.checkpoint)
    out = Path(args.out if args.out else Path(args.checkpoint).with_suffix(FORMATS[args.format or "onnx"]))
    path = export(model, out, format=args.format)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB; the batch axis is dynamic)")
    if path.suffix.lower() == ".onnx" and not args.no_check:
        difference = max_difference(model, OnnxModel(path))
        if difference > TOLERANCE:
            raise ExportError(f"{path}: onnxruntime's outputs differ from PyTorch's by {difference:.2e}, more than "
                              f"{TOLERANCE:g}; report it with the model's name and torch's version")
        print(f"onnxruntime matches PyTorch on a random batch: max abs difference {difference:.1e} (tolerance {TOLERANCE:g})")
    return 0


class _DeprecatedFlag(argparse.Action):
    """A flag that does nothing any more but say so: what it asked for is the default now."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        warnings.warn(f"{option_string} is deprecated and will be removed in fusionzoo {REMOVED_IN}: a finished run "
                      "keeps only its best checkpoint and history by default now (--keep-state keeps the rest)",
                      DeprecationWarning, stacklevel=2)


def _add_memory_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--memory", choices=["auto", "map", "load"],
                   help="how the samples are held: map (read through a memory map of the dataset's cache: one copy "
                        "per machine, larger than memory if need be), load (a copy in each process), auto (load what "
                        "fits comfortably, map the rest; the default, or $FUSIONZOO_MEMORY)")


def _add_training_flags(p: argparse.ArgumentParser, lr_help: str = "the course's 1e-4") -> None:
    _add_memory_flag(p)
    p.add_argument("--lr", type=float, help=f"Adam learning rate (default: {lr_help})")
    p.add_argument("--batch-size", type=int, default=32,
                   help="training batch size per process (default: the course's 32; under torchrun the global batch is "
                        "this times the number of processes, and --lr is not rescaled)")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"], help="training precision (default fp32)")
    p.add_argument("--image-size", type=int, default=64,
                   help="images are resized to this size when read, and the model is built at it unless --set "
                        "image_size=... says otherwise (default 64)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="model option override, e.g. --set num_outputs=3 --set 'widths=[32,64,128]' (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--keep-state", action="store_true",
                   help="keep a finished run's state.safetensors and last.safetensors (over two thirds of its folder), "
                        "so that it can be continued with more epochs; without it a finished run keeps its best "
                        "checkpoint and history, and an interrupted one still resumes")
    # Deleting the state is the default now; the old flag still parses, with a warning, until 0.3.
    p.add_argument("--drop-state", action=_DeprecatedFlag, nargs=0, help=argparse.SUPPRESS)
    p.add_argument("--modality-dropout", type=float, default=0.0, metavar="P",
                   help="probability that a training sample loses its camera or its LiDAR input (never both), "
                        "filled as an absent sensor is (default 0: off, the course's protocol; see docs/robustness.md)")
    # The regularisers and schedules of docs/training.md, each off by default; a head dropout is a
    # model option (--set head_dropout=P).
    p.add_argument("--weight-decay", type=float, default=0.0, metavar="WD",
                   help="AdamW's decoupled weight decay on the weights (biases and norms spared) instead of Adam "
                        "(default 0: off, the course's Adam)")
    p.add_argument("--mirror", type=float, default=0.0, metavar="P",
                   help="probability that a training sample is replaced by its left-right mirror image, labels "
                        "included; only for generated scenes whose sensors make it exact (default 0: off)")
    p.add_argument("--schedule", default="constant", choices=["constant", "cosine", "onecycle"],
                   help="learning rate of every step, --lr its peak (default constant, the course's)")
    p.add_argument("--warmup", type=float, default=0.0, metavar="EPOCHS",
                   help="epochs of linear learning-rate warm-up (onecycle: its rise; default 0: none)")
    p.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                   help="decay of a moving average of the weights (e.g. 0.999) that validation and the checkpoints "
                        "hold (default 0: off)")


def _add_scene_flags(p: argparse.ArgumentParser) -> None:
    from .sim.scenes import SceneConfig

    for f in dataclasses.fields(SceneConfig):
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata.get('help', '')} (default: {f.default})"
        if isinstance(f.default, tuple):
            p.add_argument(flag, dest=f.name, nargs=len(f.default), type=type(f.default[0]), help=help_text)
        else:
            p.add_argument(flag, dest=f.name, type=type(f.default), help=help_text)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, allow_abbrev=False, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand (``--help`` on each lists all its options)."""
    # No abbreviations: "--epoch" must be an error, not a silent "--epochs".
    parser = argparse.ArgumentParser(
        prog="fusionzoo", description="RGB + LiDAR fusion model zoo (NVIDIA DLI lab 02a as a library).", allow_abbrev=False
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("list", help="list registered models", description="List registered models with their parameter counts.")
    p.add_argument("pattern", nargs="*", help="glob patterns to filter names (e.g. 'c*')")
    shown = p.add_mutually_exclusive_group()
    shown.add_argument("--markdown", action="store_true", help="print a Markdown table")
    shown.add_argument("--names", action="store_true", help="print the names only, on one line (for scripts)")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("info", help="describe one model, or a trained file's record",
                       description="Describe one model (parameters, inputs, options, source), or print the record of "
                                   "a checkpoint, training state or pretrained folder: metrics, recipe, input contract.")
    p.add_argument("model", metavar="MODEL_OR_PATH", help="registered model name, or a .safetensors file or pretrained folder")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("pretrain", help="build catalogued weights by their recipe",
                       description="Build the catalogued weights MODEL.TAG into the cache (FUSIONZOO_HOME): generate "
                                   "the recipe's scene, train by the recipe (resumable: run it again after an "
                                   "interruption), compare the result with the catalogue's figures and store it, so "
                                   "that fusionzoo.create(MODEL, weights=TAG) loads it. Without MODEL.TAG (or with "
                                   "--list), print the catalogue. See docs/weights.md.")
    p.add_argument("weights", nargs="?", metavar="MODEL.TAG", help="catalogued weights, e.g. matmul.cubes")
    p.add_argument("--list", action="store_true", help="print the catalogue and exit")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    p.add_argument("--force", action="store_true", help="build again from the first epoch, even if already built")
    p.add_argument("--scene-dir", help="generate (or reuse) the recipe's scene here (default: in the cache)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_cmd_pretrain)

    p = sub.add_parser("generate", help="generate a dataset of random scenes",
                       description="Render random scenes (three cubes by default) into FOLDER in the course's layout.")
    p.add_argument("folder", help="output folder (refused if it holds anything else, unless --overwrite replaces a dataset)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier dataset in FOLDER")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--workers", type=int, metavar="N",
                   help="processes that render (default: one per CPU core); the files are the same for any N")
    _add_scene_flags(p)
    p.set_defaults(func=_cmd_generate)

    p = sub.add_parser("train", help="train one model", description="Train MODEL on the course's split of --data.")
    p.add_argument("model", help="registered model name")
    p.add_argument("--data", required=True, help="dataset folder in the course's layout")
    p.add_argument("--epochs", type=int, default=20, help="epochs (default: the course's 20)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation and the shuffle")
    p.add_argument("--out", help="run folder for history and checkpoints (default runs/MODEL)")
    p.add_argument("--resume", action="store_true", help="continue the run stored in --out")
    p.add_argument("--init", metavar="CHECKPOINT", help="start from the weights of CHECKPOINT that fit (fine-tuning)")
    p.add_argument("--freeze", nargs="+", metavar="PART", help="parts not to train, e.g. encoders, rgb, lidar, head")
    _add_training_flags(p)
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint", description="Validation MSE and position error of CHECKPOINT on --data.")
    p.add_argument("checkpoint", help="a .safetensors model checkpoint")
    p.add_argument("--data", required=True, help="dataset folder in the course's layout")
    p.add_argument("--split", choices=["valid", "train", "all"], default="valid", help="which samples (default: the course's validation split)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--batch-size", type=int, help="evaluation batch size (default: 32 on the CPU, 256 elsewhere)")
    _add_memory_flag(p)
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("compare", help="reproduce the notebook's comparison",
                       description="Train several models under one protocol (the course's by default), print a table, "
                                   "write results.csv, results.md, histories, checkpoints and curves.png. Finished runs in --out are "
                                   "reused, so rerunning a finished comparison only redraws its table.")
    p.add_argument("--data", help="dataset folder; default: generate the built-in cubes scene")
    p.add_argument("--scene-dir", help="where to generate the default scene (default data/cubes-SAMPLES)")
    p.add_argument("--samples", type=int, help="samples of the generated scene (default: the preset's)")
    p.add_argument("--models", nargs="+", default=list(_default_models()), help="models to compare (default: %(default)s)")
    p.add_argument("--epochs", type=int, help="epochs (default: the preset's)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0], help="one run per seed; several give mean and spread")
    p.add_argument("--quick", action="store_true", help="the laptop preset: fewer samples and epochs (see docs/benchmarks.md)")
    p.add_argument("--out", default="runs/compare", help="output folder (default runs/compare)")
    p.add_argument("--no-plot", action="store_true", help="do not draw curves.png")
    p.add_argument("--robustness", action="store_true",
                   help="then evaluate every run under each sensor corruption (docs/robustness.md): print the table, "
                        "write robustness.csv, robustness.md and robustness.png in --out")
    _add_training_flags(p, lr_help="the course's 1e-4; 3e-4 with --quick")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("robustness", help="evaluate checkpoints under sensor corruptions",
                       description="Validation MSE of each checkpoint on --data under every sensor corruption at "
                                   "severities 1 to 5 (docs/robustness.md), its relative robustness (clean MSE / "
                                   "corrupted MSE) and the mean over corruptions; writes robustness.csv, robustness.md "
                                   "and robustness.png in --out.")
    p.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT_OR_RUN_FOLDER",
                   help=".safetensors checkpoints, or run folders (their best.safetensors)")
    p.add_argument("--data", required=True, help="dataset folder in the course's layout (its validation split is used)")
    p.add_argument("--out", required=True, help="folder for robustness.csv, robustness.md and robustness.png")
    p.add_argument("--corruptions", nargs="+", metavar="NAME",
                   help="corruptions to apply (default: all; see fusionzoo.robustness.list_corruptions())")
    p.add_argument("--labels", nargs="+", metavar="LABEL", help="one name per checkpoint for the tables (default: "
                   "the shortest distinct ends of their paths); a name given to several checkpoints stands for one "
                   "model trained with several seeds (each read from its record): its rows give their mean and spread")
    p.add_argument("--severities", nargs="+", type=int, default=[1, 2, 3, 4, 5], metavar="S",
                   help="severities to apply, 1 to 5 (default: all five)")
    p.add_argument("--seed", type=int, default=0, help="seed of the corruptions' random draws (default 0)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--batch-size", type=int, help="evaluation batch size (default: 32 on the CPU, 256 elsewhere)")
    p.add_argument("--no-plot", action="store_true", help="do not draw robustness.png")
    p.set_defaults(func=_cmd_robustness)

    p = sub.add_parser("show", help="draw pictures of predictions or of a dataset",
                       description="Draw a picture: a checkpoint's predictions, or a dataset's samples.")
    show = p.add_subparsers(dest="picture", required=True, metavar="PICTURE", parser_class=_Parser)
    p = show.add_parser("predictions", help="true and predicted centres, in 3-D or on the sensors",
                        description="True and predicted centres of --samples samples: in the scene's 3-D axes (.png, "
                                    "or a turning .gif), or projected onto the camera image and the LiDAR grid "
                                    "(--view sensors; needs the generator's scene.json).")
    p.add_argument("checkpoint", help="a .safetensors model checkpoint")
    p.add_argument("--data", required=True, help="dataset folder in the course's layout")
    p.add_argument("--out", required=True, help="picture file: .png, .svg, .pdf, or .gif (animated, 3-D view only)")
    p.add_argument("--view", choices=["3d", "sensors"], default="3d", help="3-D scene axes or the sensors (default 3d)")
    p.add_argument("--samples", type=int, default=4, help="samples drawn, the split's first (default 4)")
    p.add_argument("--split", choices=["valid", "train", "all"], default="valid",
                   help="which samples (default: the course's validation split)")
    p.add_argument("--frames", type=int, default=36, help="frames of a .gif, one turn around the scene (default 36)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.set_defaults(func=_cmd_show_predictions)
    p = show.add_parser("data", help="browse a dataset's samples",
                        description="One sample's RGB image, LiDAR depth, X/Y/Z channels, validity mask and positions "
                                    "(--index), or a contact sheet of several (--grid).")
    p.add_argument("folder", help="dataset folder in the course's layout")
    p.add_argument("--out", required=True, help="picture file: .png, .svg or .pdf")
    p.add_argument("--index", type=int, default=0, help="the sample (or the contact sheet's first) (default 0)")
    p.add_argument("--grid", type=int, metavar="N", help="a contact sheet of N samples instead of one sample")
    p.add_argument("--image-size", type=int, default=64, help="images are resized to this size when read (default 64)")
    p.set_defaults(func=_cmd_show_data)

    p = sub.add_parser("export", help="write a checkpoint as ONNX or a torch.export program",
                       description="Write CHECKPOINT's model as one file that runs without fusionzoo, with a dynamic "
                                   "batch axis; an ONNX file is then checked against PyTorch with onnxruntime.")
    p.add_argument("checkpoint", help="a .safetensors model checkpoint")
    p.add_argument("--format", choices=["onnx", "exported-program"],
                   help="default: from --out's extension (.onnx, .pt2); onnx when --out is not given")
    p.add_argument("--out", help="output file (default: the checkpoint's name with .onnx or .pt2)")
    p.add_argument("--no-check", action="store_true", help="skip comparing onnxruntime's outputs with PyTorch's")
    p.set_defaults(func=_cmd_export)
    return parser


def _default_models() -> tuple[str, ...]:
    from .experiments import COURSE_MODELS

    return COURSE_MODELS


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code. Errors print one line unless ``--debug``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(message)s")
    try:
        if not args.debug and not distributed.is_main_process():
            logging.getLogger().setLevel(logging.WARNING)  # under torchrun, one process reports
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("fusionzoo: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001  (the CLI's contract: one line, not a traceback)
        if args.debug:
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"fusionzoo {args.command}: error: {(str(message).splitlines() or [type(err).__name__])[0]}", file=sys.stderr)
        return 1
