"""`PretrainConfig`: what `aam pretrain` reads, which objectives it trains and how.

The model part is the `ModelConfig` of `aam train` (only the encoder fields matter); the training part
is its `TrainConfig` (the fields that concern targets, such as --best-metric, are not used).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from aam.config import DEVICES, PRECISIONS, ModelConfig, TrainConfig, default_lr
from aam.errors import UserError

DISTANCES = ("auto", "braycurtis", "aitchison", "unifrac", "none")


@dataclass(frozen=True)
class CorpusConfig:
    tables: tuple[str, ...] = ()  # BIOM / .qza tables; ASVs of different tables are matched by sequence
    sequences: tuple[str, ...] = ()  # one FASTA / rep-seqs .qza per table, in order ("none": IDs are sequences)
    tree: str | None = None  # rooted tree (.nwk or rooted-tree .qza) whose tips are feature IDs or sequences
    max_bp: int = 150  # nucleotides kept per ASV; ASVs equal on their first max_bp are one ASV
    token_limit: int = 1024  # ASVs a sample shows the model, the most abundant first
    validation_fraction: float = 0.1  # samples held out to report each objective's loss and pick the epoch


@dataclass(frozen=True)
class ObjectiveConfig:
    # masked ASVs: hide this fraction of each sample's ASVs (at least one kept), predict from the rest which
    # ASVs of the batch were hidden and their abundance
    mask_fraction: float = 0.25
    mask_weight: float = 1.0
    # pairwise distances between the samples of a batch: auto = unifrac with --tree, else braycurtis
    distance: str = "auto"
    distance_weight: float = 1.0
    # masked nucleotides (models with --asv-layers > 0): hide this fraction of each ASV's nucleotides (as N)
    nucleotide_mask_fraction: float = 0.15
    nucleotide_weight: float = 1.0

    def distance_metric(self, tree: str | None) -> str:
        if self.distance == "auto":
            return "unifrac" if tree else "braycurtis"
        return self.distance


@dataclass(frozen=True)
class PretrainConfig:
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    objectives: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=30, patience=5))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "PretrainConfig":
        parts = {"corpus": CorpusConfig, "model": ModelConfig, "objectives": ObjectiveConfig, "train": TrainConfig}
        return cls(**{name: part(**{k: tuple(v) if isinstance(v, list) else v for k, v in values[name].items()})
                      for name, part in parts.items()})

    def resolved(self) -> "PretrainConfig":
        """Checked, with the default learning rate and the model's max_bp filled in."""
        self.validate()
        model = dataclasses.replace(self.model, max_bp=self.corpus.max_bp)
        train = self.train if self.train.lr is not None else dataclasses.replace(
            self.train, lr=default_lr(self.model.embedding_dim))
        return dataclasses.replace(self, model=model, train=train)

    def validate(self) -> None:
        c, m, o, t = self.corpus, self.model, self.objectives, self.train
        for part in (c, m, o, t):
            for f in dataclasses.fields(part):
                value = getattr(part, f.name)
                if isinstance(value, float) and not math.isfinite(value):
                    raise UserError(f"--{f.name.replace('_', '-')} must be a finite number; got {value}")
        if not c.tables:
            raise UserError("give at least one feature table (--table)")
        if c.sequences and len(c.sequences) != len(c.tables):
            raise UserError(f"--sequences is given {len(c.sequences)} times for {len(c.tables)} --table: give it "
                            "once per table, in the same order ('none' for a table whose IDs are sequences)")
        for flag, value in (("--max-bp", c.max_bp), ("--token-limit", c.token_limit),
                            ("--embedding-dim", m.embedding_dim), ("--attention-heads", m.attention_heads),
                            ("--epochs", t.epochs), ("--batch-size", t.batch_size)):
            if value < 1:
                raise UserError(f"{flag} must be >= 1; got {value}")
        if t.batch_size < 2:
            raise UserError(f"--batch-size must be >= 2 (the distances compare the samples of a batch); "
                            f"got {t.batch_size}")
        if m.embedding_dim % m.attention_heads:
            raise UserError(f"--embedding-dim {m.embedding_dim} is not divisible by --attention-heads "
                            f"{m.attention_heads}")
        if m.asv_layers < 0 or m.sample_layers < 0:
            raise UserError("layer counts must be >= 0")
        if not 0.0 <= m.dropout < 1.0:
            raise UserError(f"--dropout must be in [0, 1); got {m.dropout}")
        if m.abundance not in ("reads", "relative"):
            raise UserError(f"--abundance must be reads or relative; got {m.abundance!r}")
        if not 0.0 < c.validation_fraction < 1.0:
            raise UserError(f"--validation-fraction must be in (0, 1); got {c.validation_fraction}")
        for flag, value in (("--mask-fraction", o.mask_fraction),
                            ("--nucleotide-mask-fraction", o.nucleotide_mask_fraction)):
            if not 0.0 < value < 1.0:
                raise UserError(f"{flag} must be in (0, 1); got {value}")
        for flag, value in (("--mask-weight", o.mask_weight), ("--distance-weight", o.distance_weight),
                            ("--nucleotide-weight", o.nucleotide_weight)):
            if value < 0:
                raise UserError(f"{flag} must be >= 0; got {value}")
        if o.distance not in DISTANCES:
            raise UserError(f"--distance must be one of {', '.join(DISTANCES)}; got {o.distance!r}")
        if o.distance_metric(c.tree) == "unifrac" and not c.tree:
            raise UserError("--distance unifrac needs a rooted tree (--tree)")
        weights = [o.mask_weight, o.distance_weight if o.distance != "none" else 0.0,
                   o.nucleotide_weight if m.asv_layers > 0 else 0.0]
        if not any(w > 0 for w in weights):
            raise UserError("every objective is off: give --mask-weight or --distance-weight > 0 (or "
                            "--nucleotide-weight with --asv-layers > 0)")
        if t.lr is not None and t.lr <= 0:
            raise UserError(f"--lr must be > 0; got {t.lr}")
        for flag, value in (("--weight-decay", t.weight_decay), ("--max-grad-norm", t.max_grad_norm),
                            ("--num-workers", t.num_workers), ("--patience", t.patience)):
            if value < 0:
                raise UserError(f"{flag} must be >= 0; got {value}")
        if t.warmup_steps is not None and t.warmup_steps < 0:
            raise UserError(f"--warmup-steps must be >= 0; got {t.warmup_steps}")
        if t.device not in DEVICES:
            raise UserError(f"--device must be one of {', '.join(DEVICES)}; got {t.device!r}")
        if t.precision not in PRECISIONS:
            raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}; got {t.precision!r}")
