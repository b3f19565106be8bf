"""`aam predict`: a trained model + a table -> TSV of predictions in original units."""

from __future__ import annotations

import argparse
from pathlib import Path

from aam.errors import UserError

HELP = "predict targets for new samples with a trained model"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("predict", help=HELP, description=HELP.capitalize() + ".")
    parser.add_argument("--model", required=True,
                        help="model.pt (or last.pt) written by `aam train`, or an `aam cv` output folder (its fold "
                             "models' predictions are averaged: an ensemble)")
    parser.add_argument("--table", required=True, help="feature table: BIOM or QIIME 2 .qza")
    parser.add_argument("--sequences", help="FASTA or rep-seqs .qza, when feature IDs are not DNA")
    parser.add_argument("--metadata", help="metadata TSV; needed when the model uses categorical columns")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda (default: auto)")
    parser.add_argument("--batch-size", type=int, help="samples per batch (default: the training batch size)")
    parser.add_argument("--output", required=True, help="TSV to write: sample_id, then one column per target")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aam.crossval.ensemble import predict_ensemble
    from aam.crossval.run import is_cv_dir
    from aam.evaluation import predict
    from aam.evaluation.outputs import write_tsv

    output = Path(args.output)
    if output.exists() and not args.overwrite:
        raise UserError(f"--output {output} exists: pass --overwrite or choose another file")
    if args.batch_size is not None and args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1; got {args.batch_size}")
    options = (args.table, args.sequences, args.metadata, args.device, args.batch_size)
    if is_cv_dir(args.model):
        frame, n_models = predict_ensemble(args.model, *options)
        print(f"averaged the predictions of {n_models} fold models of {args.model} (an ensemble)")
    else:
        frame = predict(args.model, *options)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_tsv(output, frame)
    print(f"wrote {len(frame)} predictions to {output}")
    return 0
