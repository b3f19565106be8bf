"""Validation metrics per target, in original units: MAE, RMSE, R^2, Pearson r, n."""

from __future__ import annotations

import math

import numpy as np

from aam.evaluation.labels import level_label

METRICS = ("mae", "rmse", "r2", "pearson")
MOE_KEY = "moe"  # metrics.json key of an MoE head's routing report, next to the targets (moe_report.py)
CLASS_METRICS = ("log_loss", "accuracy", "balanced_accuracy", "roc_auc")  # --best-metric of a classification target
HIGHER_IS_BETTER = {"mae": False, "rmse": False, "r2": True, "pearson": True, "loss": False, "log_loss": False,
                    "accuracy": True, "balanced_accuracy": True, "roc_auc": True}


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
    # a constant side has no correlation; its deviations from its own mean are rounding noise, not signal
    constant = p.max() == p.min() or o.max() == o.min()
    pearson = float((dp * do).sum()) / denom if denom > 0 and not constant else math.nan
    return {"mae": float(np.abs(err).mean()), "rmse": math.sqrt(float((err**2).mean())), "r2": r2,
            "pearson": pearson, "n": n}


def quantile_metrics(values: np.ndarray, observed: np.ndarray, quantiles: tuple[float, ...]) -> dict:
    """Quantile predictions [N, Q] of one target vs observed [N] (NaN skipped), original units.

    pinball: mean of tau * r if r >= 0 else (tau - 1) * r, r = observed - predicted, per level;
    coverage: fraction of samples inside [lowest, highest] predicted quantile, nominal = q_max - q_min;
    interval_width: mean of highest - lowest; crossing_rate: fraction of samples with any
    q_j > q_{j+1} (0 by construction, measured anyway).
    """
    ok = ~np.isnan(observed)
    v, o = np.asarray(values, dtype=np.float64)[ok], np.asarray(observed, dtype=np.float64)[ok]
    if not ok.any():
        return {"pinball": {level_label(q): math.nan for q in quantiles}, "coverage": math.nan,
                "nominal_coverage": quantiles[-1] - quantiles[0], "interval_width": math.nan, "crossing_rate": math.nan}
    r = o[:, None] - v  # [n, Q]
    taus = np.asarray(quantiles)[None, :]
    pinball = np.where(r >= 0, taus * r, (taus - 1) * r).mean(axis=0)
    inside = (o >= v[:, 0]) & (o <= v[:, -1])
    return {
        "pinball": {level_label(q): float(p) for q, p in zip(quantiles, pinball)},
        "coverage": float(inside.mean()),
        "nominal_coverage": quantiles[-1] - quantiles[0],
        "interval_width": float((v[:, -1] - v[:, 0]).mean()),
        "crossing_rate": float((np.diff(v, axis=1) < 0).any(axis=1).mean()),
        "observed_below": {level_label(q): float((o <= v[:, j]).mean()) for j, q in enumerate(quantiles)},
    }


def metrics_table(predicted: np.ndarray, observed: np.ndarray, target_columns,
                  quantile_values: np.ndarray | None = None, quantiles: tuple[float, ...] = ()
                  ) -> dict[str, dict[str, float]]:
    """predicted, observed [N, T] (quantile_values [N, T, Q]) -> {target: metrics} (the metrics.json shape)."""
    table = {}
    for i, name in enumerate(target_columns):
        table[name] = regression_metrics(predicted[:, i], observed[:, i])
        if quantiles:
            table[name].update(quantile_metrics(quantile_values[:, i], observed[:, i], quantiles))
    return table


def is_moe_block(key: str, value: dict) -> bool:
    """The "moe" routing report of metrics.json rather than a target's metrics (which always have "mae")."""
    return key == MOE_KEY and "utilization" in value


def format_metrics(metrics: dict[str, dict]) -> list[str]:
    """One line per target for the terminal, then one for an MoE head's routing."""
    lines = []
    for target, v in metrics.items():
        if is_moe_block(target, v):
            continue
        if "accuracy" in v:  # a classification target
            lines.append(f"  {target}: accuracy {v['accuracy']:.3f}  balanced accuracy {v['balanced_accuracy']:.3f}"
                         f"  ROC AUC {v['roc_auc']:.3f}  log loss {v['log_loss']:.4g}  (n={v['n']})")
            continue
        line = (f"  {target}: MAE {v['mae']:.4g}  RMSE {v['rmse']:.4g}  R2 {v['r2']:.3f}  Pearson {v['pearson']:.3f}"
                f"  (n={v['n']})")
        if "coverage" in v:
            line += f"  coverage {v['coverage']:.2f} (nominal {v['nominal_coverage']:.2f})"
        lines.append(line)
    moe = metrics.get(MOE_KEY)
    if moe is not None and is_moe_block(MOE_KEY, moe):
        shares = " ".join(f"{u:.2f}" for u in moe["utilization"])
        lines.append(f"  moe: expert utilization {shares}  routing entropy {moe['entropy']:.3f} nats")
    return lines


def best_metric_column(spec: str, target_columns, class_targets=None) -> tuple[str, bool]:
    """`--best-metric` -> (history.tsv column, higher is better).

    "val_loss"; "mae" (or rmse, r2, pearson) of the first target; "<target>:<metric>"; "last": the latest
    epoch is always the best (the epoch column always rises), so training runs all --epochs.
    A classification target (in `class_targets`; None = not known yet, any metric name passes) has the metrics
    log_loss, accuracy, balanced_accuracy and roc_auc; the default "mae" of a first target that is classified
    means its log_loss.
    """
    from aam.errors import UserError

    if spec == "val_loss":
        return "val_loss", False
    if spec == "last":
        return "epoch", True
    target, _, metric = spec.rpartition(":")
    target = target or target_columns[0]
    if metric not in METRICS + CLASS_METRICS:
        raise UserError(f"--best-metric {spec!r}: metric must be val_loss, last or one of {', '.join(METRICS)} "
                        f"(classification targets: {', '.join(CLASS_METRICS)}), optionally as <target>:<metric>")
    if target not in target_columns:
        raise UserError(f"--best-metric {spec!r}: '{target}' is not a target column ({', '.join(target_columns)})")
    if class_targets is not None:
        classified = target in class_targets
        if classified and spec == "mae":
            metric = "log_loss"
        elif classified != (metric in CLASS_METRICS):
            kind, names = (("a classification", CLASS_METRICS) if classified else ("a regression", METRICS))
            raise UserError(f"--best-metric {spec!r}: '{target}' is {kind} target; its metrics are "
                            f"{', '.join(names)}")
    return f"{target}_{metric}", HIGHER_IS_BETTER[metric]
