"""The pretraining corpus: several tables read as one study, their ASVs matched by sequence.

Each table's features become their sequences cut to `max_bp` nucleotides (upper case); features equal on
those nucleotides are one ASV of the corpus (within a table their reads add up). Sample IDs that more than
one table uses are prefixed with the table's file name (its path as given when two tables share a name).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from aam.data.study import Study, load_study
from aam.errors import UserError


def load_corpus(tables: tuple[str, ...], sequences: tuple[str, ...], max_bp: int) -> tuple[Study, list[list[str]]]:
    """(the corpus as one Study without targets, per corpus feature the original feature IDs it merges)."""
    studies = []
    for i, table in enumerate(tables):
        given = sequences[i] if sequences else None
        studies.append(load_study(table, None if given in (None, "none") else given, require_targets=False))
    column: dict[str, int] = {}
    origins: list[list[str]] = []
    rows, cols, values, sample_ids = [], [], [], []
    clash = {s for s, n in Counter(s for study in studies for s in study.sample_ids).items() if n > 1}
    for table, study in zip(tables, studies):
        keys = [seq[:max_bp].upper() for seq in study.sequences]
        index = np.empty(len(keys), dtype=np.int64)
        for j, (key, feature_id) in enumerate(zip(keys, study.feature_ids)):
            if key not in column:
                column[key] = len(origins)
                origins.append([])
            index[j] = column[key]
            origins[index[j]].append(feature_id)
        coo = study.counts.tocoo()
        rows.append(coo.row + len(sample_ids))
        cols.append(index[coo.col])
        values.append(coo.data)
        name = Path(table).name if len({Path(t).name for t in tables}) == len(tables) else str(table)
        sample_ids += [f"{name}:{s}" if s in clash else s for s in study.sample_ids]
    counts = sp.csr_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
                           shape=(len(sample_ids), len(origins)), dtype=np.float64)
    counts.sum_duplicates()
    corpus_sequences = list(column)
    study = Study(counts=counts, sample_ids=sample_ids, feature_ids=corpus_sequences, sequences=corpus_sequences,
                  target_columns=(), targets=np.zeros((len(sample_ids), 0)), categorical_columns=(),
                  categories=np.zeros((len(sample_ids), 0), dtype=object), metadata=None)
    return study, origins


def split_corpus(n_samples: int, validation_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training positions, held-out positions), a seeded random split with at least 2 samples on each side."""
    if n_samples < 4:
        raise UserError(f"the tables hold {n_samples} samples with reads; pretraining needs at least 4")
    n_val = min(max(2, round(validation_fraction * n_samples)), n_samples - 2)
    order = np.random.default_rng(seed).permutation(n_samples)
    return np.sort(order[n_val:]), np.sort(order[:n_val])
