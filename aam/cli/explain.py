"""`aam explain`: which ASVs and taxa drive a trained model's predictions."""

from __future__ import annotations

import argparse

HELP = "attribute each prediction to the ASVs of its sample, and rank ASVs and taxa"


def add_parser(subparsers) -> None:
    from aam.explain.config import ExplainConfig

    defaults = ExplainConfig()
    parser = subparsers.add_parser(
        "explain", help=HELP,
        description=HELP[0].upper() + HELP[1:] + ". Attributions are in target units: a sample's attributions "
                    "plus its baseline add up to its prediction.")
    parser.add_argument("--model", required=True, action="append",
                        help="model.pt written by `aam train`, or an `aam cv` output folder (its finished fold "
                             "models); repeat to average several models")
    parser.add_argument("--table", required=True, help="feature table: BIOM or QIIME 2 .qza")
    parser.add_argument("--sequences", help="FASTA or rep-seqs .qza, when feature IDs are not DNA")
    parser.add_argument("--metadata", help="metadata TSV: needed for categorical columns; target columns in it "
                                           "add Spearman correlations and order the heatmap")
    parser.add_argument("--taxonomy", help="QIIME 2 FeatureData[Taxonomy] .qza or TSV with 'Feature ID' and "
                                           "'Taxon' columns; adds taxon_importance.tsv")
    parser.add_argument("--output-dir", required=True, help="folder for the tables and plots")
    parser.add_argument("--batch-size", type=int, help="samples per batch (default: the training batch size)")
    parser.add_argument("--method", default=defaults.method,
                        help="cohort: cohort Shapley values, what each ASV's abundance tells about the prediction "
                             "among the samples explained (the baseline is their mean prediction); "
                             "integrated-gradients: what the network computes from each ASV "
                             f"(default: {defaults.method})")
    parser.add_argument("--permutations", type=int, default=defaults.permutations,
                        help=f"cohort: orders of the ASVs sampled per sample (default: {defaults.permutations})")
    parser.add_argument("--similarity-ratio", type=float, default=defaults.similarity_ratio,
                        help="cohort: relative abundances within this factor of each other count as similar "
                             f"(default: {defaults.similarity_ratio:g})")
    parser.add_argument("--seed", type=int, default=defaults.seed,
                        help=f"cohort: seeds the sampled orders (default: {defaults.seed})")
    parser.add_argument("--steps", type=int, default=defaults.steps,
                        help="integrated gradients: integration steps, each a forward and backward pass "
                             f"(default: {defaults.steps})")
    parser.add_argument("--reference", default=defaults.reference,
                        help="integrated gradients: empty: attributions start from a sample with no reads; counts: "
                             f"from the same ASVs with zero reads (default: {defaults.reference})")
    parser.add_argument("--sample", help="sample drawn as a waterfall (default: the first)")
    parser.add_argument("--device", default=defaults.device, help="auto | cpu | cuda (default: auto)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty --output-dir")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aam.explain.config import ExplainConfig
    from aam.explain.run import run_explain

    config = ExplainConfig(models=tuple(args.model), table=args.table, sequences=args.sequences,
                           metadata=args.metadata, taxonomy=args.taxonomy, output_dir=args.output_dir,
                           batch_size=args.batch_size, method=args.method, permutations=args.permutations,
                           similarity_ratio=args.similarity_ratio, seed=args.seed, steps=args.steps,
                           reference=args.reference,
                           sample=args.sample, device=args.device, progress=not args.no_progress)
    explanation = run_explain(config, overwrite=args.overwrite)
    worst = abs(explanation.gap).max()
    print(f"explained {len(explanation.sample_ids)} samples ({', '.join(explanation.outputs)}) with "
          f"{explanation.n_models} model(s) by {args.method}; largest |baseline + attributions - prediction| = "
          f"{worst:.2g}")
    print(f"wrote {args.output_dir}/asv_importance.tsv, attributions.tsv, samples.tsv"
          + (", taxon_importance.tsv" if args.taxonomy else "") + " and plots/")
    return 0
