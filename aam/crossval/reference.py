"""The reference methods scored on every fold next to AAM: the random forest and the mean predictor."""

from __future__ import annotations

import numpy as np

from aam.data.study import Study
from aam.evaluation.baseline import forest_predictions

FOREST, MEAN, PRIOR = "forest", "mean", "prior"


def reference_predictions(study: Study, train_part: np.ndarray, test_idx: np.ndarray, trees: int, seed: int,
                          n_jobs: int) -> dict[str, np.ndarray]:
    """{method: float64 [len(test_idx), T]}: the forest (`aam baseline`'s model) and the mean of each target
    over the fold's whole training part (NaN where a target is never observed there)."""
    forest = forest_predictions(study, train_part, test_idx, trees, seed, n_jobs)
    observed = study.targets[train_part]
    known = ~np.isnan(observed)
    means = np.where(known.any(axis=0), np.nansum(observed, axis=0) / np.maximum(known.sum(axis=0), 1), np.nan)
    return {FOREST: forest, MEAN: np.broadcast_to(means, (len(test_idx), len(means))).copy()}
