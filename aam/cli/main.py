"""`aam` entry point: builds the sub-command parsers and maps user errors to exit status 2.

Under torchrun, rank 0 reports the errors every rank shares; another rank's own failure is one line
naming the rank (torchrun then stops the other processes).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from aam import __version__
from aam.errors import UserError
from aam.runtime.distributed import ReportedElsewhere, is_main_process, rank

# Each module exposes `add_parser(subparsers)` and `run(args) -> int`.
COMMANDS = ("inspect", "simulate", "pretrain", "train", "cv", "predict", "demo", "baseline", "explain")


class Parser(argparse.ArgumentParser):
    """Errors print one short usage line and the message, not the whole usage of every flag."""

    def error(self, message: str):
        command = "COMMAND " if self._subparsers is not None else ""
        self.exit(2, f"usage: {self.prog} {command}[options] (--help lists them)\n{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
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
    except ReportedElsewhere:
        return 2
    except UserError as exc:
        print(f"aam {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if is_main_process():
            print(f"aam {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if is_main_process():
            raise
        reason = str(exc).splitlines()[0] if str(exc) else ""
        print(f"aam {args.command}: rank {rank()}: {type(exc).__name__}: {reason}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
