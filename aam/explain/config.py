"""`ExplainConfig`: what `aam explain` was asked to do (kept free of heavy imports for the CLI parser)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ExplainConfig:
    models: tuple[str, ...] = ()  # checkpoints (model.pt) or `aam cv` folders (their fold models); all are averaged
    table: str = ""  # feature table: BIOM or QIIME 2 .qza
    sequences: str | None = None  # FASTA or rep-seqs .qza, when feature IDs are not DNA
    metadata: str | None = None  # needed for categorical columns; its target columns add Spearman and ordering
    taxonomy: str | None = None  # FeatureData[Taxonomy] .qza or TSV with 'Feature ID' and 'Taxon'
    output_dir: str = ""  # folder for the tables and plots
    batch_size: int | None = None  # samples per batch; None = the training batch size
    method: str = "cohort"  # "cohort": cohort Shapley values; "integrated-gradients"
    permutations: int = 128  # cohort: orders of the players sampled per sample
    similarity_ratio: float = 2.0  # cohort: abundances within this factor of each other count as similar
    seed: int = 0  # cohort: seeds the sampled orders
    steps: int = 64  # integrated gradients: integration steps (forward + backward passes per batch)
    reference: str = "empty"  # integrated gradients: "empty": from a sample with no reads; "counts": from the
    # same ASVs with zero reads
    sample: str | None = None  # the sample drawn as a waterfall; None = the first
    device: str = "auto"  # auto | cpu | cuda
    progress: bool = True  # tqdm bar over batches

