"""Study-level tables: `asv_importance.tsv` (one row per ASV) and `taxon_importance.tsv` (one row per
taxon and rank), from per-sample attributions; the abundance columns beside them come from
`aam.evaluation.abundance`, which `aam baseline` shares.

Taxon attributions are sums of their ASVs' attributions per sample, so they also add up to the prediction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from aam.evaluation.abundance import abundance_columns
from aam.explain.taxonomy import Taxonomy


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
