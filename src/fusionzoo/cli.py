"""The ``fusionzoo`` command line: list, info, generate, train, eval, compare."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import registry
from .experiments.report import model_table
from .training import distributed

log = logging.getLogger("fusionzoo")


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _options(pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` pairs (values parsed as JSON where they parse, else kept as strings)."""
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects KEY=VALUE, got {pair!r}")
        options[key.replace("-", "_")] = _parse_value(value)
    return options


def _cmd_list(args: argparse.Namespace) -> int:
    names = registry.list_models(args.pattern or None)
    print(" ".join(names) if args.names else model_table(names, markdown=args.markdown))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    print(registry.info(args.model))
    return 0


def _scene_knobs(args: argparse.Namespace) -> dict[str, Any]:
    from .sim.scenes import SceneConfig

    knobs = {f.name: getattr(args, f.name) for f in dataclasses.fields(SceneConfig) if getattr(args, f.name, None) is not None}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in knobs.items()}


def _cmd_generate(args: argparse.Namespace) -> int:
    from .sim.scenes import generate_scenes

    root = generate_scenes(args.folder, overwrite=args.overwrite, progress=not args.no_progress, **_scene_knobs(args))
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
        "keep_state": not args.drop_state,
    }
    return options if args.lr is None else {**options, "lr": args.lr}


def _cmd_train(args: argparse.Namespace) -> int:
    import torch

    from .data import course_splits
    from .factory import create
    from .training import fit
    from .weights import freeze, load_weights, save

    # Under torchrun every process runs this command; rank 0 alone reports and writes.
    main = distributed.is_main_process()
    train, valid = course_splits(_require_folder(args.data, "--data"), image_size=args.image_size)
    torch.manual_seed(args.seed)
    model = create(args.model, **_options(args.set))
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
    save(model, out / "final.safetensors")
    print(f"{args.model}: best valid MSE {best.valid_loss:.4f} at epoch {history.best_epoch}; "
          f"final {history.epochs[-1].valid_loss:.4f}; checkpoints in {out}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from .data import ReplicatorDataset, course_splits
    from .training import evaluate
    from .weights import load

    model = load(args.checkpoint)
    size = getattr(model, "image_size", 64)
    folder = _require_folder(args.data, "--data")
    if args.split == "all":
        samples = ReplicatorDataset(folder, image_size=size)
    else:
        train, valid = course_splits(folder, image_size=size)
        samples = valid if args.split == "valid" else train
    result = evaluate(model, samples, device=args.device, batch_size=args.batch_size)
    print(json.dumps({"checkpoint": str(args.checkpoint), "split": args.split, **dataclasses.asdict(result)}, indent=2))
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from .data import course_splits
    from .experiments import PRESETS, compare, format_table, plot_curves, write_results_csv, write_results_markdown
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
        train, valid = course_splits(folder, image_size=args.image_size)
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
          f"per-epoch histories and checkpoints: {out}/MODEL/seedN/")
    if plot:
        print(f"validation curves: {plot}")
    elif not args.no_plot:
        print('plot skipped: matplotlib is not installed (pip install "fusionzoo[plot]")')
    return 0


def _add_training_flags(p: argparse.ArgumentParser, lr_help: str = "the course's 1e-4") -> None:
    p.add_argument("--lr", type=float, help=f"Adam learning rate (default: {lr_help})")
    p.add_argument("--batch-size", type=int, default=32,
                   help="training batch size per process (default: the course's 32; under torchrun the global batch is "
                        "this times the number of processes, and --lr is not rescaled)")
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"], help="training precision (default fp32)")
    p.add_argument("--image-size", type=int, default=64, help="images are resized to this size when read (default 64)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="model option override, e.g. --set num_outputs=3 --set 'widths=[32,64,128]' (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--drop-state", action="store_true",
                   help="delete a run's resumable state.safetensors once it finishes (over half of its folder); an "
                        "interrupted run still resumes, a finished one can then not be continued")


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

    p = sub.add_parser("info", help="describe one model", description="Describe one model: parameters, inputs, options, source.")
    p.add_argument("model", help="registered model name")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("generate", help="generate a dataset of random scenes",
                       description="Render random scenes (three cubes by default) into FOLDER in the course's layout.")
    p.add_argument("folder", help="output folder (refused if it holds anything else, unless --overwrite replaces a dataset)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier dataset in FOLDER")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
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
    _add_training_flags(p, lr_help="the course's 1e-4; 3e-4 with --quick")
    p.set_defaults(func=_cmd_compare)
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
        print(f"fusionzoo {args.command}: error: {str(message).splitlines()[0]}", file=sys.stderr)
        return 1
