"""`aam explain`: which ASVs and taxa drive a trained model's predictions."""

from __future__ import annotations

import argparse

from aam.cli.flags import (EXPLAIN_FLAGS, EXPLAIN_REQUIRED, EXPLAIN_SWITCHES, add_command_flags, add_switches,
                           given_values)

HELP = "attribute each prediction to the ASVs of its sample, and rank ASVs and taxa"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "explain", help=HELP,
        description=HELP[0].upper() + HELP[1:] + ". Attributions are in target units: a sample's attributions "
                    "plus its baseline add up to its prediction.")
    add_command_flags(parser, EXPLAIN_FLAGS, required=EXPLAIN_REQUIRED, repeated=("--model",))
    add_switches(parser, EXPLAIN_SWITCHES)
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty --output-dir")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aam.explain.config import ExplainConfig
    from aam.explain.run import run_explain

    config = ExplainConfig(**given_values(args, EXPLAIN_FLAGS, EXPLAIN_SWITCHES))
    explanation = run_explain(config, overwrite=args.overwrite)
    worst = abs(explanation.gap).max()
    print(f"explained {len(explanation.sample_ids)} samples ({', '.join(explanation.outputs)}) with "
          f"{explanation.n_models} model(s) by {config.method}; largest |baseline + attributions - prediction| = "
          f"{worst:.2g}")
    print(f"wrote {config.output_dir}/asv_importance.tsv, attributions.tsv, samples.tsv"
          + (", taxon_importance.tsv" if config.taxonomy else "") + " and plots/")
    return 0
