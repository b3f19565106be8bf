"""`aam inspect`: summarize a table, its sequences and metadata before training."""

from __future__ import annotations

import argparse
import json

from aam.data.summary import format_summary, summarize


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "inspect", help="summarize a feature table, its sequences and metadata",
        description="Samples, features, reads per sample, sequence lengths, zero-read samples, table/metadata "
                    "overlap, and per-column counts, missing values, ranges and levels.")
    parser.add_argument("--table", required=True, help="BIOM table (HDF5 or JSON) or QIIME 2 FeatureTable .qza")
    parser.add_argument("--sequences", help="FASTA or rep-seqs .qza, needed when feature IDs are hashes")
    parser.add_argument("--metadata", help="sample metadata TSV (first column the sample ID)")
    parser.add_argument("--metadata-column", action="append", default=[], metavar="C",
                        help="column(s) to summarize, comma-separated as in `aam train` (repeatable); default: every "
                             "column")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    columns = [c.strip() for given in args.metadata_column for c in given.split(",") if c.strip()]
    summary = summarize(args.table, args.sequences, args.metadata, columns)
    print(json.dumps(summary) if args.json else format_summary(summary))
    return 0
