"""`aam pretrain`: parse flags into a `PretrainConfig` and call `aam.pretrain.pretrain`."""

from __future__ import annotations

import argparse

from aam.cli.flags import MODEL_FLAGS, TRAIN_FLAGS, add_flags
from aam.config import ModelConfig, TrainConfig
from aam.errors import UserError
from aam.pretrain.config import DISTANCES, CorpusConfig, ObjectiveConfig, PretrainConfig

HELP = "pretrain the ASV and sample encoders on unlabeled tables (no metadata), for aam train --pretrained-encoder"

CORPUS_FLAGS = [
    ("--tree", CorpusConfig, "tree", str,
     "rooted tree (Newick .nwk or QIIME 2 rooted-tree .qza) whose tips are the tables' feature IDs or sequences: "
     "pairwise distances become weighted UniFrac"),
    ("--max-bp", CorpusConfig, "max_bp", int, "nucleotides kept per ASV; ASVs equal on them are one ASV"),
    ("--token-limit", CorpusConfig, "token_limit", int, "ASVs a sample shows the model (most abundant first)"),
    ("--validation-fraction", CorpusConfig, "validation_fraction", float,
     "samples held out to score the objectives and choose the epoch"),
]
OBJECTIVE_FLAGS = [
    ("--mask-fraction", ObjectiveConfig, "mask_fraction", float,
     "masked ASVs: fraction of each sample's ASVs hidden (at least one stays)"),
    ("--mask-weight", ObjectiveConfig, "mask_weight", float,
     "weight of the masked-ASV objective (which hidden ASVs were present, and their abundance); 0 = off"),
    ("--distance", ObjectiveConfig, "distance", str,
     f"pairwise distances between a batch's samples: {', '.join(DISTANCES)} (auto = unifrac with --tree, "
     "else braycurtis)"),
    ("--distance-weight", ObjectiveConfig, "distance_weight", float, "weight of the distance objective; 0 = off"),
    ("--nucleotide-mask-fraction", ObjectiveConfig, "nucleotide_mask_fraction", float,
     "masked nucleotides: fraction of each ASV's nucleotides hidden"),
    ("--nucleotide-weight", ObjectiveConfig, "nucleotide_weight", float,
     "weight of the masked-nucleotide objective (models with --asv-layers > 0); 0 = off"),
]
ENCODER_MODEL_FLAGS = [f for f in MODEL_FLAGS if f[2] in ("embedding_dim", "attention_heads", "asv_layers",
                                                         "sample_layers", "dropout", "abundance", "asv_identity")]
PRETRAIN_DEFAULTS = {"epochs": 30, "patience": 5}  # differ from aam train's
# (flag, dataclass, field, type, help): aam train's rows, the defaults above stated in their help
PRETRAIN_TRAIN_FLAGS = [
    (flag, cls, name, kind, f"{text} (default: {PRETRAIN_DEFAULTS[name]})" if name in PRETRAIN_DEFAULTS else text)
    for flag, cls, name, kind, text in TRAIN_FLAGS
    if name in ("output_dir", "epochs", "batch_size", "lr", "weight_decay", "warmup_steps", "max_grad_norm",
                "patience", "seed", "device", "precision", "num_workers")]
PART_OF = {CorpusConfig: "corpus", ModelConfig: "model", ObjectiveConfig: "objectives", TrainConfig: "train"}


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "pretrain", help=HELP,
        description=HELP[0].upper() + HELP[1:] + ". Objectives: masked ASVs, pairwise distances between the "
                    "samples of a batch, masked nucleotides (with nucleotide layers). Writes encoder.pt.")
    group = parser.add_argument_group("tables")
    group.add_argument("--table", action="append", dest="tables", metavar="TABLE",
                       help="feature table (BIOM or QIIME 2 .qza); repeat for several studies")
    group.add_argument("--sequences", action="append", dest="sequences", metavar="SEQUENCES",
                       help="FASTA or rep-seqs .qza for a table whose IDs are not sequences; when given, once per "
                            "--table in the same order ('none' for a table whose IDs are sequences)")
    add_flags(parser, [("corpus", CORPUS_FLAGS), ("model", ENCODER_MODEL_FLAGS), ("objectives", OBJECTIVE_FLAGS),
                       ("training", PRETRAIN_TRAIN_FLAGS)])
    run_group = parser.add_argument_group("run")
    run_group.add_argument("--no-progress", action="store_true", help="no progress bars")
    run_group.add_argument("--resume", action="store_true",
                           help="continue the run in --output-dir from its last.pt (only --epochs, --patience, "
                                "--device, --precision and --num-workers may change)")
    run_group.add_argument("--overwrite", action="store_true", help="replace a previous run in --output-dir")
    parser.set_defaults(run=run)


def config_from_args(args: argparse.Namespace) -> PretrainConfig:
    changes: dict[str, dict] = {
        "corpus": {"tables": tuple(args.tables or ()), "sequences": tuple(args.sequences or ())},
        "train": dict(PRETRAIN_DEFAULTS, progress=not args.no_progress)}
    for _, cls, name, _, _ in CORPUS_FLAGS + ENCODER_MODEL_FLAGS + OBJECTIVE_FLAGS + PRETRAIN_TRAIN_FLAGS:
        if getattr(args, name, None) is not None:
            changes.setdefault(PART_OF[cls], {})[name] = getattr(args, name)
    return PretrainConfig(*(cls(**changes.get(part, {})) for cls, part in PART_OF.items()))


def run(args: argparse.Namespace) -> int:
    from aam.pretrain.run import pretrain, resumed_config
    from aam.runtime.distributed import is_main_process

    if args.resume and args.overwrite:
        raise UserError("--resume and --overwrite exclude each other")
    if args.resume and not args.tables:
        if args.output_dir is None:
            raise UserError("--resume needs --output-dir")
        changes = {k: getattr(args, k) for k in ("epochs", "patience", "device", "precision", "num_workers")
                   if getattr(args, k) is not None}
        config = resumed_config(args.output_dir, progress=not args.no_progress, **changes)
    else:
        config = config_from_args(args)
    result = pretrain(config, resume=args.resume, overwrite=args.overwrite)
    if result.interrupted_by is not None:
        return 128 + result.interrupted_by
    if is_main_process():
        print(result.summary())
    return 0
