"""Study-level tables: `asv_importance.tsv` (one row per ASV) and `taxon_importance.tsv` (one row per
taxon and rank), from per-sample attributions; `abundance_columns` is shared with `aam baseline`.

Taxon attributions are sums of their ASVs' attributions per sample, so they also add up to the prediction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import rankdata

from aam.explain.taxonomy import Taxonomy


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


def importance_columns(attributions: list[sp.csr_matrix], outputs: list[str],
                       abundance: sp.csr_matrix) -> dict[str, np.ndarray]:
    """Per column and output: mean_abs_attribution_<output> and mean_attribution_<output> over all samples
    (a sample without the ASV contributes 0), and mean_abs_attribution_present_<output> over the samples
    where `abundance` [N, F] is positive (NaN where there are none), so that
    mean_abs_attribution = prevalence * mean_abs_attribution_present."""
    present = np.asarray((abundance > 0).sum(axis=0)).ravel()
    columns = {}
    for name, a in zip(outputs, attributions):
        total_abs = np.asarray(abs(a).sum(axis=0)).ravel()
        columns[f"mean_abs_attribution_{name}"] = total_abs / a.shape[0]
        columns[f"mean_attribution_{name}"] = np.asarray(a.mean(axis=0)).ravel()
        with np.errstate(invalid="ignore", divide="ignore"):
            columns[f"mean_abs_attribution_present_{name}"] = np.where(present > 0, total_abs / present, np.nan)
    return columns


def asv_table(feature_ids, sequences, abundance: sp.csr_matrix, targets: np.ndarray, target_columns,
              attributions: list[sp.csr_matrix], outputs: list[str], taxonomy: Taxonomy | None) -> pd.DataFrame:
    """One row per ASV, sorted by the first output's mean |attribution| (largest first)."""
    frame = {"feature_id": list(feature_ids), "sequence": list(sequences)}
    if taxonomy is not None:
        frame["taxonomy"] = [taxonomy.lineage(f) for f in feature_ids]
    frame.update(importance_columns(attributions, outputs, abundance))
    frame.update(abundance_columns(abundance, targets, target_columns))
    return pd.DataFrame(frame).sort_values(f"mean_abs_attribution_{outputs[0]}", ascending=False, kind="stable")


def taxon_table(feature_ids, abundance: sp.csr_matrix, targets: np.ndarray, target_columns,
                attributions: list[sp.csr_matrix], outputs: list[str], taxonomy: Taxonomy) -> pd.DataFrame:
    """One row per (rank, taxon): attributions and abundances summed over the taxon's ASVs per sample,
    then the same columns as `asv_table`; sorted by rank, then mean |attribution| of the first output."""
    parts = []
    for depth, rank in enumerate(taxonomy.ranks):
        labels = np.array([taxonomy.taxon_at(f, depth) for f in feature_ids])
        names, group = np.unique(labels, return_inverse=True)
        # [F, G] indicator: right-multiplying sums each sample's values over the taxon's ASVs.
        member = sp.csr_matrix((np.ones(len(labels)), (np.arange(len(labels)), group.ravel())),
                               shape=(len(labels), len(names)))
        frame = {"rank": rank, "taxon": names, "n_asvs": np.asarray(member.sum(axis=0)).ravel().astype(int)}
        summed = sp.csr_matrix(abundance @ member)
        frame.update(importance_columns([sp.csr_matrix(a @ member) for a in attributions], outputs, summed))
        frame.update(abundance_columns(summed, targets, target_columns))
        order = np.argsort(-frame[f"mean_abs_attribution_{outputs[0]}"], kind="stable")
        parts.append(pd.DataFrame(frame).iloc[order])
    return pd.concat(parts, ignore_index=True)
