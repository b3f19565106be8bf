"""`aam` entry point: builds the sub-command parsers and maps user errors to exit status 2."""

from __future__ import annotations

import argparse
import importlib
import sys

from aam import __version__
from aam.errors import UserError

# Each module exposes `add_parser(subparsers)` and `run(args) -> int`.
COMMANDS = ("inspect", "simulate", "train", "cv", "predict", "demo", "baseline")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aam", description="Attention All Microbes: predict sample-level numbers from 16S amplicon data."
    )
    parser.add_argument("--version", action="version", version=f"aam {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"aam.cli.{name}").add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except UserError as exc:
        print(f"aam {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"aam {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
