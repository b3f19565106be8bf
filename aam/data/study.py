"""`load_study`: read a table, its sequences and metadata, check them, and join them per sample."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from aam.data.fasta import read_sequences
from aam.data.metadata import read_metadata
from aam.data.table import FeatureTable, read_table
from aam.data.tokenizer import is_dna
from aam.errors import UserError

log = logging.getLogger("aam.data")


@dataclass
class Study:
    counts: sp.csr_matrix  # float64 [n_samples, n_features]; features with no reads in kept samples removed
    sample_ids: list[str]
    feature_ids: list[str]
    sequences: list[str]  # one DNA string per feature
    target_columns: tuple[str, ...]
    targets: np.ndarray  # float64 [n_samples, T], raw units, NaN = missing
    categorical_columns: tuple[str, ...]
    categories: np.ndarray  # object [n_samples, C]: raw string values, None = missing
    metadata: pd.DataFrame | None  # metadata rows aligned with sample_ids (all columns), None without metadata
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> number of samples dropped
    class_columns: tuple[str, ...] = ()  # the targets that are classified (their `targets` column is all NaN)
    labels: np.ndarray | None = None  # object [n_samples, len(class_columns)]: raw levels, None = missing

    def class_labels(self) -> np.ndarray:
        """object [n_samples, len(class_columns)] (empty without classification targets)."""
        return self.labels if self.labels is not None else np.full((self.n_samples, 0), None, dtype=object)

    def target_values(self) -> np.ndarray:
        """float64 [n_samples, T]: `targets`, with each classification target's level as an index into its
        sorted levels (NaN = missing)."""
        values = self.targets.copy()
        for i, column in enumerate(self.class_columns):
            labels = self.class_labels()[:, i]
            known = ~is_none(labels)
            t = self.target_columns.index(column)
            values[known, t] = np.unique(labels[known].astype(str), return_inverse=True)[1]
        return values

    def strata(self) -> np.ndarray | None:
        """int64 [n_samples]: each sample's level index of the first classification target (-1 = missing),
        what folds and validation splits are stratified by; None without classification targets."""
        if not self.class_columns:
            return None
        values = self.target_values()[:, self.target_columns.index(self.class_columns[0])]
        return np.where(np.isnan(values), -1, values).astype(np.int64)

    @property
    def n_samples(self) -> int:
        return len(self.sample_ids)

    def column(self, name: str, role: str = "metadata") -> np.ndarray:
        """object [n_samples]: raw values of a metadata column (None = missing)."""
        if self.metadata is None or name not in self.metadata.columns:
            raise UserError(f"{role} column '{name}' is not in the metadata")
        return _as_objects(self.metadata[name])


def resolve_sequences(table: FeatureTable, sequences: str | Path | None) -> list[str]:
    """One sequence per table feature: from `sequences` when given, else the feature IDs if they are DNA."""
    if sequences is None:
        not_dna = [f for f in table.feature_ids if not is_dna(f)]
        if not_dna:
            raise UserError(
                f"feature IDs in {table.path} are not DNA sequences (e.g. '{not_dna[0]}', {len(not_dna)} of "
                f"{len(table.feature_ids)}; hashed IDs?): pass the representative sequences with --sequences "
                "(FASTA or rep-seqs .qza)")
        return list(table.feature_ids)
    records = read_sequences(sequences)
    missing = [f for f in table.feature_ids if f not in records]
    if missing:
        raise UserError(f"{len(missing)} of {len(table.feature_ids)} features in {table.path} have no sequence in "
                        f"{sequences} (e.g. '{missing[0]}')")
    return [records[f] for f in table.feature_ids]


def load_study(
    table: str | Path,
    sequences: str | Path | None = None,
    metadata: str | Path | None = None,
    target_columns: Sequence[str] = (),
    categorical_columns: Sequence[str] = (),
    group_column: str | None = None,
    require_targets: bool = True,
    classification_columns: Sequence[str] = (),
) -> Study:
    """Read and join a study. Drops (with a logged warning and a count in `Study.dropped`):
    samples with zero reads; when `require_targets`, table samples without metadata and samples
    whose targets are all missing. With `require_targets=False` (prediction) every table sample with
    reads is kept, metadata is optional, and target or categorical columns it lacks read as missing
    (with a warning), so `targets` and `categories` always have one column per name given.
    A target in `classification_columns`, declared categorical or holding text is a classification target
    (`Study.class_columns`, its levels in `Study.labels`); it needs two levels, each in two samples or more."""
    target_columns, categorical_columns = tuple(target_columns), tuple(categorical_columns)
    ftable = read_table(table)
    meta = read_metadata(metadata) if metadata is not None else None
    if meta is None and (target_columns or categorical_columns or group_column) and require_targets:
        raise UserError("target, categorical and group columns need a metadata file (--metadata)")
    n = len(ftable.sample_ids)
    class_columns: tuple[str, ...] = ()
    labels = np.full((n, 0), None, dtype=object)
    dropped: dict[str, int] = {}
    keep = np.ones(n, dtype=bool)
    targets = np.full((n, len(target_columns)), np.nan)
    categories = np.full((n, len(categorical_columns)), None, dtype=object)
    frame = None
    if meta is not None:
        for column, role in [(c, "target") for c in target_columns] + [(c, "categorical") for c in categorical_columns]:
            if require_targets:
                meta.require(column, role)
            elif column not in meta.frame.columns:
                log.warning("%s column '%s' is not in metadata %s; read as missing", role, column, meta.path)
        if group_column is not None and require_targets:
            meta.require(group_column, "group")
        in_meta = pd.Index(ftable.sample_ids).isin(meta.frame.index)
        if not in_meta.any():
            raise UserError(
                f"no sample IDs shared between table {ftable.path} ({n} samples, e.g. "
                f"'{ftable.sample_ids[0] if ftable.sample_ids else ''}') and metadata {meta.path} "
                f"({len(meta.frame)} samples, e.g. '{meta.frame.index[0] if len(meta.frame) else ''}')")
        if require_targets:
            _drop(keep, ~in_meta, dropped, "not in metadata")
        frame = meta.frame.reindex(ftable.sample_ids)
        class_columns = tuple(c for c in target_columns if c in meta.frame.columns
                              and meta.is_class_target(c, named=c in classification_columns))
        labels = np.full((n, len(class_columns)), None, dtype=object)
        for i, column in enumerate(class_columns):
            meta.check_finite(column, "target")
            labels[:, i] = _as_objects(frame[column])
        for i, column in enumerate(target_columns):
            if column in meta.frame.columns and column not in class_columns:
                values = pd.Series(meta.numeric(column), index=meta.frame.index)
                targets[:, i] = values.reindex(ftable.sample_ids).to_numpy(dtype=np.float64)
        for i, column in enumerate(categorical_columns):
            if column in frame.columns:
                meta.check_finite(column, "categorical")
                categories[:, i] = _as_objects(frame[column])
    reads = np.asarray(ftable.counts.sum(axis=1)).ravel()
    _drop(keep, reads <= 0, dropped, "zero reads")
    if target_columns and require_targets:
        _drop(keep, np.isnan(targets).all(axis=1) & is_none(labels).all(axis=1), dropped, "all targets missing")
    if not keep.any():
        raise UserError(f"no samples left in {ftable.path} after dropping: "
                        + ", ".join(f"{count} {why}" for why, count in dropped.items()))
    rows = np.flatnonzero(keep)
    counts = ftable.counts[rows]
    used = np.flatnonzero(np.asarray(counts.sum(axis=0)).ravel() > 0)
    if used.size < counts.shape[1]:  # column indexing copies the whole table: only when a feature goes
        counts = counts[:, used].tocsr()
    kept_table = FeatureTable(counts, [ftable.sample_ids[i] for i in rows],
                              [ftable.feature_ids[j] for j in used], ftable.path)
    labels = labels[rows]
    for i, column in enumerate(class_columns if require_targets else ()):
        check_levels(column, labels[:, i], kept_table.sample_ids)
    return Study(
        counts=counts, sample_ids=kept_table.sample_ids, feature_ids=kept_table.feature_ids,
        sequences=resolve_sequences(kept_table, sequences), target_columns=target_columns, targets=targets[rows],
        categorical_columns=categorical_columns, categories=categories[rows],
        metadata=frame.iloc[rows] if frame is not None else None, dropped=dropped, class_columns=class_columns,
        labels=labels,
    )


def check_levels(column: str, values: np.ndarray, sample_ids: list[str]) -> None:
    """UserError when classification target `column` has fewer than two levels, or a level held by one sample
    only (it could not be on both sides of a split)."""
    seen = [str(v) for v in values if v is not None]
    levels, counts = np.unique(np.asarray(seen, dtype=object).astype(str), return_counts=True)
    if len(levels) < 2:
        found = f"only the level '{levels[0]}'" if len(levels) else "no values"
        raise UserError(f"classification target '{column}' has {found}: a classifier needs two levels or more")
    single = levels[counts == 1]
    if len(single):
        sample = sample_ids[next(i for i, v in enumerate(values) if v is not None and str(v) == single[0])]
        raise UserError(f"level '{single[0]}' of classification target '{column}' has a single sample ('{sample}'): "
                        "it cannot be learned and validated; remove the sample or merge the level into another")


def is_none(values: np.ndarray) -> np.ndarray:
    """bool array: where an object array holds None (a missing value)."""
    return np.frompyfunc(lambda v: v is None, 1, 1)(values).astype(bool)


def _drop(keep: np.ndarray, mask: np.ndarray, dropped: dict[str, int], reason: str) -> None:
    newly = int((keep & mask).sum())
    if newly:
        dropped[reason] = newly
        log.warning("dropped %d sample%s: %s", newly, "s" if newly != 1 else "", reason)
    keep &= ~mask


def _as_objects(values: pd.Series) -> np.ndarray:
    out = values.to_numpy(dtype=object).copy()
    out[pd.isna(values).to_numpy()] = None
    return out
