"""Run configuration: one frozen dataclass per concern, built by the CLI, saved in every checkpoint.

`RunConfig.resolve()` is where a configuration is checked and settled, once: every value is checked
(UserError naming the flag), --loss-config is keyed by target name, and the quantile levels are
checked, sorted and defaulted (`LossConfig.quantiles` is then the one place they live); the loss
settings given as text became typed values when the `LossConfig` was made. A run records its
defaults that depend on other settings (`with_defaults`: the learning rate). The CLI resolves what it
parsed; library entry points (`train`, `build_run`, `cross_validate`) resolve what they are given,
which costs nothing for a config that is already resolved. `dataclasses.replace` gives an unresolved
copy. `to_dict`/`from_dict` round-trip through JSON (config.json, checkpoints) and read the files of
earlier versions; `predict` rebuilds the model from the saved `ModelConfig` alone.

ModelConfig fields made with `derived()` are filled from the data by `aam.training.build_run`,
never by the user, so a resumed run does not compare them; TrainConfig fields made with
`resumable()` may change on resume because they do not alter the computation.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aam.errors import UserError
from aam.loss_spec import (DEFAULT_QUANTILES, LOSS_TYPES, QUANTILE_LOSSES, CategoryWeights, TargetLoss,
                           check_quantiles, losses_by_target, parse_category_weights, parse_loss_config)

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16")  # of a training step; aam.runtime.device.compute_dtype says what each means
ABUNDANCE_INPUTS = ("reads", "relative")
ASV_KERNELS = ("auto", "linear")
CLASS_WEIGHTS = ("none", "auto")

__all__ = ["DEFAULT_QUANTILES", "DEVICES", "LOSS_TYPES", "PRECISIONS", "QUANTILE_LOSSES", "DataConfig",
           "LossConfig", "ModelConfig", "RunConfig", "TargetLoss", "TrainConfig", "kernel_experts_supported"]


def derived(default):
    """A ModelConfig field filled from the data, not set by the user."""
    return field(default=default, metadata={"derived": True})


def resumable(default, flag: str | None = None):
    """A TrainConfig field a resumed run may change (where it runs, how long, how it reports), with the
    flag that sets it for the --resume error message (None: set by the command itself)."""
    return field(default=default, metadata={"resumable": True, "flag": flag})


def user_settings(part) -> dict[str, Any]:
    """The fields of one config part that the user sets (what a resumed run must repeat)."""
    return {f.name: getattr(part, f.name) for f in dataclasses.fields(part)
            if not f.metadata.get("derived") and not f.metadata.get("resumable")}


def kernel_experts_supported(hidden_dims: tuple[int, ...], dropout: float) -> bool:
    """`aam_kernels.moe_mlp` runs experts with at most one hidden layer and no dropout."""
    return len(hidden_dims) <= 1 and not (hidden_dims and dropout > 0)


@dataclass(frozen=True)
class DataConfig:
    table: str = ""  # BIOM table (.biom HDF5/JSON) or QIIME 2 FeatureTable .qza
    metadata: str = ""  # QIIME 2 style metadata TSV (first column = sample ID)
    sequences: str | None = None  # FASTA / rep-seqs .qza, when feature IDs are not DNA
    target_columns: tuple[str, ...] = ()  # metadata columns to predict: numeric ones regressed, the others classified
    # targets classified even though their values read as numbers (e.g. 0/1 codes); a target whose values are
    # text, or that the #q2:types row declares categorical, is classified without being named here
    classification_columns: tuple[str, ...] = ()
    categorical_columns: tuple[str, ...] = ()  # metadata columns embedded into the sample vector
    group_column: str | None = None  # keep samples of one group (e.g. subject) on one side of the split
    test_size: float = 0.2  # fraction of samples (or groups) held out for validation
    max_bp: int = 150  # nucleotides kept per ASV (published AAM: 150)
    token_limit: int = 1024  # ASVs kept per sample, the most abundant first (published AAM: 1024)
    asv_sampling: str = "abundance"  # "abundance": the most abundant ASVs; "random": a new random subset each epoch (training only)
    # None, or the least fraction f of its reads a training sample keeps: each epoch every training sample's
    # reads are thinned anew, each read kept with probability f ~ U[rarefy, 1] (aam.data.dataset)
    rarefy: float | None = None
    # probability that a training sample loses each of its ASVs, drawn anew each epoch (aam.data.dataset)
    asv_dropout: float = 0.0


@dataclass(frozen=True)
class ModelConfig:
    embedding_dim: int = 32  # width of every vector in the model (published AAM: 128)
    attention_heads: int = 2  # heads per attention layer (published AAM: 4)
    asv_layers: int = 0  # transformer layers over the nucleotides of one ASV (published AAM: 2); 0 = nucleotide
    # and position embeddings, attention-pooled; the nucleotide transformer dominates a step (docs/accuracy.md)
    sample_layers: int = 1  # transformer layers over the ASVs of one sample (published AAM: 2)
    feedforward_multiplier: int = 4  # feed-forward hidden width = multiplier * embedding_dim
    abundance: str = "reads"  # ASV abundance input: "reads" = log(1 + reads); "relative" = log(1 + 1e4 * reads / sample's reads)
    # on residual branches and feed-forward hidden layers, none on attention probabilities (published AAM: 0.1;
    # its random masks are a large part of a CPU step, docs/performance.md)
    dropout: float = 0.0
    regressor_hidden_dims: tuple[int, ...] = ()  # () = Linear head; (64, 32) = MLP with those hidden widths
    regressor_dropout: float = 0.0  # dropout between MLP head layers
    residual_regression_head: bool = False  # head = Linear(x) + MLP(x); needs regressor_hidden_dims
    gradient_checkpointing: bool = False  # recompute transformer blocks in backward to save memory
    moe_experts: int = 0  # 0 = one regression head; E >= 2 = a mixture of E heads of the kind above
    moe_top_k: int = 2  # experts per sample; = moe_experts for a soft (dense) mixture
    moe_routing: str = "learned"  # "learned" (router on the sample vector) or a categorical column (+ a per-level bias)
    # a learned vector per ASV that at least this many training samples hold, added to its sequence vector
    # (aam.models.identity); 0 = off, each ASV is what its sequence encodes
    asv_identity: int = 0
    # a linear model on the log relative abundances of the ASVs held by at least this many training samples,
    # added to the outputs and started from ridge / logistic fits (aam.models.linear); 0 = off
    asv_linear: int = 2
    # "auto": per regression target, the linear model's fit is a ridge regression or, where one scores better
    # in grouped folds of the training samples, a kernel ridge regression (aam.models.kernel); "linear": ridge
    asv_kernel: str = "auto"
    use_kernels: bool = False  # --fused-kernels: aam_kernels loss and MoE head (Triton on CUDA, CPU path on CPU)
    # Filled from the data, not by the user: vocabulary of the categorical embeddings and output shape.
    max_bp: int = derived(150)  # positions of the nucleotide embedding (copied from DataConfig)
    n_targets: int = derived(1)
    n_quantiles: int = derived(1)  # outputs per target: len(LossConfig.quantiles), 1 for a point output
    category_cardinalities: tuple[int, ...] = derived(())  # levels per categorical column, code 0 = unknown excluded
    n_classes: tuple[int, ...] = derived(())  # per target: its levels (a classifier output), 0 = regression; () = all 0
    asv_vocabulary: int = derived(0)  # ASVs with a learned identity vector (see asv_identity)
    linear_vocabulary: int = derived(0)  # ASVs with a learned linear term (see asv_linear)
    kernel_samples: int = derived(0)  # training samples the kernel ridge regressions hold (see asv_kernel)
    moe_routing_index: int = derived(-1)  # position of the moe_routing column among the categorical ones; -1 = learned


# The published AAM model (the performance benchmarks measure it); the defaults above are smaller, see
# docs/accuracy.md.
PUBLISHED_MODEL = ModelConfig(embedding_dim=128, attention_heads=4, asv_layers=2, sample_layers=2, dropout=0.1)
PUBLISHED_BATCH_SIZE = 8


@dataclass(frozen=True)
class LossConfig:
    loss_type: str = "huber"  # mse | mae | huber | quantile | asymmetric | expectile, on z-scored targets
    huber_delta: float | None = None  # Huber threshold in target SDs (huber: 1.0); with quantile: smooth pinball
    # Levels of quantile/expectile losses, given in any order; RunConfig checks and sorts them, and fills
    # in 0.1, 0.5, 0.9 when a target has such a loss and none were given; () = point outputs only.
    quantiles: tuple[float, ...] = ()
    over_penalty: float | None = None  # asymmetric: weight of over-prediction (default 1.0)
    under_penalty: float | None = None  # asymmetric: weight of under-prediction (default 1.0)
    # --loss-config: {target name (RunConfig turns 0-based indices into names): TargetLoss}; JSON text accepted
    loss_config: dict[str, TargetLoss] | None = None
    # --categorical-loss-weights: None, "auto" (balanced per level) or {column: {level: weight}}; JSON text accepted
    categorical_loss_weights: str | CategoryWeights | None = None
    # classification targets: "auto" weighs each level n / (k * n_level) over the training samples (balanced)
    class_weights: str = "none"
    label_smoothing: float = 0.0  # classification targets: cross-entropy against (1 - eps) one-hot + eps / K
    moe_balance_weight: float = 0.01  # weight of the Switch balance loss E * sum_e f_e * P_e (MoE heads only)
    moe_router_z_weight: float = 0.0  # weight of the router z-loss mean(logsumexp(logits)^2); 0 = off

    def __post_init__(self):  # the text forms the CLI and JSON files give become typed values
        object.__setattr__(self, "loss_config", parse_loss_config(self.loss_config))
        object.__setattr__(self, "categorical_loss_weights", parse_category_weights(self.categorical_loss_weights))
        object.__setattr__(self, "quantiles", tuple(self.quantiles))

    def target_losses(self, target_columns: tuple[str, ...]) -> tuple[TargetLoss, ...]:
        """The loss of each target: its --loss-config entry, else the one the loss flags describe."""
        default = TargetLoss(self.loss_type, self.huber_delta, self.over_penalty, self.under_penalty)
        named = losses_by_target(self.loss_config or {}, target_columns)
        return tuple(named.get(name, default) for name in target_columns)

    def to_json(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        if self.loss_config is not None:
            values["loss_config"] = {name: loss.to_json() for name, loss in self.loss_config.items()}
        return values


def resolve_loss(loss: LossConfig, target_columns: tuple[str, ...]) -> LossConfig:
    """`loss` with --loss-config keyed by target name and the output quantile levels settled: checked and
    sorted when some target has a quantile-type loss (0.1, 0.5, 0.9 when none were given), () otherwise."""
    if loss.loss_type not in LOSS_TYPES:
        raise UserError(f"--loss-type must be one of {', '.join(LOSS_TYPES)}; got {loss.loss_type!r}")
    targets = loss.target_losses(target_columns)
    uses_quantiles = any(t.kind in QUANTILE_LOSSES for t in targets)
    if loss.quantiles and not uses_quantiles:
        raise UserError("--quantiles needs a quantile-type loss (--loss-type quantile or expectile, or one in "
                        "--loss-config)")
    quantiles = check_quantiles(loss.quantiles or DEFAULT_QUANTILES) if uses_quantiles else ()
    named = losses_by_target(loss.loss_config, target_columns) if loss.loss_config is not None else None
    return dataclasses.replace(loss, quantiles=quantiles, loss_config=named)


@dataclass(frozen=True)
class TrainConfig:
    output_dir: str = resumable("")  # where checkpoints, predictions, metrics and plots go
    # maximum number of passes over the training samples (the cosine decay spans them); more on resume
    # stretch the cosine schedule from the current step to the new total
    epochs: int = resumable(100, "--epochs (not fewer than done)")
    batch_size: int = 16  # samples per step
    lr: float | None = None  # peak AdamW learning rate (after warmup); None = default_lr(embedding_dim)
    weight_decay: float = 0.01  # AdamW decoupled weight decay
    warmup_steps: int | None = None  # linear warmup steps; None = 5% of all steps (at least 1)
    max_grad_norm: float = 1.0  # gradient clipping by global norm; 0 = off
    # 0 = off; else validate and save as model.pt the exponential moving average of the weights over steps,
    # average <- decay * average + (1 - decay) * weights after each step (aam.training.averaging)
    ema_decay: float = 0.0
    # stop after this many epochs without a better --best-metric; 0 = never stop early
    patience: int = resumable(5, "--patience")
    # val_loss, or mae|rmse|r2|pearson of the first target, or <target>:<metric>; last = the final epoch's
    # model (no choice by the validation samples, no early stopping)
    best_metric: str = "mae"
    seed: int = 42  # seeds the split, initialization, shuffling and dropout (CPU: bitwise repeatable per thread count)
    device: str = resumable("auto", "--device")  # auto (CUDA when present) | cpu | cuda
    # training steps: fp32 | bf16 (matrix products autocast to bf16) | auto (bf16 on CUDA, fp32 on the CPU)
    precision: str = resumable("auto", "--precision")
    num_workers: int = resumable(0, "--num-workers")  # DataLoader worker processes
    norm_batches: int = 64  # training batches (at most) used to recompute the ASV BatchNorm statistics after each epoch
    progress: bool = resumable(True, "--no-progress")  # tqdm bar per epoch
    # encoder.pt of `aam pretrain`: the model's ASV and sample encoders start from its weights and the model
    # takes its dimensions (aam.pretrain.encoder_file); None = random initialization
    pretrained_encoder: str | None = None
    freeze_encoder: bool = False  # keep the pretrained encoders' weights fixed: train the head (and embeddings)
    encoder_lr_scale: float = 1.0  # the encoders' peak learning rate = this x --lr (the head's)
    # quantile models: after training, move the quantile intervals by the conformal offsets fitted on the
    # validation samples (aam.evaluation.conformal); stored in model.pt and applied by predict and cv
    conformal: bool = True
    # classifiers: after training, fit a temperature per classification target on the validation samples
    # (softmax(logits / T) minimizing their log loss); stored in model.pt and applied by predict and cv
    calibration: bool = True


@dataclass(frozen=True)
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    # True for the configs `resolve()` returns (and their `with_output_dir`/`with_derived` copies)
    is_resolved: bool = field(default=False, init=False, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {"data": dataclasses.asdict(self.data), "model": dataclasses.asdict(self.model),
                "loss": self.loss.to_json(), "train": dataclasses.asdict(self.train)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "RunConfig":
        """A saved configuration, its loss resolved (files of earlier versions hold it as given); not checked
        again: `resolve()` does that where it is run again."""
        values = _upgrade(values)
        parts = {name: _build(part, values.get(name, {})) for name, part in _PART_TYPES.items()}
        if parts["data"].target_columns:
            parts["loss"] = resolve_loss(parts["loss"], parts["data"].target_columns)
        return cls(**parts)

    def resolve(self) -> "RunConfig":
        """The checked, resolved config a run uses (see the module doc); `self` when it is one already."""
        return self if self.is_resolved else resolve_run(self)

    def with_defaults(self) -> "RunConfig":
        """The config with the defaults that depend on other settings filled in, as a run records them in
        config.json (resolved when this one is)."""
        if self.train.lr is not None:
            return self
        train = dataclasses.replace(self.train, lr=default_lr(self.model.embedding_dim))
        return _resolved_as(dataclasses.replace(self, train=train), self)

    def with_output_dir(self, output_dir: str | Path) -> "RunConfig":
        """The same run writing into `output_dir` (resolved when this one is: the folder is checked where a
        command claims it)."""
        moved = dataclasses.replace(self, train=dataclasses.replace(self.train, output_dir=str(output_dir)))
        return _resolved_as(moved, self)

    def with_seed(self, seed: int) -> "RunConfig":
        """The same run with another seed (resolved when this one is: any integer is a valid seed)."""
        return _resolved_as(dataclasses.replace(self, train=dataclasses.replace(self.train, seed=seed)), self)

    def with_derived(self, **model_fields) -> "RunConfig":
        """The model's data-dependent (`derived()`) fields set; resolved when this one is."""
        derived_fields = {f.name for f in dataclasses.fields(ModelConfig) if f.metadata.get("derived")}
        assert set(model_fields) <= derived_fields, set(model_fields) - derived_fields
        return _resolved_as(dataclasses.replace(self, model=dataclasses.replace(self.model, **model_fields)), self)

    def validate(self) -> "RunConfig":
        """Raise UserError for values no run can use; returns self (`resolve()` checks the same)."""
        _check_settings(self)
        return self


def resolve_run(config: RunConfig) -> RunConfig:
    """`config` checked, with its loss resolved, marked resolved."""
    resolved = dataclasses.replace(config, loss=_check_settings(config))
    object.__setattr__(resolved, "is_resolved", True)
    return resolved


def _resolved_as(config: RunConfig, source: RunConfig) -> RunConfig:
    object.__setattr__(config, "is_resolved", source.is_resolved)
    return config


def _check_settings(config: RunConfig) -> LossConfig:
    """Raise UserError for values no run can use; the resolved loss (`resolve_loss`)."""
    d, m, lo, t = config.data, config.model, config.loss, config.train
    # the loss settings first: their messages name what was typed (a NaN quantile level among the others)
    loss = resolve_loss(lo, d.target_columns) if d.target_columns else lo
    _check_finite(config)
    if not d.target_columns:
        raise UserError("give at least one target column (--metadata-column)")
    if len(set(d.target_columns)) != len(d.target_columns):
        raise UserError(f"target columns repeat: {','.join(d.target_columns)}")
    unknown = [c for c in d.classification_columns if c not in d.target_columns]
    if unknown:
        raise UserError(f"--classification-columns names '{unknown[0]}', which is not a target (--metadata-column "
                        f"{','.join(d.target_columns)})")
    if lo.class_weights not in CLASS_WEIGHTS:
        raise UserError(f"--class-weights must be one of {', '.join(CLASS_WEIGHTS)}; got {lo.class_weights!r}")
    if not 0.0 <= lo.label_smoothing < 1.0:
        raise UserError(f"--label-smoothing must be in [0, 1); got {lo.label_smoothing}")
    overlap = set(d.target_columns) & set(d.categorical_columns)
    if overlap:
        raise UserError(f"column(s) both target and categorical: {', '.join(sorted(overlap))}")
    if not 0.0 < d.test_size < 1.0:
        raise UserError(f"--test-size must be in (0, 1); got {d.test_size}")
    _positive("--max-bp", d.max_bp)
    _positive("--token-limit", d.token_limit)
    if d.rarefy is not None and not 0.0 < d.rarefy <= 1.0:
        raise UserError(f"--rarefy must be in (0, 1]; got {d.rarefy}")
    if not 0.0 <= d.asv_dropout < 1.0:
        raise UserError(f"--asv-dropout must be in [0, 1); got {d.asv_dropout}")
    if d.asv_sampling not in ("abundance", "random"):
        raise UserError(f"--asv-sampling must be abundance or random; got {d.asv_sampling!r}")
    if m.abundance not in ABUNDANCE_INPUTS:
        raise UserError(f"--abundance must be one of {', '.join(ABUNDANCE_INPUTS)}; got {m.abundance!r}")
    _positive("--embedding-dim", m.embedding_dim)
    _positive("--attention-heads", m.attention_heads)
    if m.embedding_dim % m.attention_heads:
        raise UserError(f"--embedding-dim {m.embedding_dim} is not divisible by --attention-heads {m.attention_heads}")
    if m.asv_layers < 0 or m.sample_layers < 0:
        raise UserError("layer counts must be >= 0")
    if m.asv_identity < 0:
        raise UserError(f"--asv-identity must be >= 0 (0 = off); got {m.asv_identity}")
    if m.asv_linear < 0:
        raise UserError(f"--asv-linear must be >= 0 (0 = off); got {m.asv_linear}")
    if m.asv_kernel not in ASV_KERNELS:
        raise UserError(f"--asv-kernel must be one of {', '.join(ASV_KERNELS)}; got {m.asv_kernel!r}")
    if any(h < 1 for h in m.regressor_hidden_dims):
        raise UserError(f"--regressor-hidden-dims must be positive; got {m.regressor_hidden_dims}")
    for name, p in (("--dropout", m.dropout), ("--regressor-dropout", m.regressor_dropout)):
        if not 0.0 <= p < 1.0:
            raise UserError(f"{name} must be in [0, 1); got {p}")
    if lo.huber_delta is not None and lo.huber_delta <= 0:
        raise UserError(f"--huber-delta must be > 0; got {lo.huber_delta}")
    for flag, value in (("--over-penalty", lo.over_penalty), ("--under-penalty", lo.under_penalty)):
        if value is not None and not value > 0:
            raise UserError(f"{flag} must be > 0; got {value}")
    if m.residual_regression_head and not m.regressor_hidden_dims:
        raise UserError("--residual-regression-head needs --regressor-hidden-dims (the MLP part), e.g. 64,32")
    _validate_moe(config)
    _positive("--epochs", t.epochs)
    _positive("--batch-size", t.batch_size)
    if t.lr is not None and t.lr <= 0:
        raise UserError(f"--lr must be > 0; got {t.lr}")
    for flag, value in (("--weight-decay", t.weight_decay), ("--max-grad-norm", t.max_grad_norm),
                        ("--num-workers", t.num_workers)):
        if value < 0:
            raise UserError(f"{flag} must be >= 0; got {value}")
    if not t.encoder_lr_scale > 0:
        raise UserError(f"--encoder-lr-scale must be > 0; got {t.encoder_lr_scale}")
    if t.freeze_encoder and not t.pretrained_encoder:
        raise UserError("--freeze-encoder needs --pretrained-encoder (the encoder to keep fixed)")
    if not 0.0 <= t.ema_decay < 1.0:
        raise UserError(f"--ema-decay must be in [0, 1); got {t.ema_decay}")
    if t.warmup_steps is not None and t.warmup_steps < 0:
        raise UserError(f"--warmup-steps must be >= 0; got {t.warmup_steps}")
    if t.norm_batches < 0:
        raise UserError(f"norm_batches must be >= 0; got {t.norm_batches}")
    if t.patience < 0:
        raise UserError(f"--patience must be >= 0; got {t.patience}")
    if t.device not in DEVICES:
        raise UserError(f"--device must be one of {', '.join(DEVICES)}; got {t.device!r}")
    if t.precision not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}; got {t.precision!r}")
    return loss


def default_lr(embedding_dim: int) -> float:
    """Peak learning rate for a model of this width: 2e-3 at width 32 (the default), scaled by
    1/sqrt(width / 32), since AdamW's stable step size shrinks as the model widens."""
    return 2e-3 * math.sqrt(32 / embedding_dim)


_PART_TYPES = {"data": DataConfig, "model": ModelConfig, "loss": LossConfig, "train": TrainConfig}


def _upgrade(values: dict[str, Any]) -> dict[str, Any]:
    """A config dict of an earlier version in today's layout: --fused-kernels was train.fused_kernels, the
    model kept a copy of the quantile levels (the same as the resolved loss.quantiles), and runs saved before
    the conformal interval calibration existed keep their intervals as trained, runs saved before the
    linear model on abundances existed have none, and those saved before its kernels fitted ridge regressions."""
    values = {name: dict(part) for name, part in values.items()}
    model, train = values.setdefault("model", {}), values.setdefault("train", {})
    train.setdefault("conformal", False)
    model.setdefault("asv_linear", 0)
    model.setdefault("asv_kernel", "linear")
    if "fused_kernels" in train:
        model.setdefault("use_kernels", train.pop("fused_kernels"))
    model.pop("quantiles", None)
    return values


def _build(cls, values: dict[str, Any]):
    """A dataclass from a JSON dict: lists become tuples, unknown keys are an error (newer version)."""
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise UserError(f"configuration has unknown {cls.__name__} fields {sorted(unknown)} (written by a newer aam?)")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


MOE_FLAGS = {"moe_top_k": "--moe-top-k", "moe_routing": "--moe-routing"}
MOE_LOSS_FLAGS = {"moe_balance_weight": "--moe-balance-weight", "moe_router_z_weight": "--moe-router-z-weight"}


def _validate_moe(config: RunConfig) -> None:
    """Mixture-of-experts flags; each message names the flag to change."""
    m, lo = config.model, config.loss
    for field_name, flag in MOE_LOSS_FLAGS.items():
        if getattr(lo, field_name) < 0:
            raise UserError(f"{flag} must be >= 0; got {getattr(lo, field_name)}")
    if m.moe_experts == 0:
        # A non-default MoE setting without experts is a forgotten --moe-experts, not something to ignore.
        for part, flags in ((m, MOE_FLAGS), (lo, MOE_LOSS_FLAGS)):
            for field_name, flag in flags.items():
                if getattr(part, field_name) != _default_of(type(part), field_name):
                    raise UserError(f"{flag} needs --moe-experts (2 or more expert heads); the head is not a mixture")
        return
    if m.moe_experts < 2:
        raise UserError(f"--moe-experts must be 0 (one head) or >= 2 (a mixture); got {m.moe_experts}")
    if not 1 <= m.moe_top_k <= m.moe_experts:
        raise UserError(f"--moe-top-k must be between 1 and --moe-experts ({m.moe_experts}); got {m.moe_top_k}")
    if m.moe_routing != "learned" and m.moe_routing not in config.data.categorical_columns:
        given = ", ".join(config.data.categorical_columns) or "none"
        raise UserError(f"--moe-routing {m.moe_routing!r} is not a categorical column (--categorical-columns: "
                        f"{given}); add it to --categorical-columns or use --moe-routing learned")
    if "moe" in config.data.target_columns:
        raise UserError("--metadata-column 'moe' clashes with the \"moe\" block that --moe-experts adds to "
                        "metrics.json; rename the column")
    if m.use_kernels and not kernel_experts_supported(m.regressor_hidden_dims, m.regressor_dropout):
        raise UserError("--fused-kernels runs MoE experts with at most one hidden layer and no dropout; got "
                        f"--regressor-hidden-dims {','.join(map(str, m.regressor_hidden_dims))} --regressor-dropout "
                        f"{m.regressor_dropout} (use one hidden width and --regressor-dropout 0, or drop "
                        "--fused-kernels)")


def _check_finite(config: RunConfig) -> None:
    """NaN or inf in any number flag is a mistake (NaN also slips through every `<` check)."""
    for part in (config.data, config.model, config.loss, config.train):
        for f in dataclasses.fields(part):
            value = getattr(part, f.name)
            values = value if isinstance(value, tuple) else (value,)
            if any(isinstance(v, float) and not math.isfinite(v) for v in values):
                raise UserError(f"--{f.name.replace('_', '-')} must be a finite number; got {value}")


def _default_of(cls, name: str):
    return {f.name: f.default for f in dataclasses.fields(cls)}[name]


def _positive(flag: str, value: int) -> None:
    if value < 1:
        raise UserError(f"{flag} must be >= 1; got {value}")
