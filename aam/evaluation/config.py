"""`PredictConfig`: what `aam predict` was asked to do (kept free of heavy imports for the CLI parser)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PredictConfig:
    model: str = ""  # model.pt or last.pt, or an `aam cv` folder (its fold models' predictions are averaged)
    table: str = ""  # feature table: BIOM or QIIME 2 .qza
    sequences: str | None = None  # FASTA or rep-seqs .qza, when feature IDs are not DNA
    metadata: str | None = None  # needed when the model uses categorical columns
    device: str = "auto"  # auto | cpu | cuda
    batch_size: int | None = None  # samples per batch; None = the training batch size
    output: str = ""  # TSV to write: sample_id, then the predicted columns
