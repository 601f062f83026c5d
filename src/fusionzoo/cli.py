"""The ``fusionzoo`` command line: list, info (more subcommands join as they land)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from . import registry

log = logging.getLogger("fusionzoo")


def model_table(names: Sequence[str]) -> str:
    """A fixed-width table of models: name, parameters, inputs, what each reproduces."""
    rows = [("model", "parameters", "inputs", "reproduces")]
    for name in names:
        i = registry.info(name)
        inputs = " + ".join(f"{k}{list(v)}" for k, v in i.inputs.items())
        rows.append((name, f"{i.num_params:,}", inputs, i.reproduces or "-"))
    widths = [max(len(r[c]) for r in rows) for c in range(3)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths)) + "  " + row[3] for row in rows
    )


def _cmd_list(args: argparse.Namespace) -> int:
    print(model_table(registry.list_models(args.pattern or None)))
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    print(registry.info(args.model))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fusionzoo", description="RGB + LiDAR fusion model zoo.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("list", help="list registered models", description="List registered models with their parameter counts.")
    p.add_argument("pattern", nargs="*", help="glob patterns to filter names (e.g. 'c*')")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("info", help="describe one model", description="Describe one model: parameters, inputs, options.")
    p.add_argument("model", help="registered model name")
    p.set_defaults(func=_cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code. Errors print one line unless ``--debug``."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.INFO, format="%(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("fusionzoo: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001  (the CLI's contract: one line, not a traceback)
        if args.debug:
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"fusionzoo {args.command}: error: {message}", file=sys.stderr)
        return 1
