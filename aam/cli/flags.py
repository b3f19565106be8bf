"""Flag tables of the commands: those shared by `aam train`, `aam cv` and `aam baseline` and the run config
they build, and those of `aam explain` and `aam predict` (one config dataclass each).

Each table row is (flag, config dataclass, field, argparse type, help); the default shown by --help
comes from the dataclass, and every flag defaults to None so the dataclass default applies unless
the user set it.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from aam.config import LOSS_TYPES, DataConfig, LossConfig, ModelConfig, RunConfig, TrainConfig
from aam.evaluation.config import PredictConfig
from aam.explain.config import ExplainConfig


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in _names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in _names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _default(cls, name):
    return {f.name: f for f in dataclasses.fields(cls)}[name].default


# flag -> (dataclass, field, type, help); defaults come from the dataclasses (shown by --help).
DATA_FLAGS = [
    ("--table", DataConfig, "table", str, "feature table: BIOM (HDF5/JSON) or QIIME 2 .qza"),
    ("--metadata", DataConfig, "metadata", str, "QIIME 2 style metadata TSV (first column = sample ID)"),
    ("--sequences", DataConfig, "sequences", str, "FASTA or rep-seqs .qza, when feature IDs are not DNA"),
    ("--metadata-column", DataConfig, "target_columns", _names,
     "target column(s), comma-separated: numeric ones are regressed; text ones, or ones typed categorical in "
     "#q2:types, are classified"),
    ("--classification-columns", DataConfig, "classification_columns", _names,
     "target column(s) to classify although their values are numbers (e.g. 0/1 codes)"),
    ("--categorical-columns", DataConfig, "categorical_columns", _names,
     "categorical metadata column(s) embedded into the sample vector, comma-separated"),
    ("--group-column", DataConfig, "group_column", str, "keep each group (e.g. subject) on one side of the split"),
    ("--test-size", DataConfig, "test_size", float, "fraction of samples held out for validation"),
    ("--max-bp", DataConfig, "max_bp", int, "nucleotides kept per ASV"),
    ("--token-limit", DataConfig, "token_limit", int, "ASVs kept per sample (most abundant first)"),
    ("--asv-sampling", DataConfig, "asv_sampling", str,
     "abundance (top ASVs) or random (a new random subset each training epoch)"),
    ("--rarefy", DataConfig, "rarefy", float,
     "augmentation: each training epoch, thin every training sample's reads anew to a random fraction "
     "drawn uniformly from [RAREFY, 1], e.g. 0.1"),
    ("--asv-dropout", DataConfig, "asv_dropout", float,
     "regularization: each training epoch, every training sample loses each of its ASVs with this probability"),
]
MODEL_FLAGS = [
    ("--embedding-dim", ModelConfig, "embedding_dim", int, "width of the model's vectors"),
    ("--attention-heads", ModelConfig, "attention_heads", int, "attention heads per layer"),
    ("--asv-layers", ModelConfig, "asv_layers", int, "transformer layers over each ASV's nucleotides"),
    ("--sample-layers", ModelConfig, "sample_layers", int, "transformer layers over each sample's ASVs"),
    ("--asv-identity", ModelConfig, "asv_identity", int,
     "a learned vector per ASV held by at least this many training samples, added to the vector its sequence "
     "gives (the forest's view: ASV identities); 0 = off"),
    ("--asv-linear", ModelConfig, "asv_linear", int,
     "a linear model on the log relative abundances of the ASVs held by at least this many training samples, "
     "added to the transformer's outputs and started from a ridge (regression) or logistic (classification) "
     "fit on the training samples; 0 = off"),
    ("--asv-kernel", ModelConfig, "asv_kernel", str,
     "auto: a regression target's linear model is a kernel ridge regression (RBF or Laplacian kernel) where "
     "one scores better than the ridge regression in grouped folds of the training samples; linear: ridge only"),
    ("--dropout", ModelConfig, "dropout", float,
     "dropout on the transformer residual branches and feed-forward hidden layers"),
    ("--abundance", ModelConfig, "abundance", str,
     "ASV abundance input: reads = log(1 + reads), relative = log(1 + 1e4 x reads / the sample's reads)"),
    ("--regressor-hidden-dims", ModelConfig, "regressor_hidden_dims", _ints,
     "hidden widths of an MLP head, e.g. 64,32 (default: a Linear head)"),
    ("--regressor-dropout", ModelConfig, "regressor_dropout", float, "dropout between MLP head layers"),
    ("--moe-experts", ModelConfig, "moe_experts", int,
     "mixture of expert heads: replace the regression head with this many heads of the same kind "
     "(Linear, MLP or residual), >= 2; 0 = one head"),
    ("--moe-top-k", ModelConfig, "moe_top_k", int,
     "experts mixed per sample, 1..--moe-experts (= --moe-experts: a soft mixture)"),
    ("--moe-routing", ModelConfig, "moe_routing", str,
     "'learned' (a Linear router on the sample vector) or a column of --categorical-columns (adds a learned "
     "routing bias per level; unseen levels still route)"),
]
LOSS_FLAGS = [
    ("--loss-type", LossConfig, "loss_type", str, f"one of {', '.join(LOSS_TYPES)} (on z-scored targets)"),
    ("--huber-delta", LossConfig, "huber_delta", float,
     "Huber threshold in target standard deviations; with --loss-type quantile: smooth pinball "
     "(default: 1.0 for huber, none otherwise)"),
    ("--quantiles", LossConfig, "quantiles", _floats,
     "quantile levels for quantile/expectile losses, each in (0, 1), no repeats; sorted for you "
     "(default: 0.1,0.5,0.9)"),
    ("--over-penalty", LossConfig, "over_penalty", float,
     "asymmetric loss: weight of over-prediction, > 0 (default: 1.0)"),
    ("--under-penalty", LossConfig, "under_penalty", float,
     "asymmetric loss: weight of under-prediction, > 0 (default: 1.0)"),
    ("--loss-config", LossConfig, "loss_config", str,
     'per-target losses as JSON, keys = target names or 0-based indices, values = a loss name or '
     '{"type": ..., "delta"/"over"/"under": ...}; e.g. \'{"ph": "mse", "temperature": {"type": "huber", '
     '"delta": 0.5}}\'; targets not named use --loss-type'),
    ("--categorical-loss-weights", LossConfig, "categorical_loss_weights", str,
     "'auto' (balance the levels of each categorical column) or JSON {column: {level: weight}}"),
    ("--class-weights", LossConfig, "class_weights", str,
     "classification targets: none, or auto (weigh each level n / (levels x its samples): balanced)"),
    ("--label-smoothing", LossConfig, "label_smoothing", float,
     "classification targets: cross-entropy against (1 - eps) one-hot + eps / levels, eps in [0, 1)"),
    ("--moe-balance-weight", LossConfig, "moe_balance_weight", float,
     "weight of the Switch load-balancing loss E * sum_e f_e * P_e of an MoE head (0 = off)"),
    ("--moe-router-z-weight", LossConfig, "moe_router_z_weight", float,
     "weight of the router z-loss mean(logsumexp(router logits)^2) of an MoE head (0 = off)"),
]
TRAIN_FLAGS = [
    ("--output-dir", TrainConfig, "output_dir", str, "folder for the model, predictions, metrics and plots"),
    ("--epochs", TrainConfig, "epochs", int, "maximum epochs"),
    ("--batch-size", TrainConfig, "batch_size", int, "samples per step"),
    ("--lr", TrainConfig, "lr", float,
     "peak AdamW learning rate; none = 2e-3 x sqrt(32 / --embedding-dim) (2e-3 at the default width)"),
    ("--weight-decay", TrainConfig, "weight_decay", float, "AdamW weight decay"),
    ("--warmup-steps", TrainConfig, "warmup_steps", int, "linear warmup steps (default: 5%% of all steps)"),
    ("--max-grad-norm", TrainConfig, "max_grad_norm", float, "gradient clipping norm (0 = off)"),
    ("--ema-decay", TrainConfig, "ema_decay", float,
     "validate and keep as model.pt an exponential moving average of the weights, updated after each step "
     "with this decay, e.g. 0.95 (0 = off)"),
    ("--patience", TrainConfig, "patience", int, "early stopping: epochs without improvement (0 = off)"),
    ("--best-metric", TrainConfig, "best_metric", str,
     "val_loss, or mae|rmse|r2|pearson of the first target (log_loss|accuracy|balanced_accuracy|roc_auc for a "
     "classification target; mae of one means log_loss), or <target>:<metric>, or last (keep the final "
     "epoch's model: no early stopping)"),
    ("--seed", TrainConfig, "seed", int,
     "random seed; on the CPU the same seed, data, flags and thread count give bitwise the same run"),
    ("--device", TrainConfig, "device", str, "auto | cpu | cuda"),
    ("--precision", TrainConfig, "precision", str,
     "training steps: fp32, bf16 (matrix products in bf16, weights and loss fp32; needs CUDA or a CPU with "
     "native bf16) or auto (bf16 on CUDA, fp32 on the CPU)"),
    ("--num-workers", TrainConfig, "num_workers", int, "data loader worker processes"),
    ("--pretrained-encoder", TrainConfig, "pretrained_encoder", str,
     "encoder.pt of aam pretrain, or 'builtin' (the encoder shipped with aam, pretrained on 2,002 human stool "
     "and throat samples): the model's encoders start from it and take its dimensions"),
    ("--encoder-lr-scale", TrainConfig, "encoder_lr_scale", float,
     "the encoders' learning rate as a multiple of --lr (e.g. 0.1 to move a pretrained encoder slowly)"),
]
ALL_FLAGS = DATA_FLAGS + MODEL_FLAGS + LOSS_FLAGS + TRAIN_FLAGS
# On/off switches: flag -> (dataclass, field, the value the flag sets, help).
SWITCHES = [
    ("--gradient-checkpointing", ModelConfig, "gradient_checkpointing", True,
     "recompute transformer blocks in backward (less memory, ~30%% slower)"),
    ("--residual-regression-head", ModelConfig, "residual_regression_head", True,
     "head = Linear(x) + MLP(x) (needs --regressor-hidden-dims)"),
    ("--fused-kernels", ModelConfig, "use_kernels", True,
     "use the fused aam_kernels loss and MoE head (Triton on CUDA, CPU path on CPU)"),
    ("--freeze-encoder", TrainConfig, "freeze_encoder", True,
     "keep the --pretrained-encoder's weights fixed: train only the head, the categorical embeddings and the ASV "
     "identity vectors"),
    ("--no-conformal", TrainConfig, "conformal", False,
     "quantile models: keep the intervals as trained, without the conformal offsets fitted on the validation "
     "samples after training"),
    ("--no-calibration", TrainConfig, "calibration", False,
     "classifiers: keep the probabilities as trained, without the temperature fitted on the validation samples "
     "after training"),
]

# `aam explain` and `aam predict`: the flags in their *_REQUIRED tuples must be given and show no default, nor
# do flags whose default is none; `aam explain --model` may be given several times (the models are averaged).
EXPLAIN_FLAGS = [
    ("--model", ExplainConfig, "models", str,
     "model.pt written by `aam train`, or an `aam cv` output folder (its finished fold models); repeat to average "
     "several models"),
    ("--table", ExplainConfig, "table", str, "feature table: BIOM or QIIME 2 .qza"),
    ("--sequences", ExplainConfig, "sequences", str, "FASTA or rep-seqs .qza, when feature IDs are not DNA"),
    ("--metadata", ExplainConfig, "metadata", str,
     "metadata TSV: needed for categorical columns; target columns in it add Spearman correlations and order the "
     "heatmap"),
    ("--taxonomy", ExplainConfig, "taxonomy", str,
     "QIIME 2 FeatureData[Taxonomy] .qza or TSV with 'Feature ID' and 'Taxon' columns; adds taxon_importance.tsv"),
    ("--output-dir", ExplainConfig, "output_dir", str, "folder for the tables and plots"),
    ("--batch-size", ExplainConfig, "batch_size", int, "samples per batch (default: the training batch size)"),
    ("--method", ExplainConfig, "method", str,
     "cohort: cohort Shapley values, what each ASV's abundance tells about the prediction among the samples "
     "explained (the baseline is their mean prediction); integrated-gradients: what the network computes from "
     "each ASV"),
    ("--permutations", ExplainConfig, "permutations", int, "cohort: orders of the ASVs sampled per sample"),
    ("--similarity-ratio", ExplainConfig, "similarity_ratio", float,
     "cohort: relative abundances within this factor of each other count as similar "
     f"(default: {_default(ExplainConfig, 'similarity_ratio'):g})"),
    ("--seed", ExplainConfig, "seed", int, "cohort: seeds the sampled orders"),
    ("--steps", ExplainConfig, "steps", int,
     "integrated gradients: integration steps, each a forward and backward pass"),
    ("--reference", ExplainConfig, "reference", str,
     "integrated gradients: empty: attributions start from a sample with no reads; counts: from the same ASVs "
     "with zero reads"),
    ("--sample", ExplainConfig, "sample", str, "sample drawn as a waterfall (default: the first)"),
    ("--device", ExplainConfig, "device", str, "auto | cpu | cuda"),
]
EXPLAIN_REQUIRED = ("--model", "--table", "--output-dir")
EXPLAIN_SWITCHES = [("--no-progress", ExplainConfig, "progress", False, "no progress bar")]
PREDICT_FLAGS = [
    ("--model", PredictConfig, "model", str,
     "model.pt (or last.pt) written by `aam train`, or an `aam cv` output folder (its fold models' predictions "
     "are averaged: an ensemble)"),
    ("--table", PredictConfig, "table", str, "feature table: BIOM or QIIME 2 .qza"),
    ("--sequences", PredictConfig, "sequences", str, "FASTA or rep-seqs .qza, when feature IDs are not DNA"),
    ("--metadata", PredictConfig, "metadata", str, "metadata TSV; needed when the model uses categorical columns"),
    ("--device", PredictConfig, "device", str, "auto | cpu | cuda"),
    ("--batch-size", PredictConfig, "batch_size", int, "samples per batch (default: the training batch size)"),
    ("--output", PredictConfig, "output", str, "TSV to write: sample_id, then one column per target"),
]
PREDICT_REQUIRED = ("--model", "--table", "--output")


def add_flags(parser: argparse.ArgumentParser, groups) -> None:
    """Every flag defaults to None, so the config dataclass default applies unless the user set it."""
    for title, flags in groups:
        group = parser.add_argument_group(title)
        for row in flags:
            _add_flag(group, *row)


def add_command_flags(parser: argparse.ArgumentParser, flags, required=(), repeated=()) -> None:
    """A command's own flags, in its main option list: `required` flags must be given, `repeated` ones may be
    given several times (a tuple field); a default that is none is not shown."""
    for flag, cls, name, kind, text in flags:
        _add_flag(parser, flag, cls, name, kind, text, required=flag in required, repeated=flag in repeated,
                  show_none=False)


def _add_flag(container, flag, cls, name, kind, text, *, required=False, repeated=False, show_none=True) -> None:
    default = _default(cls, name)
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
    none = shown in ("", (), None)
    # the text states its own default when the dataclass's is a placeholder
    if "(default" not in text and not required and (show_none or not none):
        text += f" (default: {'none' if none else shown})"
    container.add_argument(flag, dest=name, type=kind, default=None, required=required,
                           action="append" if repeated else "store", metavar=flag[2:].upper().replace("-", "_"),
                           help=text)


def add_switches(group, switches=SWITCHES) -> None:
    for flag, _, name, _, text in switches:
        group.add_argument(flag, dest=name, action="store_true", help=text)


PART_OF = {DataConfig: "data", ModelConfig: "model", LossConfig: "loss", TrainConfig: "train"}


def given_changes(args: argparse.Namespace, flags=ALL_FLAGS) -> dict[str, dict]:
    """{part: {field: value}} for every flag the user gave (value flags default to None; switches when set)."""
    changes: dict[str, dict] = {}
    for _, cls, name, _, _ in flags:
        if getattr(args, name, None) is not None:
            changes.setdefault(PART_OF[cls], {})[name] = getattr(args, name)
    for _, cls, name, value, _ in SWITCHES:
        if getattr(args, name, False):
            changes.setdefault(PART_OF[cls], {})[name] = value
    return changes


def config_from_args(args: argparse.Namespace, flags=ALL_FLAGS) -> RunConfig:
    """The run config of the parsed flags, not yet resolved: the command resolves it once it is complete
    (`RunConfig.resolve`, UserError naming the flag). With --pretrained-encoder, the model settings come
    from the encoder file."""
    from aam.pretrain.encoder_file import apply_encoder_config, encoder_path

    changes = given_changes(args, flags)
    train = changes.setdefault("train", {})
    train["progress"] = not getattr(args, "no_progress", False)
    if train.get("pretrained_encoder"):
        train["pretrained_encoder"] = encoder_path(train["pretrained_encoder"])
    config = RunConfig(*(cls(**changes.get(part, {})) for cls, part in PART_OF.items()))
    return apply_encoder_config(config, {**changes.get("data", {}), **changes.get("model", {})})


def given_values(args: argparse.Namespace, flags, switches=()) -> dict[str, Any]:
    """{field: value} of one config dataclass for every flag the user gave (switches when set); a repeated
    flag's values as a tuple."""
    values = {name: getattr(args, name) for _, _, name, _, _ in flags if getattr(args, name, None) is not None}
    values.update({name: value for _, _, name, value, _ in switches if getattr(args, name, False)})
    return {name: tuple(value) if isinstance(value, list) else value for name, value in values.items()}
