"""`aam train`: parse flags into the run config dataclasses and call `aam.training.train`."""

from __future__ import annotations

import argparse
import signal

from aam.cli.flags import (DATA_FLAGS, LOSS_FLAGS, MODEL_FLAGS, TRAIN_FLAGS, add_flags, add_switches, config_from_args,
                           given_changes)
from aam.errors import UserError
from aam.runtime.distributed import is_main_process

HELP = "train a model on a table + metadata column(s)"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("train", help=HELP, description=HELP.capitalize() + ".")
    add_flags(parser, [("data", DATA_FLAGS), ("model", MODEL_FLAGS), ("loss", LOSS_FLAGS), ("training", TRAIN_FLAGS)])
    run_group = parser.add_argument_group("run")
    add_switches(run_group)
    run_group.add_argument("--no-progress", action="store_true", help="no progress bars")
    run_group.add_argument("--resume", action="store_true",
                           help="continue the run in --output-dir from its last.pt (same flags, or only --output-dir; "
                                "only --epochs, --patience, --device, --num-workers may change)")
    run_group.add_argument("--overwrite", action="store_true", help="replace a previous run in --output-dir")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aam.training import resume_config, train
    from aam.training.resume import with_checkpoint_defaults

    if args.resume and args.overwrite:
        raise UserError("--resume and --overwrite exclude each other")
    if args.resume and args.table is None:
        if args.output_dir is None:
            raise UserError("--resume needs --output-dir")
        config = resume_config(args.output_dir, given_changes(args), progress=not args.no_progress)
    else:
        config = config_from_args(args)
        if args.resume:
            config = with_checkpoint_defaults(config, args.output_dir, given_changes(args))
        config = config.resolve()
    result = train(config, resume=args.resume, overwrite=args.overwrite)
    if result.interrupted_by is not None:
        return 128 + result.interrupted_by  # shell convention: 130 for SIGINT, 143 for SIGTERM
    if is_main_process():
        print(result.summary())
    return 0


assert signal.SIGINT == 2 and signal.SIGTERM == 15  # the exit codes above follow these numbers
