"""The starting weights of the linear model on abundances (`aam.models.linear`), fitted in closed form or by
a convex solver on the training samples: per regression target a ridge regression, per classification
target an L2-penalized logistic regression.

A linear model with more ASVs than samples needs its penalty chosen well, which stochastic steps and early
stopping on a small validation split do poorly. scikit-learn picks it here: `RidgeCV` by efficient
leave-one-out over `ALPHAS`, `LogisticRegressionCV` by the log loss of a stratified k-fold over `CS`.
Training then moves these weights with the rest of the model.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, RidgeCV
from sklearn.model_selection import StratifiedKFold

from aam.data.encoders import TargetScaler
from aam.models.layout import OutputLayout
from aam.models.linear import ASVLinear, abundance_feature

# penalties tried, for features f in [0, 1] (aam.models.linear): ridge alphas for z-scored targets, and the
# inverse penalties C of the logistic regression
ALPHAS = np.logspace(-3, 4, 36)
CS = np.logspace(-2, 3, 11)
MAX_FOLDS = 5
MAX_SAMPLES = 20_000  # a larger training set starts from fits on this many of its samples, drawn at random


def linear_features(counts: sp.spmatrix, rows: np.ndarray, vocabulary: int) -> sp.csr_matrix:
    """float64 sparse [n, V]: what the linear term reads, per sample and vocabulary row: the sum of f(relative
    abundance) over the sample's features in that row. counts: [n, F] reads; rows: int64 [F], each feature's
    row (-1 outside the vocabulary)."""
    counts = sp.csr_matrix(counts, dtype=np.float64)
    totals = np.asarray(counts.sum(axis=1)).ravel()
    rel = sp.diags(1.0 / np.maximum(totals, 1.0)) @ counts
    rel.data = abundance_feature(torch.from_numpy(rel.data)).numpy()
    known = np.flatnonzero(rows >= 0)
    to_rows = sp.csr_matrix((np.ones(len(known)), (known, rows[known])), shape=(len(rows), vocabulary))
    return sp.csr_matrix(rel @ to_rows)


@torch.no_grad()
def fit_start(linear: ASVLinear, counts: sp.spmatrix, tokens: np.ndarray, targets: np.ndarray,
              layout: OutputLayout, scaler: TargetScaler, balanced: bool = False, seed: int = 0) -> None:
    """Set `linear`'s weights and biases to the linear fits on the training samples.

    counts: [n, F] reads of the training samples; tokens: uint8 [F, L] of the features; targets: float64
    [n, T] as the training set holds them (regression targets in their units, classification targets as level
    indices; NaN = missing, left out of that target's fit); `balanced`: weigh the levels as
    `--class-weights auto` does; `seed`: the logistic regression's fold assignment and, beyond MAX_SAMPLES
    training samples, which of them the fits use. A target with fewer than two samples (or levels) keeps
    zeros.
    """
    rows = linear.rows(torch.from_numpy(tokens).to(linear.hashes.device)).cpu().numpy()
    if counts.shape[0] > MAX_SAMPLES:  # the fits' cost grows with n^2 to n^3; a start needs no more
        keep = np.sort(np.random.default_rng(seed).choice(counts.shape[0], MAX_SAMPLES, replace=False))
        counts, targets = counts[keep], targets[keep]
    x = linear_features(counts, rows, linear.hashes.numel())
    targets = targets.astype(np.float64)
    z = scaler.transform(targets)
    column = 0
    for t in layout.regression_targets:
        known = ~np.isnan(z[:, t])
        if known.sum() >= 2:
            ridge = RidgeCV(alphas=ALPHAS).fit(x[known], z[known, t])
            _set(linear, column, ridge.coef_, ridge.intercept_)
        column += 1
    for t in layout.class_targets:
        known = ~np.isnan(targets[:, t])
        y = targets[known, t].astype(np.int64)
        if len(np.unique(y)) >= 2:
            model = _logistic(x[known], y, balanced, seed)
            coef, intercept = model.coef_, model.intercept_
            if len(model.classes_) == 2:  # one vector: the log-odds of the second level against the first
                coef, intercept = np.stack([np.zeros_like(coef[0]), coef[0]]), np.array([0.0, intercept[0]])
            for level, w, b in zip(model.classes_, coef, intercept):
                _set(linear, column + int(level), w, b)
        column += layout.n_classes[t]


def _logistic(x: np.ndarray, y: np.ndarray, balanced: bool, seed: int):
    with warnings.catch_warnings():
        # scikit-learn 1.8+ announces changes of defaults and attributes that leave this L2 fit as it is
        warnings.simplefilter("ignore", FutureWarning)
        return _fit_logistic(x, y, balanced, seed)


def _fit_logistic(x: np.ndarray, y: np.ndarray, balanced: bool, seed: int):
    weight = "balanced" if balanced else None
    folds = min(MAX_FOLDS, int(np.bincount(y)[np.unique(y)].min()))  # each fold holds every level
    if folds < 2:
        return LogisticRegression(class_weight=weight, max_iter=2000).fit(x, y)
    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    return LogisticRegressionCV(Cs=CS, cv=cv, scoring="neg_log_loss", class_weight=weight, max_iter=2000).fit(x, y)


def _set(linear: ASVLinear, column: int, weight: np.ndarray, bias: float) -> None:
    linear.weight[:, column] = torch.as_tensor(weight, dtype=linear.weight.dtype)
    linear.bias[column] = float(bias)
