"""Random-forest importances for `aam baseline`, written as `asv_importance.tsv` like `aam explain` writes it.

- impurity importance: the forest's mean decrease in squared error from splits on the ASV (scikit-learn's
  `feature_importances_`, normalized to sum 1 over ASVs), computed on the training samples;
- permutation importance: the mean decrease in validation R^2 when the ASV's relative abundances are
  shuffled among the validation samples (`repeats` shuffles). An ASV no tree splits on, or with the same
  abundance in every validation sample, cannot change a prediction when shuffled: its importance is exactly
  0 and it is not evaluated.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from aam.evaluation.abundance import abundance_columns

PREDICT_CELLS = 16_000_000  # float32 cells per predict call (64 MB): stacking shuffled copies amortizes each call


def used_features(forest) -> np.ndarray:
    """Sorted column indices that at least one tree splits on."""
    used = np.concatenate([tree.tree_.feature[tree.tree_.feature >= 0] for tree in forest.estimators_])
    return np.unique(used)


def r2(observed: np.ndarray, predicted: np.ndarray) -> float:
    residual = ((observed - predicted) ** 2).sum()
    total = ((observed - observed.mean()) ** 2).sum()
    return float(1.0 - residual / total) if total > 0 else float("nan")


def accuracy(observed: np.ndarray, predicted: np.ndarray) -> float:
    return float((observed == predicted).mean())


def permutation_importance(forest, x: sp.csr_matrix, y: np.ndarray, repeats: int = 5, seed: int = 0) -> np.ndarray:
    """float64 [F]: mean decrease in R^2 (a classifier: accuracy) over `repeats` shuffles of each column of
    `x` [n, F] (validation samples with a known target)."""
    score = accuracy if hasattr(forest, "classes_") else r2
    dense = x.toarray().astype(np.float32)  # [n, F]; trees compare float32 values anyway
    n = dense.shape[0]
    out = np.zeros(dense.shape[1])
    if n < 2:
        return out
    reference = score(y, forest.predict(dense))
    varying = dense.max(axis=0) > dense.min(axis=0)
    candidates = [j for j in used_features(forest) if varying[j]]
    rng = np.random.default_rng(seed)
    per_call = max(1, PREDICT_CELLS // (n * repeats * dense.shape[1]))
    for start in range(0, len(candidates), per_call):
        chunk = candidates[start:start + per_call]
        stacked = np.repeat(dense[None], len(chunk) * repeats, axis=0)  # [copies, n, F]
        for c, j in enumerate(chunk):
            for r in range(repeats):
                stacked[c * repeats + r, :, j] = dense[rng.permutation(n), j]
        predicted = forest.predict(stacked.reshape(-1, dense.shape[1])).reshape(len(chunk), repeats, n)
        for c, j in enumerate(chunk):
            out[j] = reference - np.mean([score(y, predicted[c, r]) for r in range(repeats)])
    return out


def forest_columns(forest, x_val: sp.csr_matrix, y_val: np.ndarray, target: str, repeats: int,
                   seed: int) -> dict[str, np.ndarray]:
    """impurity_importance_<target> and, with repeats > 0, permutation_importance_<target> per ASV."""
    columns = {f"impurity_importance_{target}": forest.feature_importances_}
    if repeats:
        known = ~np.isnan(y_val)
        columns[f"permutation_importance_{target}"] = permutation_importance(forest, x_val[known], y_val[known],
                                                                             repeats, seed)
    return columns


def importance_table(study, abundance: sp.csr_matrix, importance: dict[str, np.ndarray]) -> pd.DataFrame:
    """asv_importance.tsv as `aam explain` writes it, with the forest's importances in place of attributions;
    sorted by the first column of `importance`."""
    frame = pd.DataFrame({"feature_id": study.feature_ids, "sequence": study.sequences, **importance,
                          **abundance_columns(abundance, study.targets, study.target_columns)})
    return frame.sort_values(next(iter(importance)), ascending=False, kind="stable") if importance else frame
