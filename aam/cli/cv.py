"""`aam cv`: parse flags into the run and CV config dataclasses and call `aam.crossval.cross_validate`."""

from __future__ import annotations

import argparse

from aam.cli.flags import (DATA_FLAGS, LOSS_FLAGS, MODEL_FLAGS, TRAIN_FLAGS, add_flags, add_switches,
                           config_from_args, given_changes)
from aam.errors import UserError

HELP = "grouped k-fold cross-validation of AAM against a random forest and the mean, on the same folds"


# every flag of `aam train` but its --output-dir, which here names the cross-validation folder
TRAINING_FLAGS = [f for f in TRAIN_FLAGS if f[2] != "output_dir"]


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "cv", help=HELP,
        description=HELP.capitalize() + ". Each outer fold's test samples are never used for training, early "
                    "stopping or choosing the epoch: a grouped validation split (--test-size of the fold's "
                    "training part) does that. Fold models are kept: `aam predict --model <output dir>` "
                    "averages them.")
    add_flags(parser, [("data", DATA_FLAGS), ("model", MODEL_FLAGS), ("loss", LOSS_FLAGS),
                       ("training (each fold)", TRAINING_FLAGS)])
    group = parser.add_argument_group("cross-validation")
    group.add_argument("--output-dir", help="folder for the fold runs, cv_predictions.tsv, cv_metrics.json, "
                                            "cv_summary.tsv and plots")
    group.add_argument("--folds", type=int, default=5, help="outer folds; groups are never split (default: 5)")
    group.add_argument("--repeats", type=int, default=1, help="repetitions with new folds (default: 1)")
    group.add_argument("--trees", type=int, default=500, help="random-forest trees (default: 500)")
    group.add_argument("--ensemble", type=int, default=5,
                       help="AAM models per fold, each with its own validation split and seed; their predictions "
                            "are averaged (default: 5; 1 = one model per fold)")
    add_switches(group)
    group.add_argument("--no-progress", action="store_true", help="no progress bars")
    group.add_argument("--resume", action="store_true",
                       help="continue the cross-validation in --output-dir: finished folds are kept, the fold in "
                            "progress continues from its last.pt (same flags, or only --output-dir)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aam.crossval.report import format_summary
    from aam.crossval.run import CVConfig, cross_validate, resume_settings, with_saved_defaults

    if args.output_dir is None:
        raise UserError("give an output folder (--output-dir)")
    if args.trees < 1:
        raise UserError(f"--trees must be >= 1; got {args.trees}")
    if args.ensemble < 1:
        raise UserError(f"--ensemble must be >= 1; got {args.ensemble}")
    if args.resume and args.table is None:
        changes = {k: getattr(args, k) for k in ("device", "num_workers") if getattr(args, k) is not None}
        config, cv = resume_settings(args.output_dir, progress=not args.no_progress, **changes)
    else:
        flags = DATA_FLAGS + MODEL_FLAGS + LOSS_FLAGS + TRAINING_FLAGS
        config = config_from_args(args, flags).with_output_dir(args.output_dir)
        if args.resume:
            config = with_saved_defaults(config, args.output_dir, given_changes(args, flags))
        config = config.resolve()
        cv = CVConfig(folds=args.folds, repeats=args.repeats, trees=args.trees, ensemble=args.ensemble)
    result = cross_validate(config, cv, resume=args.resume)
    if result.interrupted_by is not None:
        print(f"stopped: {result.folds_run} fold(s) finished in this call; continue with "
              f"aam cv --resume --output-dir {args.output_dir}")
        return 128 + result.interrupted_by
    print(f"{cv.folds}-fold cross-validation x {cv.repeats}: out-of-fold test metrics (pooled over folds):")
    print("\n".join(format_summary(result.metrics, config.data.target_columns)))
    print(f"wrote {result.output_dir}/cv_predictions.tsv, cv_metrics.json, cv_summary.tsv; plots: "
          + ", ".join(str(p) for p in result.plots))
    print(f"fold models kept: `aam predict --model {result.output_dir}` averages them")
    return 0
