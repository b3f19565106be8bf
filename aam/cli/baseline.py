"""`aam baseline`: random forest (500 trees) on relative abundances, same split as an `aam train` run."""

from __future__ import annotations

import argparse
import dataclasses

from aam.cli.flags import DATA_FLAGS, add_flags
from aam.config import DataConfig

HELP = "random-forest baseline on the same split as a training run"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "baseline", help=HELP,
        description=HELP.capitalize() + ". With --train-dir, the table, targets and split of that run are "
                    "used (flags given here override its data settings); otherwise the split comes from "
                    "--seed/--test-size/--group-column like `aam train`.")
    parser.add_argument("--train-dir", help="an `aam train` output folder whose split to reuse")
    parser.add_argument("--output-dir", required=True, help="folder for metrics.json and val_predictions.tsv")
    parser.add_argument("--trees", type=int, default=500, help="trees per forest (default: 500)")
    parser.add_argument("--seed", type=int, default=42, help="split and forest seed (default: 42)")
    parser.add_argument("--n-jobs", type=int, default=-1, help="parallel jobs (default: all cores)")
    parser.add_argument("--permutation-repeats", type=int, default=5,
                        help="shuffles per ASV for the permutation importance in asv_importance.tsv; "
                             "0 = impurity importance only (default: 5)")
    parser.add_argument("--overwrite", action="store_true", help="replace a previous baseline in --output-dir")
    add_flags(parser, [("data (as for aam train)", [f for f in DATA_FLAGS if f[2] not in ("max_bp", "token_limit",
                                                                                          "asv_sampling", "rarefy",
                                                                                          "asv_dropout")])])
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aam.evaluation.baseline import BaselineConfig, data_config_of_run, run_baseline

    base = data_config_of_run(args.train_dir) if args.train_dir else DataConfig()
    given = {name: getattr(args, name) for _, _, name, _, _ in DATA_FLAGS if getattr(args, name, None) is not None}
    data = dataclasses.replace(base, **given)
    config = BaselineConfig(output_dir=args.output_dir, train_dir=args.train_dir, n_estimators=args.trees,
                            seed=args.seed, n_jobs=args.n_jobs,
                            permutation_repeats=args.permutation_repeats)
    metrics = run_baseline(data, config, overwrite=args.overwrite)
    from aam.evaluation.metrics import format_metrics

    print(f"random forest ({args.trees} trees), validation metrics:")
    print("\n".join(format_metrics(metrics)))
    print(f"wrote {args.output_dir}/metrics.json, val_predictions.tsv and asv_importance.tsv")
    return 0
