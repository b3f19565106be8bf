"""Validation metrics per target, in original units: MAE, RMSE, R^2, Pearson r, n."""

from __future__ import annotations

import math

import numpy as np

METRICS = ("mae", "rmse", "r2", "pearson")
HIGHER_IS_BETTER = {"mae": False, "rmse": False, "r2": True, "pearson": True, "loss": False}


def regression_metrics(predicted: np.ndarray, observed: np.ndarray) -> dict[str, float]:
    """Metrics of one target over the samples where it was observed (NaN observed = skipped).

    R^2 = 1 - SS_res / SS_tot (NaN with < 2 samples or constant observed); Pearson NaN when
    either side is constant.
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    observed = np.asarray(observed, dtype=np.float64)
    ok = ~np.isnan(observed)
    p, o = predicted[ok], observed[ok]
    n = int(ok.sum())
    if n == 0:
        return {"mae": math.nan, "rmse": math.nan, "r2": math.nan, "pearson": math.nan, "n": 0}
    err = p - o
    ss_tot = float(((o - o.mean()) ** 2).sum())
    r2 = 1.0 - float((err**2).sum()) / ss_tot if n > 1 and ss_tot > 0 else math.nan
    dp, do = p - p.mean(), o - o.mean()
    denom = math.sqrt(float((dp**2).sum()) * float((do**2).sum()))
    pearson = float((dp * do).sum()) / denom if denom > 0 else math.nan
    return {"mae": float(np.abs(err).mean()), "rmse": math.sqrt(float((err**2).mean())), "r2": r2,
            "pearson": pearson, "n": n}


def metrics_table(predicted: np.ndarray, observed: np.ndarray, target_columns) -> dict[str, dict[str, float]]:
    """predicted, observed [N, T] -> {target: metrics} (the metrics.json shape)."""
    return {name: regression_metrics(predicted[:, i], observed[:, i]) for i, name in enumerate(target_columns)}


def best_metric_column(spec: str, target_columns) -> tuple[str, bool]:
    """`--best-metric` -> (history.tsv column, higher is better).

    "val_loss"; "mae" (or rmse, r2, pearson) of the first target; "<target>:<metric>".
    """
    from aam.errors import UserError

    if spec == "val_loss":
        return "val_loss", False
    target, _, metric = spec.rpartition(":")
    target = target or target_columns[0]
    if metric not in METRICS:
        raise UserError(f"--best-metric {spec!r}: metric must be val_loss or one of {', '.join(METRICS)} "
                        "(optionally as <target>:<metric>)")
    if target not in target_columns:
        raise UserError(f"--best-metric {spec!r}: '{target}' is not a target column ({', '.join(target_columns)})")
    return f"{target}_{metric}", HIGHER_IS_BETTER[metric]
