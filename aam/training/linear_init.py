"""The starting weights of the linear model on abundances (`aam.models.linear`), fitted in closed form or by
a convex solver on the training samples: per regression target a ridge regression, per classification
target an L2-penalized logistic regression.

A linear model with more ASVs than samples needs its penalty chosen well, which stochastic steps and early
stopping on a small validation split do poorly. scikit-learn picks it here: `RidgeCV` by efficient
leave-one-out over `ALPHAS`, `LogisticRegressionCV` by the log loss of a stratified k-fold over `CS`.
Where the model has kernels (`--asv-kernel auto`), a regression target's fit is instead a kernel ridge
regression (`aam.models.kernel`) when one scores a lower mean absolute error than the ridge regression in
grouped folds of the training samples (the run's group column keeps a subject in one fold): RBF and Laplacian
kernels, their widths relative to the median distance between the samples, and their penalties, chosen
together by those folds.

Training then moves the linear weights with the rest of the model; the kernel regressions stay as fitted.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch
from scipy.spatial.distance import pdist, squareform
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, Ridge, RidgeCV
from sklearn.model_selection import GroupKFold, StratifiedKFold

from aam.data.encoders import TargetScaler
from aam.models.layout import OutputLayout
from aam.models.linear import ASVLinear, abundance_feature

# penalties tried, for features f in [0, 1] (aam.models.linear): ridge alphas for z-scored targets, and the
# inverse penalties C of the logistic regression
ALPHAS = np.logspace(-3, 4, 36)
CS = np.logspace(-2, 3, 11)
MAX_FOLDS = 5
MAX_SAMPLES = 20_000  # a larger training set starts from fits on this many of its samples, drawn at random
# kernel ridge regressions: the samples they hold (a larger training set: this many, drawn at random), the
# grouped folds that choose them, their penalties, and their widths times the median distance between samples
MAX_KERNEL_SAMPLES = 1000
KERNEL_FOLDS = 5
KERNEL_ALPHAS = np.logspace(-3, 1, 5)
KERNEL_GAMMAS = np.logspace(-2, 1, 7)


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


def kernel_rows(n: int, seed: int) -> np.ndarray:
    """int64 [min(n, MAX_KERNEL_SAMPLES)], sorted: which of n training samples the kernel regressions hold."""
    if n <= MAX_KERNEL_SAMPLES:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, MAX_KERNEL_SAMPLES, replace=False))


@torch.no_grad()
def fit_start(linear: ASVLinear, counts: sp.spmatrix, tokens: np.ndarray, targets: np.ndarray,
              layout: OutputLayout, scaler: TargetScaler, balanced: bool = False, seed: int = 0,
              groups: np.ndarray | None = None) -> None:
    """Set `linear`'s weights and biases to the linear fits on the training samples, and where it has kernels
    (`linear.kernel`), a regression column to the kernel regression that scores better (its linear weights
    and bias then stay zero).

    counts: [n, F] reads of the training samples; tokens: uint8 [F, L] of the features; targets: float64
    [n, T] as the training set holds them (regression targets in their units, classification targets as level
    indices; NaN = missing, left out of that target's fit); `balanced`: weigh the levels as
    `--class-weights auto` does; `seed`: the logistic regression's fold assignment and, beyond MAX_SAMPLES
    training samples, which of them the fits use; `groups`: int [n], the group of each sample, kept whole by
    the folds that choose a kernel (None: each sample its own). A target with fewer than two samples (or
    levels) keeps zeros.
    """
    rows = linear.rows(torch.from_numpy(tokens).to(linear.hashes.device)).cpu().numpy()
    kernel = _KernelData(linear, counts, rows, targets, scaler, groups, seed) if linear.kernel is not None else None
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
            if kernel is None or not kernel.fit(column, t, ridge.alpha_):
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


class _KernelData:
    """The kernel regressions' samples (`kernel_rows`): their features, z-scored targets, groups and pairwise
    distances, and the fit of one regression column into `linear.kernel`."""

    def __init__(self, linear: ASVLinear, counts: sp.spmatrix, rows: np.ndarray, targets: np.ndarray,
                 scaler: TargetScaler, groups: np.ndarray | None, seed: int):
        self.linear, self.seed = linear, seed
        self.samples = kernel_rows(counts.shape[0], seed)
        self.x = linear_features(counts[self.samples], rows, linear.hashes.numel()).toarray()  # [m, V]
        self.z = scaler.transform(targets[self.samples].astype(np.float64))
        self.groups = np.arange(len(self.samples)) if groups is None else np.asarray(groups)[self.samples]
        self.distances = {kind: squareform(pdist(self.x, metric))
                          for kind, metric in ((1, "sqeuclidean"), (2, "cityblock"))}  # kind: KINDS index

    def fit(self, column: int, target: int, ridge_alpha: float) -> bool:
        """Fit `column` to the kernel regression of `target` when one scores better than the ridge regression
        of penalty `ridge_alpha` in grouped folds; whether it did."""
        known = np.flatnonzero(~np.isnan(self.z[:, target]))
        z = self.z[known, target]
        distances = {kind: d[np.ix_(known, known)] for kind, d in self.distances.items()}
        choice = choose_kernel(self.x[known], z, self.groups[known], distances, ridge_alpha, self.seed)
        if choice is None:
            return False
        kind, gamma, alpha = choice
        gram = np.exp(-gamma * distances[kind])
        dual = np.zeros(len(self.samples))
        dual[known] = np.linalg.solve(gram + alpha * np.eye(len(known)), z)
        kernel = self.linear.kernel
        kernel.set_landmarks(torch.as_tensor(self.x, dtype=kernel.landmarks.dtype))
        kernel.set_column(column, kind, gamma, torch.as_tensor(dual, dtype=kernel.dual.dtype))
        return True


def choose_kernel(x: np.ndarray, z: np.ndarray, groups: np.ndarray, distances: dict[int, np.ndarray],
                  ridge_alpha: float, seed: int) -> tuple[int, float, float] | None:
    """(kind, gamma, alpha) of the kernel ridge regression with the lowest mean absolute error of z in grouped
    folds, if lower than the ridge regression's (penalty `ridge_alpha`) in the same folds; else None (also
    with fewer than two groups). x [n, V] features, z [n], groups [n], distances {kind: [n, n]}."""
    folds = group_folds(groups, seed)
    if folds is None:
        return None
    ridge = np.empty(len(z))
    for k in np.unique(folds):
        test = folds == k
        ridge[test] = Ridge(alpha=ridge_alpha).fit(x[~test], z[~test]).predict(x[test])
    best, choice = np.abs(ridge - z).mean(), None
    for kind, distance in distances.items():
        scale = np.median(distance[np.triu_indices(len(z), 1)])
        if not scale > 0:
            continue
        for gamma in KERNEL_GAMMAS / scale:
            error = _kernel_errors(np.exp(-gamma * distance), z, folds)  # [alphas]
            i = int(np.argmin(error))
            if error[i] < best:
                best, choice = error[i], (kind, float(gamma), float(KERNEL_ALPHAS[i]))
    return choice


def _kernel_errors(gram: np.ndarray, z: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """[len(KERNEL_ALPHAS)]: the mean absolute error of the kernel ridge regressions with Gram matrix `gram`
    in `folds`; one eigendecomposition per fold serves every penalty."""
    predictions = np.empty((len(KERNEL_ALPHAS), len(z)))
    for k in np.unique(folds):
        test, train = folds == k, folds != k
        values, vectors = np.linalg.eigh(gram[np.ix_(train, train)])
        projected = vectors.T @ z[train]
        cross = gram[np.ix_(test, train)] @ vectors
        for i, alpha in enumerate(KERNEL_ALPHAS):
            predictions[i, test] = cross @ (projected / (values + alpha))
    return np.abs(predictions - z).mean(1)


def group_folds(groups: np.ndarray, seed: int) -> np.ndarray | None:
    """int [n]: each sample's fold of KERNEL_FOLDS (fewer with fewer groups), a group's samples in one; None
    with fewer than two groups. The groups are numbered in an order shuffled by `seed`, then `GroupKFold`
    deals them out, largest first, to the fold with the fewest samples so far."""
    names, groups = np.unique(groups, return_inverse=True)
    if len(names) < 2:
        return None
    shuffled = np.random.default_rng(seed).permutation(len(names))
    folds = np.empty(len(groups), dtype=np.int64)
    splits = GroupKFold(min(KERNEL_FOLDS, len(names))).split(np.zeros(len(groups)), groups=shuffled[groups])
    for k, (_, test) in enumerate(splits):
        folds[test] = k
    return folds


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
