"""Metrics of one categorical target: predicted probabilities [N, K] over its K levels against the observed
level index [N] (-1 = missing, skipped), the reliability curve, and temperature scaling of the logits.

Everything is NumPy in float64 (scipy for the one-dimensional temperature search). Metrics that a set of
samples cannot define (no samples; a ranking score with a single observed level) are NaN, never an error.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
from scipy.optimize import minimize_scalar
from scipy.special import logsumexp

CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "roc_auc", "average_precision", "log_loss", "brier",
                          "ece")
# log loss reads probabilities clipped to [eps, 1 - eps], eps = float64 machine epsilon (scikit-learn 1.9
# does the same), so a true level predicted with probability 0 costs -log(eps) ~ 36.04 instead of inf
LOG_LOSS_EPS = float(np.finfo(np.float64).eps)
CALIBRATION_BINS = 10
TEMPERATURE_BOUNDS = (0.05, 20.0)


def _float64(values, name: str) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float64).numpy()
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[1] < 2:
        raise ValueError(f"{name} must be [N, K] with K >= 2 levels, got shape {values.shape}")
    return values


def observed_rows(scores, observed, name: str = "probabilities") -> tuple[np.ndarray, np.ndarray]:
    """The rows of `scores` [N, K] (NumPy or torch; float64 out) whose observed level is >= 0, and those levels
    (int64). `name` names `scores` in the error for a caller's mistake."""
    scores = _float64(scores, name)
    observed = np.asarray(observed)
    if observed.shape != scores.shape[:1] or not np.issubdtype(observed.dtype, np.integer):
        raise ValueError(f"observed must be integer [N] = [{scores.shape[0]}] matching {name}, "
                         f"got {observed.dtype} {observed.shape}")
    if observed.size and (observed.min() < -1 or observed.max() >= scores.shape[1]):
        raise ValueError(f"observed must hold level indices 0..{scores.shape[1] - 1} or -1 (missing), "
                         f"got values in [{observed.min()}, {observed.max()}]")
    keep = observed >= 0
    return scores[keep], observed[keep].astype(np.int64)


def softmax_probabilities(logits, temperature: float = 1.0) -> np.ndarray:
    """softmax(logits / temperature) per row, float64 [N, K]; rows sum to 1."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = _float64(logits, "logits") / temperature
    e = np.exp(z - z.max(axis=1, keepdims=True))  # the largest term is exp(0) = 1: no overflow, no 0 / 0
    return e / e.sum(axis=1, keepdims=True)


def _ranked_counts(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative true and false positives when the threshold steps down through each distinct score."""
    order = np.argsort(-scores, kind="stable")
    ranked, hits = scores[order], positive[order]
    last = np.r_[np.flatnonzero(np.diff(ranked)), len(ranked) - 1]  # last position of each run of tied scores
    tp = np.cumsum(hits)[last]
    return tp, last + 1 - tp


def _both_classes(positive: np.ndarray) -> bool:
    return 0 < int(positive.sum()) < len(positive)


def roc_points(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) from (0, 0) to (1, 1), one point per distinct score;
    empty arrays when `positive` is all True or all False."""
    if not _both_classes(positive):
        return np.zeros(0), np.zeros(0)
    tp, fp = _ranked_counts(scores, positive)
    return np.r_[0.0, fp / fp[-1]], np.r_[0.0, tp / tp[-1]]


def precision_recall_points(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) per distinct score from the highest, starting at (0, 1); empty arrays when
    `positive` is all True or all False."""
    if not _both_classes(positive):
        return np.zeros(0), np.zeros(0)
    tp, fp = _ranked_counts(scores, positive)
    return np.r_[0.0, tp / tp[-1]], np.r_[1.0, tp / (tp + fp)]


def binary_roc_auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (trapezoids; tied scores count one half), NaN without both classes."""
    fpr, tpr = roc_points(scores, positive)
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)) if len(fpr) else math.nan


def binary_average_precision(scores: np.ndarray, positive: np.ndarray) -> float:
    """sum_t (R_t - R_{t-1}) P_t over the distinct scores t from the highest (step-wise, not interpolated),
    NaN without both classes."""
    recall, precision = precision_recall_points(scores, positive)
    return float(np.sum(np.diff(recall) * precision[1:])) if len(recall) else math.nan


def ranking_levels(observed: np.ndarray, n_levels: int) -> list[int]:
    """The levels scored one-vs-rest: levels[1] alone for two levels (its probability ranks the samples),
    else every level observed in some samples and absent from others. Empty when none qualifies."""
    candidates = [1] if n_levels == 2 else range(n_levels)
    return [k for k in candidates if _both_classes(observed == k)]


def macro_roc_curve(probabilities, observed, n_levels: int) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) of one ranking: for two levels the ROC curve of P(levels[1]);
    for more, the mean over `ranking_levels` of each level's one-vs-rest curve. The mean is taken at every
    false positive rate where some curve has a point, twice: below and above each vertical step, so it is the
    exact average of the piecewise-linear curves and its area is the mean of their areas (the macro AUC).
    Empty when no level qualifies."""
    p, y = observed_rows(probabilities, observed)
    curves = [roc_points(p[:, k], y == k) for k in ranking_levels(y, n_levels)]
    if len(curves) <= 1:
        return curves[0] if curves else (np.zeros(0), np.zeros(0))
    grid = np.unique(np.concatenate([fpr for fpr, _ in curves]))
    # np.interp at a repeated abscissa returns the last (highest) ordinate; on the mirrored curve, the first
    above = np.mean([np.interp(grid, fpr, tpr) for fpr, tpr in curves], axis=0)
    below = np.mean([-np.interp(-grid, -fpr[::-1], -tpr[::-1]) for fpr, tpr in curves], axis=0)
    return np.repeat(grid, 2), np.column_stack([below, above]).ravel()


def reliability_curve(probabilities, observed, bins: int = CALIBRATION_BINS
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-label reliability: rows with observed >= 0 binned by confidence c = max_k p_k into `bins` equal
    bins (b/bins, (b+1)/bins] on (0, 1]. Returns the mean confidence [bins] and the accuracy [bins]
    (fraction whose argmax level was observed; both NaN in an empty bin) and the count per bin [bins]."""
    p, y = observed_rows(probabilities, observed)
    confidence = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # searchsorted against the same edges puts a confidence equal to an edge into the bin it closes
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    count = np.bincount(index, minlength=bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_confidence = np.bincount(index, weights=confidence, minlength=bins) / count
        accuracy = np.bincount(index, weights=correct, minlength=bins) / count
    return mean_confidence, accuracy, count


def expected_calibration_error(probabilities, observed, bins: int = CALIBRATION_BINS) -> float:
    """ECE = sum_b (n_b / n) |accuracy_b - mean confidence_b| over the bins of `reliability_curve`;
    NaN without observed rows."""
    confidence, accuracy, count = reliability_curve(probabilities, observed, bins)
    used = count > 0
    if not used.any():
        return math.nan
    return float(np.sum(count[used] / count.sum() * np.abs(accuracy[used] - confidence[used])))


def classification_metrics(probabilities: np.ndarray, observed: np.ndarray, levels: Sequence[str]) -> dict:
    """Metrics of one categorical target over the rows with observed >= 0 (n of them), JSON-ready.

    probabilities [N, K] (rows sum to 1), observed int [N] index into `levels` (-1 = missing), K = len(levels).
    The predicted level is the argmax (the first on ties).
    - accuracy; balanced_accuracy: mean recall over the levels observed at least once.
    - roc_auc, average_precision: two levels, of P(levels[1]) with levels[1] positive; more levels, the
      unweighted mean of the one-vs-rest scores over the levels observed with both positives and negatives.
      NaN when no level qualifies.
    - log_loss: -mean log p_{i, y_i}, p clipped to [eps, 1 - eps], eps = float64 machine epsilon.
    - brier: mean_i sum_k (p_ik - [y_i = k])^2, halved for K = 2 (then it is the binary (p_i1 - y_i)^2;
      scikit-learn's `brier_score_loss` halves for two classes only, too).
    - ece: top-label expected calibration error, `CALIBRATION_BINS` equal bins on (0, 1].
    - confusion_matrix: K x K counts, rows = observed level, columns = predicted level.
    With n = 0 every metric is NaN and the confusion matrix zeros.
    """
    p_all = _float64(probabilities, "probabilities")
    n_levels = len(levels)
    if p_all.shape[1] != n_levels:
        raise ValueError(f"probabilities has {p_all.shape[1]} columns but there are {n_levels} levels")
    p, y = observed_rows(p_all, observed)
    n = len(y)
    predicted = p.argmax(axis=1)
    confusion = np.zeros((n_levels, n_levels), dtype=np.int64)
    np.add.at(confusion, (y, predicted), 1)
    result = {"levels": [str(level) for level in levels], "n": n}
    if n == 0:
        return {**result, **{name: math.nan for name in CLASSIFICATION_METRICS},
                "confusion_matrix": confusion.tolist()}
    per_level = confusion.sum(axis=1)
    seen = per_level > 0
    ranked = ranking_levels(y, n_levels)
    auc = [binary_roc_auc(p[:, k], y == k) for k in ranked]
    ap = [binary_average_precision(p[:, k], y == k) for k in ranked]
    p_true = np.clip(p[np.arange(n), y], LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    squared = ((p - np.eye(n_levels)[y]) ** 2).sum(axis=1)
    return {
        **result,
        "accuracy": float(np.mean(predicted == y)),
        "balanced_accuracy": float(np.mean(np.diag(confusion)[seen] / per_level[seen])),
        "roc_auc": float(np.mean(auc)) if auc else math.nan,
        "average_precision": float(np.mean(ap)) if ap else math.nan,
        "log_loss": float(-np.mean(np.log(p_true))),
        "brier": float(np.mean(squared)) * (0.5 if n_levels == 2 else 1.0),
        "ece": expected_calibration_error(p, y),
        "confusion_matrix": confusion.tolist(),
    }


def fit_temperature(logits: np.ndarray | torch.Tensor, observed: np.ndarray) -> float:
    """The T in `TEMPERATURE_BOUNDS` minimizing the mean NLL of softmax(logits / T) over rows with observed >= 0.

    NLL(T) = mean_i [logsumexp_k(z_ik / T) - z_{i, y_i} / T] is convex in 1 / T, so it has one minimum along
    log T, which a bounded Brent search finds; the bounds themselves are compared too, since that search
    never evaluates them and separable samples push T to the lower one. 1.0 (no scaling) with fewer than
    2 observed rows or a single observed level, where the NLL has no finite minimum worth taking.
    """
    z, y = observed_rows(logits, observed, "logits")
    if len(y) < 2 or len(np.unique(y)) < 2:
        return 1.0
    z_true = z[np.arange(len(y)), y]

    def nll(log_t: float) -> float:
        t = math.exp(log_t)
        return float(np.mean(logsumexp(z / t, axis=1) - z_true / t))

    lo, hi = math.log(TEMPERATURE_BOUNDS[0]), math.log(TEMPERATURE_BOUNDS[1])
    found = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-9})
    return math.exp(min((float(found.x), lo, hi), key=nll))
