"""Plots of one categorical target: ROC and precision-recall curves, the confusion matrix, the reliability
curve, and the ROC curves of several methods side by side (cross-validation). Rows with observed level -1
(missing) are left out; a curve a single observed level cannot define is left out and the axes say so."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from aam.evaluation.classification import (
    CALIBRATION_BINS, classification_metrics, macro_roc_curve, observed_rows, precision_recall_points,
    ranking_levels, reliability_curve, roc_points,
)
from aam.evaluation.outputs import pyplot, safe_name, save_figure

NO_CURVE = "undefined: needs samples with and without a level"


def _curve_label(levels: Sequence[str], k: int) -> str:
    """Two levels have one curve, of levels[1] against levels[0]; more levels one per level against the rest."""
    return f"{levels[1]} vs {levels[0]}" if len(levels) == 2 else f"{levels[k]} vs rest"


def _mark_undefined(ax) -> None:
    ax.text(0.5, 0.5, NO_CURVE, ha="center", va="center", transform=ax.transAxes, fontsize="small")


def _roc_figure(plt, p, y, levels, name: str, auc: float):
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linewidth=1, linestyle="--", label="chance")
    ranked = ranking_levels(y, len(levels))
    for k in ranked:
        fpr, tpr = roc_points(p[:, k], y == k)
        ax.plot(fpr, tpr, label=_curve_label(levels, k))
    if not ranked:
        _mark_undefined(ax)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"{name}: ROC (AUC {auc:.3f}, n={len(y)})", fontsize="medium")
    ax.legend(loc="lower right", fontsize="small")
    return fig


def _precision_recall_figure(plt, p, y, levels, name: str, average_precision: float):
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ranked = ranking_levels(y, len(levels))
    for k in ranked:
        recall, precision = precision_recall_points(p[:, k], y == k)
        line, = ax.step(recall, precision, where="pre", label=_curve_label(levels, k))
        # a ranking that knows nothing sits at the share of positives
        ax.axhline(np.mean(y == k), color=line.get_color(), linewidth=0.8, linestyle=":")
    if ranked:
        ax.legend(loc="lower left", fontsize="small")
    else:
        _mark_undefined(ax)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_title(f"{name}: precision-recall (AP {average_precision:.3f})", fontsize="medium")
    return fig


def _confusion_figure(plt, confusion: np.ndarray, levels, name: str):
    k = len(levels)
    fig, ax = plt.subplots(figsize=(max(4.0, 0.6 * k + 2.5), max(3.5, 0.6 * k + 2.0)))
    ax.imshow(confusion, cmap="Blues", vmin=0)
    dark = confusion.max() / 2 if confusion.max() > 0 else 1
    for i in range(k):
        for j in range(k):
            ax.text(j, i, str(confusion[i, j]), ha="center", va="center", fontsize="small",
                    color="white" if confusion[i, j] > dark else "black")
    ax.set_xticks(range(k), [str(level) for level in levels], rotation=30, ha="right")
    ax.set_yticks(range(k), [str(level) for level in levels])
    ax.set_xlabel("predicted level")
    ax.set_ylabel("observed level")
    ax.set_title(f"{name}: confusion matrix (n={int(confusion.sum())})", fontsize="medium")
    return fig


def _reliability_figure(plt, p, y, name: str, ece: float):
    confidence, accuracy, count = reliability_curve(p, y, CALIBRATION_BINS)
    used = count > 0
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="black", linewidth=1, label="calibrated")
    ax.plot(confidence[used], accuracy[used], marker="o", label="validation samples")
    for c, a, n in zip(confidence[used], accuracy[used], count[used]):
        ax.annotate(str(n), (c, a), textcoords="offset points", xytext=(4, -10), fontsize="x-small")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("confidence (largest probability), bin mean")
    ax.set_ylabel("accuracy in bin")
    ax.set_title(f"{name}: reliability (ECE {ece:.3f})", fontsize="medium")
    ax.legend(loc="upper left", fontsize="small")
    return fig


def plot_classifier(plots_dir: Path, name: str, probabilities, observed, levels: Sequence[str]) -> list[Path]:
    """roc_<name>.png, precision_recall_<name>.png, confusion_<name>.png and reliability_<name>.png of one
    categorical target: probabilities [N, K], observed level index [N] (-1 = missing)."""
    metrics = classification_metrics(probabilities, observed, levels)
    plt = pyplot(plots_dir)
    p, y = observed_rows(probabilities, observed)
    file = safe_name(name)
    figures = {
        "roc": _roc_figure(plt, p, y, levels, name, metrics["roc_auc"]),
        "precision_recall": _precision_recall_figure(plt, p, y, levels, name, metrics["average_precision"]),
        "confusion": _confusion_figure(plt, np.asarray(metrics["confusion_matrix"]), levels, name),
        "reliability": _reliability_figure(plt, p, y, name, metrics["ece"]),
    }
    return [save_figure(plt, fig, plots_dir / f"{kind}_{file}.png") for kind, fig in figures.items()]


def plot_roc_methods(plots_dir: Path, name: str, curves: dict[str, np.ndarray], observed, levels: Sequence[str],
                     labels: dict[str, str]) -> Path:
    """cv_roc_<name>.png: the ROC curve of each method's probabilities [N, K] (method -> array) on the same
    samples, legend `labels[method]` (the method's key when absent) with its AUC from
    `classification_metrics`. More than two levels: each method's macro one-vs-rest curve
    (`macro_roc_curve`), its AUC the mean of the per-level AUCs."""
    plt = pyplot(plots_dir)
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linewidth=1, linestyle="--", label="chance")
    drawn = 0
    for method, probabilities in curves.items():
        auc = classification_metrics(probabilities, observed, levels)["roc_auc"]
        fpr, tpr = macro_roc_curve(probabilities, observed, len(levels))
        if len(fpr):
            ax.plot(fpr, tpr, label=f"{labels.get(method, method)} (AUC {auc:.3f})")
            drawn += 1
    if not drawn:
        _mark_undefined(ax)
    kind = f"{levels[1]} vs {levels[0]}" if len(levels) == 2 else "macro one-vs-rest"
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title(f"{name}: ROC, {kind} (n={int(np.sum(np.asarray(observed) >= 0))})", fontsize="medium")
    ax.legend(loc="lower right", fontsize="small")
    return save_figure(plt, fig, plots_dir / f"cv_roc_{safe_name(name)}.png")
