"""`aam predict`: a trained model + a table -> TSV of predictions in original units."""

from __future__ import annotations

import argparse
from pathlib import Path

from aam.cli.flags import PREDICT_FLAGS, PREDICT_REQUIRED, add_command_flags, given_values
from aam.errors import UserError
from aam.evaluation.config import PredictConfig
from aam.paths import check_writable_file

HELP = "predict targets for new samples with a trained model"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("predict", help=HELP, description=HELP.capitalize() + ".")
    add_command_flags(parser, PREDICT_FLAGS, required=PREDICT_REQUIRED)
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aam.evaluation.models import model_paths, predict_ensemble
    from aam.evaluation.outputs import write_tsv

    config = PredictConfig(**given_values(args, PREDICT_FLAGS))
    output = Path(config.output)
    check_writable_file(output, "--output")
    if output.exists() and not args.overwrite:
        raise UserError(f"--output {output} exists: pass --overwrite or choose another file")
    if config.batch_size is not None and config.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1; got {config.batch_size}")
    paths = model_paths(config.model)
    frame = predict_ensemble(paths, config.table, config.sequences, config.metadata, config.device, config.batch_size)
    if paths != [Path(config.model)]:
        print(f"averaged the predictions of {len(paths)} fold models of {config.model} (an ensemble)")
    output.parent.mkdir(parents=True, exist_ok=True)
    write_tsv(output, frame)
    print(f"wrote {len(frame)} predictions to {output}")
    return 0
