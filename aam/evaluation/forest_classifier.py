"""The reference classifiers of a classification target: the random-forest classifier on relative
abundances (q2-sample-classifier's model, as `aam baseline` fits it) and the class prior (every sample
gets the training levels' frequencies)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from aam.data.encoders import CategoryEncoder
from aam.data.study import Study


def study_levels(study: Study) -> CategoryEncoder | None:
    """The levels of every classification target over the whole study (sorted, the order of
    `Study.target_values`' indices), None without one: the common columns of cross-validation's probabilities,
    whatever levels a fold's training part holds."""
    if not study.class_columns:
        return None
    return CategoryEncoder.fit(study.class_columns, study.class_labels())


def forest_probabilities(x: sp.csr_matrix, observed: np.ndarray, train_idx: np.ndarray, test_idx: np.ndarray,
                         n_levels: int, n_estimators: int = 500, seed: int = 42, n_jobs: int = -1):
    """(float64 [len(test_idx), n_levels] probabilities, the fitted forest or None): a random-forest
    classifier on the rows `train_idx` of `x` whose level index (`observed`, NaN = missing) is known; a
    level absent there gets probability 0. Without training levels: NaN rows and no forest."""
    from sklearn.ensemble import RandomForestClassifier

    y = observed[train_idx]
    known = ~np.isnan(y)
    out = np.full((len(test_idx), n_levels), np.nan)
    if not known.any():
        return out, None
    forest = RandomForestClassifier(n_estimators=n_estimators, random_state=seed, n_jobs=n_jobs)
    forest.fit(x[train_idx[known]], y[known].astype(np.int64))
    out[:] = 0.0
    out[:, forest.classes_] = forest.predict_proba(x[test_idx])
    return out, forest


def prior_probabilities(observed: np.ndarray, train_idx: np.ndarray, n_test: int, n_levels: int) -> np.ndarray:
    """float64 [n_test, n_levels]: each level's share of the training rows with a known level (NaN rows
    without one)."""
    y = observed[train_idx]
    y = y[~np.isnan(y)].astype(np.int64)
    if not len(y):
        return np.full((n_test, n_levels), np.nan)
    shares = np.bincount(y, minlength=n_levels) / len(y)
    return np.broadcast_to(shares, (n_test, n_levels)).copy()
