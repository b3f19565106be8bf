"""Cross-validation outputs: the out-of-fold predictions table, pooled and per-fold metrics, summary, plots.

cv_predictions.tsv has one row per (sample, repeat): `sample_id`, `repeat`, `fold` (both 1-based), then per
target `<t>_observed`, `<t>_aam` (and `<t>_aam_q<level>` for a quantile model), `<t>_forest`, `<t>_mean`.
A classification target has the class prior in place of the mean predictor: `<t>_observed` is the observed
level, `<t>_<method>` the predicted one (the most probable), and `<t>_<method>_p_<level>` each level's
probability, for every level of the study.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from aam.crossval.reference import FOREST, MEAN, PRIOR
from aam.evaluation.class_plots import plot_roc_methods
from aam.evaluation.classification import classification_metrics
from aam.evaluation.labels import probability_column, quantile_column
from aam.evaluation.metrics import METRICS, metrics_table
from aam.evaluation.outputs import pyplot, safe_name, save_figure

AAM = "aam"
METHODS = (AAM, FOREST, MEAN)
CLASS_METHODS = (AAM, FOREST, PRIOR)  # the methods scored on a classification target
METHOD_NAMES = {AAM: "AAM", FOREST: "random forest", MEAN: "mean predictor", PRIOR: "class prior"}
INTERVAL_METRICS = ("coverage", "interval_width")
# cv_summary.tsv rows of a classification target; the first is the per-fold plot's
CLASS_SUMMARY = ("roc_auc", "balanced_accuracy", "accuracy", "average_precision", "log_loss", "brier", "ece")


def fold_frame(sample_ids: list[str], repeat: int, fold: int, target_columns, observed: np.ndarray,
               predicted: dict[str, np.ndarray], aam_quantiles: np.ndarray | None,
               quantiles: tuple[float, ...], probabilities: dict[str, dict[int, np.ndarray]] | None = None,
               levels: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """The rows of one fold's test samples; `predicted` = {method: [n, T]}, `aam_quantiles` [n, T, Q];
    classification targets (named in `levels`, with the study's levels): observed level indices in `observed`
    (NaN = missing) and `probabilities` = {method: {target index: [n, K]}}."""
    columns = {"sample_id": sample_ids, "repeat": repeat, "fold": fold}
    levels = levels or {}
    for i, name in enumerate(target_columns):
        if name in levels:
            names = np.asarray(levels[name], dtype=object)
            known = ~np.isnan(observed[:, i])
            columns[f"{name}_observed"] = np.where(known, names[np.where(known, observed[:, i], 0).astype(int)], "")
            for method in CLASS_METHODS:
                p = probabilities[method][i]
                columns[f"{name}_{method}"] = np.where(np.isnan(p).any(axis=1), "", names[np.nan_to_num(p).argmax(1)])
                for k, level in enumerate(levels[name]):
                    columns[probability_column(f"{name}_{method}", level)] = p[:, k]
            continue
        columns[f"{name}_observed"] = observed[:, i]
        columns[f"{name}_{AAM}"] = predicted[AAM][:, i]
        for j, level in enumerate(quantiles):
            columns[quantile_column(f"{name}_{AAM}", level)] = aam_quantiles[:, i, j]
        for method in (FOREST, MEAN):
            columns[f"{name}_{method}"] = predicted[method][:, i]
    return pd.DataFrame(columns)


def _class_metrics(frame: pd.DataFrame, method: str, target: str, levels: list[str]) -> dict:
    """A classification target's metrics of `method` from the frame's probability columns."""
    probabilities = frame[[probability_column(f"{target}_{method}", level) for level in levels]].to_numpy(
        dtype=np.float64)
    index = {level: k for k, level in enumerate(levels)}
    observed = np.array([index.get(v, -1) if isinstance(v, str) else -1 for v in frame[f"{target}_observed"]],
                        dtype=np.int64)
    return classification_metrics(probabilities, observed, levels)


def _method_metrics(frame: pd.DataFrame, method: str, target_columns, quantiles, levels=None) -> dict:
    """{target: metrics} of `method` over the targets it is scored on (`methods_of`)."""
    levels = levels or {}
    out = {t: _class_metrics(frame, method, t, levels[t]) for t in target_columns
           if t in levels and method in CLASS_METHODS}
    regression = [t for t in target_columns if t not in levels and method in METHODS]
    if regression:
        observed = frame[[f"{t}_observed" for t in regression]].to_numpy(dtype=np.float64)
        predicted = frame[[f"{t}_{method}" for t in regression]].to_numpy(dtype=np.float64)
        values, quantile_levels = None, ()
        if method == AAM and quantiles:
            quantile_levels = quantiles
            values = np.stack([frame[[quantile_column(f"{t}_{AAM}", q) for q in quantiles]].to_numpy(
                dtype=np.float64) for t in regression], axis=1)  # [n, T, Q]
        out.update(metrics_table(predicted, observed, regression, values, quantile_levels))
    return {t: out[t] for t in target_columns if t in out}


def methods_of(target: str, levels: dict[str, list[str]] | None) -> tuple[str, ...]:
    """The methods scored on `target`: the class prior in place of the mean for a classification target."""
    return CLASS_METHODS if target in (levels or {}) else METHODS


def cv_metrics(frame: pd.DataFrame, target_columns, quantiles: tuple[float, ...] = (),
               levels: dict[str, list[str]] | None = None) -> dict:
    """{"pooled": {method: {target: metrics}}, "per_fold": [{"repeat", "fold", method: {target: metrics}}]}.

    Pooled metrics use every row of `frame` (each sample once per repeat). `levels`: the study's levels of
    each classification target."""
    methods = dict.fromkeys(m for t in target_columns for m in methods_of(t, levels))
    pooled = {m: _method_metrics(frame, m, target_columns, quantiles, levels) for m in methods}
    folds = []
    for (repeat, fold), rows in frame.groupby(["repeat", "fold"], sort=True):
        entry = {"repeat": int(repeat), "fold": int(fold)}
        entry.update({m: _method_metrics(rows, m, target_columns, quantiles, levels) for m in methods})
        folds.append(entry)
    return {"pooled": pooled, "per_fold": folds}


def summary_frame(metrics: dict, target_columns, levels: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """cv_summary.tsv: method x target x metric with the pooled value and the mean and SD over folds."""
    rows = []
    methods = dict.fromkeys(m for t in target_columns for m in methods_of(t, levels))
    for method in methods:
        for target in target_columns:
            if method not in methods_of(target, levels):
                continue
            pooled = metrics["pooled"][method][target]
            for metric in METRICS + INTERVAL_METRICS + CLASS_SUMMARY:
                if metric not in pooled:
                    continue
                per_fold = np.array([f[method][target][metric] for f in metrics["per_fold"]], dtype=np.float64)
                per_fold = per_fold[~np.isnan(per_fold)]
                rows.append({"method": method, "target": target, "metric": metric, "pooled": pooled[metric],
                             "fold_mean": per_fold.mean() if len(per_fold) else np.nan,
                             "fold_sd": per_fold.std(ddof=1) if len(per_fold) > 1 else np.nan,
                             "folds": len(per_fold)})
    return pd.DataFrame(rows)


def format_summary(metrics: dict, target_columns, levels: dict[str, list[str]] | None = None) -> list[str]:
    """Terminal lines: per target and method, pooled MAE, RMSE, R^2 and the per-fold MAE mean +- SD (a
    classification target: pooled ROC AUC, balanced accuracy, log loss and the per-fold ROC AUC)."""
    levels = metrics.get("levels") if levels is None else levels
    summary = summary_frame(metrics, target_columns, levels).set_index(["method", "target", "metric"])
    lines = []
    for target in target_columns:
        lines.append(f"  {target}:")
        if target in (levels or {}):
            for method in CLASS_METHODS:
                v = metrics["pooled"][method][target]
                auc = summary.loc[(method, target, "roc_auc")]
                lines.append(f"    {METHOD_NAMES[method]:<15} ROC AUC {v['roc_auc']:.3f}  balanced accuracy "
                             f"{v['balanced_accuracy']:.3f}  log loss {v['log_loss']:.4g}  (per fold ROC AUC "
                             f"{auc['fold_mean']:.3f} +- {auc['fold_sd']:.2g}, n={v['n']})")
            continue
        for method in METHODS:
            v = metrics["pooled"][method][target]
            mae = summary.loc[(method, target, "mae")]
            line = (f"    {METHOD_NAMES[method]:<15} MAE {v['mae']:.4g}  RMSE {v['rmse']:.4g}  R2 {v['r2']:.3f}"
                    f"  (per fold MAE {mae['fold_mean']:.4g} +- {mae['fold_sd']:.2g}, n={v['n']})")
            if "coverage" in v:
                line += f"  coverage {v['coverage']:.2f} (nominal {v['nominal_coverage']:.2f})"
            lines.append(line)
    return lines


def plot_cv(plots_dir: Path, frame: pd.DataFrame, metrics: dict, target_columns,
            levels: dict[str, list[str]] | None = None) -> list[Path]:
    """Per target: out-of-fold predicted vs observed for AAM and the forest side by side (a classification
    target: every method's ROC curve), and the MAE (ROC AUC) of each method on each fold."""
    plt = pyplot(plots_dir)
    paths = []
    for target in target_columns:
        if target in (levels or {}):
            paths.append(_plot_class_target(plots_dir, frame, target, levels[target]))
            paths.append(_plot_per_fold(plt, plots_dir, metrics, target, CLASS_METHODS, "roc_auc", "ROC AUC"))
            continue
        observed = frame[f"{target}_observed"].to_numpy(dtype=np.float64)
        ok = ~np.isnan(observed)
        fig, axes = plt.subplots(1, 2, figsize=(9, 4.5), sharex=True, sharey=True)
        for ax, method in zip(axes, (AAM, FOREST)):
            predicted = frame[f"{target}_{method}"].to_numpy(dtype=np.float64)[ok]
            ax.scatter(observed[ok], predicted, s=10, alpha=0.6)
            if ok.any():
                lo = float(min(observed[ok].min(), np.nanmin(predicted)))
                hi = float(max(observed[ok].max(), np.nanmax(predicted)))
                ax.plot([lo, hi], [lo, hi], color="black", linewidth=1)
            mae = metrics["pooled"][method][target]["mae"]
            ax.set_title(f"{METHOD_NAMES[method]}: MAE {mae:.3g}")
            ax.set_xlabel(f"observed {target}")
        axes[0].set_ylabel(f"out-of-fold predicted {target}")
        paths.append(save_figure(plt, fig, plots_dir / f"cv_pred_vs_observed_{safe_name(target)}.png"))
        paths.append(_plot_per_fold(plt, plots_dir, metrics, target, METHODS, "mae", "MAE"))
    return paths


def _plot_per_fold(plt, plots_dir: Path, metrics: dict, target: str, methods, metric: str, label: str) -> Path:
    """`metric` of each method on each test fold."""
    fig, ax = plt.subplots(figsize=(6, 4))
    labels = [f"r{f['repeat']}f{f['fold']}" for f in metrics["per_fold"]]
    for method in methods:
        ax.plot(range(len(labels)), [f[method][target][metric] for f in metrics["per_fold"]], marker="o",
                label=METHOD_NAMES[method])
    ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 10 else 0)
    ax.set_xlabel("repeat / fold")
    ax.set_ylabel(f"{target} {label} on the test fold")
    ax.legend()
    return save_figure(plt, fig, plots_dir / f"cv_{metric}_per_fold_{safe_name(target)}.png")


def _plot_class_target(plots_dir: Path, frame: pd.DataFrame, target: str, levels: list[str]) -> Path:
    """Out-of-fold ROC curves of every method on one classification target."""
    index = {level: k for k, level in enumerate(levels)}
    observed = np.array([index.get(v, -1) if isinstance(v, str) else -1 for v in frame[f"{target}_observed"]],
                        dtype=np.int64)
    curves = {m: frame[[probability_column(f"{target}_{m}", level) for level in levels]].to_numpy(dtype=np.float64)
              for m in CLASS_METHODS}
    return plot_roc_methods(plots_dir, target, curves, observed, levels, METHOD_NAMES)
