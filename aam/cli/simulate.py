"""`aam simulate`: write a synthetic study with a known signal (table.biom, metadata.tsv, truth.json)."""

from __future__ import annotations

import argparse

from aam.data.simulate import make_output_dir, write_simulation
from aam.errors import UserError
from aam.run_folder import run_folder


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "simulate", help="write a synthetic 16S study with known truth",
        description="Random phylogeny, clade niches on ph and temperature, 4 sites, log-normal read depth. "
                    "Writes DIR/table.biom (feature IDs are the sequences), DIR/metadata.tsv, DIR/truth.json.")
    parser.add_argument("--output-dir", required=True, help="folder to write (created if needed)")
    parser.add_argument("--samples", type=int, default=300, help="number of samples (default 300)")
    parser.add_argument("--features", type=int, default=256, help="number of ASVs (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--mean-depth", type=float, default=5000.0, help="median reads per sample (default 5000)")
    parser.add_argument("--overwrite", action="store_true", help="replace a study already in --output-dir")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.samples < 1:
        raise UserError(f"--samples must be >= 1, got {args.samples}")
    if args.features < 8:
        raise UserError(f"--features must be >= 8, got {args.features}")
    if args.mean_depth < 1:
        raise UserError(f"--mean-depth must be >= 1, got {args.mean_depth}")
    # the folder first, so that a path that cannot be one is reported as such; then claimed like every
    # output folder (locked; a non-empty one needs --overwrite)
    out = make_output_dir(args.output_dir)
    with run_folder(out, "aam simulate", overwrite=args.overwrite):
        study = write_simulation(out, n_samples=args.samples, seed=args.seed, n_features=args.features,
                                 mean_depth=args.mean_depth)
    print(f"wrote {args.output_dir}/table.biom ({len(study.sample_ids)} samples x {len(study.sequences)} features), "
          f"metadata.tsv, truth.json")
    return 0
