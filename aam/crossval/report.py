"""Cross-validation outputs: the out-of-fold predictions table, pooled and per-fold metrics, summary, plots.

cv_predictions.tsv has one row per (sample, repeat): `sample_id`, `repeat`, `fold` (both 1-based), then per
target `<t>_observed`, `<t>_aam` (and `<t>_aam_q<level>` for a quantile model), `<t>_forest`, `<t>_mean`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from aam.crossval.reference import FOREST, MEAN
from aam.evaluation.labels import quantile_column
from aam.evaluation.metrics import METRICS, metrics_table
from aam.evaluation.outputs import pyplot, safe_name, save_figure

AAM = "aam"
METHODS = (AAM, FOREST, MEAN)
METHOD_NAMES = {AAM: "AAM", FOREST: "random forest", MEAN: "mean predictor"}
INTERVAL_METRICS = ("coverage", "interval_width")


def fold_frame(sample_ids: list[str], repeat: int, fold: int, target_columns, observed: np.ndarray,
               predicted: dict[str, np.ndarray], aam_quantiles: np.ndarray | None,
               quantiles: tuple[float, ...]) -> pd.DataFrame:
    """The rows of one fold's test samples; `predicted` = {method: [n, T]}, `aam_quantiles` [n, T, Q]."""
    columns = {"sample_id": sample_ids, "repeat": repeat, "fold": fold}
    for i, name in enumerate(target_columns):
        columns[f"{name}_observed"] = observed[:, i]
        columns[f"{name}_{AAM}"] = predicted[AAM][:, i]
        for j, level in enumerate(quantiles):
            columns[quantile_column(f"{name}_{AAM}", level)] = aam_quantiles[:, i, j]
        for method in (FOREST, MEAN):
            columns[f"{name}_{method}"] = predicted[method][:, i]
    return pd.DataFrame(columns)


def _method_metrics(frame: pd.DataFrame, method: str, target_columns, quantiles) -> dict:
    observed = frame[[f"{t}_observed" for t in target_columns]].to_numpy(dtype=np.float64)
    predicted = frame[[f"{t}_{method}" for t in target_columns]].to_numpy(dtype=np.float64)
    values, levels = None, ()
    if method == AAM and quantiles:
        levels = quantiles
        values = np.stack([frame[[quantile_column(f"{t}_{AAM}", q) for q in quantiles]].to_numpy(dtype=np.float64)
                           for t in target_columns], axis=1)  # [n, T, Q]
    return metrics_table(predicted, observed, target_columns, values, levels)


def cv_metrics(frame: pd.DataFrame, target_columns, quantiles: tuple[float, ...] = ()) -> dict:
    """{"pooled": {method: {target: metrics}}, "per_fold": [{"repeat", "fold", method: {target: metrics}}]}.

    Pooled metrics use every row of `frame` (each sample once per repeat)."""
    pooled = {m: _method_metrics(frame, m, target_columns, quantiles) for m in METHODS}
    folds = []
    for (repeat, fold), rows in frame.groupby(["repeat", "fold"], sort=True):
        entry = {"repeat": int(repeat), "fold": int(fold)}
        entry.update({m: _method_metrics(rows, m, target_columns, quantiles) for m in METHODS})
        folds.append(entry)
    return {"pooled": pooled, "per_fold": folds}


def summary_frame(metrics: dict, target_columns) -> pd.DataFrame:
    """cv_summary.tsv: method x target x metric with the pooled value and the mean and SD over folds."""
    rows = []
    for method in METHODS:
        for target in target_columns:
            pooled = metrics["pooled"][method][target]
            for metric in METRICS + INTERVAL_METRICS:
                if metric not in pooled:
                    continue
                per_fold = np.array([f[method][target][metric] for f in metrics["per_fold"]], dtype=np.float64)
                per_fold = per_fold[~np.isnan(per_fold)]
                rows.append({"method": method, "target": target, "metric": metric, "pooled": pooled[metric],
                             "fold_mean": per_fold.mean() if len(per_fold) else np.nan,
                             "fold_sd": per_fold.std(ddof=1) if len(per_fold) > 1 else np.nan,
                             "folds": len(per_fold)})
    return pd.DataFrame(rows)


def format_summary(metrics: dict, target_columns) -> list[str]:
    """Terminal lines: per target and method, pooled MAE, RMSE, R^2 and the per-fold MAE mean +- SD."""
    summary = summary_frame(metrics, target_columns).set_index(["method", "target", "metric"])
    lines = []
    for target in target_columns:
        lines.append(f"  {target}:")
        for method in METHODS:
            v = metrics["pooled"][method][target]
            mae = summary.loc[(method, target, "mae")]
            line = (f"    {METHOD_NAMES[method]:<15} MAE {v['mae']:.4g}  RMSE {v['rmse']:.4g}  R2 {v['r2']:.3f}"
                    f"  (per fold MAE {mae['fold_mean']:.4g} +- {mae['fold_sd']:.2g}, n={v['n']})")
            if "coverage" in v:
                line += f"  coverage {v['coverage']:.2f} (nominal {v['nominal_coverage']:.2f})"
            lines.append(line)
    return lines


def plot_cv(plots_dir: Path, frame: pd.DataFrame, metrics: dict, target_columns) -> list[Path]:
    """Per target: out-of-fold predicted vs observed for AAM and the forest side by side, and the MAE of
    each method on each fold."""
    plt = pyplot(plots_dir)
    paths = []
    for target in target_columns:
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

        fig, ax = plt.subplots(figsize=(6, 4))
        labels = [f"r{f['repeat']}f{f['fold']}" for f in metrics["per_fold"]]
        for method in METHODS:
            ax.plot(range(len(labels)), [f[method][target]["mae"] for f in metrics["per_fold"]], marker="o",
                    label=METHOD_NAMES[method])
        ax.set_xticks(range(len(labels)), labels, rotation=45 if len(labels) > 10 else 0)
        ax.set_xlabel("repeat / fold")
        ax.set_ylabel(f"{target} MAE on the test fold")
        ax.legend()
        paths.append(save_figure(plt, fig, plots_dir / f"cv_mae_per_fold_{safe_name(target)}.png"))
    return paths
