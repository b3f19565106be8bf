"""Relative abundances, and the per-ASV abundance columns of a study (prevalence, mean relative abundance,
Spearman correlation with each target) written beside the importances of `aam explain` and `aam baseline` in
`asv_importance.tsv`."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.stats import rankdata


def relative_abundance(counts: sp.csr_matrix) -> sp.csr_matrix:
    """Rows scaled to sum 1 (samples with reads only reach here)."""
    totals = np.asarray(counts.sum(axis=1)).ravel()
    return sp.diags(1.0 / totals) @ counts


def spearman_columns(values: sp.spmatrix | np.ndarray, target: np.ndarray) -> np.ndarray:
    """Spearman correlation of each column of `values` [N, F] with `target` [N] over rows where the target
    is known (average ranks for ties; NaN for a constant column or fewer than 3 known targets)."""
    known = ~np.isnan(target)
    out = np.full(values.shape[1], np.nan)
    if known.sum() < 3:
        return out
    dense = values[known].toarray() if sp.issparse(values) else np.asarray(values)[known]
    x = rankdata(dense, axis=0)  # [n, F]
    y = rankdata(target[known])
    x -= x.mean(axis=0)
    y -= y.mean()
    norm = np.sqrt((x**2).sum(axis=0) * (y**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        out[:] = np.where(norm > 0, (x * y[:, None]).sum(axis=0) / np.where(norm > 0, norm, 1.0), np.nan)
    return out


def abundance_columns(abundance: sp.csr_matrix, targets: np.ndarray, target_columns) -> dict[str, np.ndarray]:
    """prevalence, mean_relative_abundance and spearman_<target> per column of `abundance` [N, F]."""
    columns = {"prevalence": np.asarray((abundance > 0).mean(axis=0)).ravel(),
               "mean_relative_abundance": np.asarray(abundance.mean(axis=0)).ravel()}
    for t, name in enumerate(target_columns):
        columns[f"spearman_{name}"] = spearman_columns(abundance, targets[:, t])
    return columns
