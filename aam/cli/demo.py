"""`aam demo`: simulate a study, train a small model on CPU, print metrics and where the plots are."""

from __future__ import annotations

import argparse

HELP = "simulate a small study and train a small model on it (CPU, a few minutes)"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("demo", help=HELP, description=HELP.capitalize() + ".")
    parser.add_argument("--output-dir", default="aam-demo", help="folder for the data and the run (default: aam-demo)")
    parser.add_argument("--epochs", type=int, default=40, help="training epochs (default: 40)")
    parser.add_argument("--overwrite", action="store_true", help="replace a previous demo in --output-dir")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aam.errors import UserError
    from aam.training.demo import run_demo

    if args.epochs < 1:
        raise UserError(f"--epochs must be >= 1; got {args.epochs}")
    result = run_demo(args.output_dir, args.epochs, args.overwrite, progress=not args.no_progress)
    if result.interrupted_by is not None:
        return 128 + result.interrupted_by
    print(result.summary())
    return 0
