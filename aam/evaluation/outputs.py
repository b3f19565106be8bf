"""Files a run leaves behind besides checkpoints: config.json, history.tsv, val_predictions.tsv,
metrics.json and plots/ (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from aam.evaluation.labels import level_label, quantile_label
from aam.runtime.checkpoint import atomic_write_text

RUN_FILES = ("model.pt", "last.pt", "config.json", "history.tsv", "train_samples.txt", "val_samples.txt",
             "val_predictions.tsv", "metrics.json")


def _json_safe(value):
    """NaN/inf -> null so the JSON is standard (R^2 of a constant target is undefined)."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, value) -> None:
    atomic_write_text(path, json.dumps(_json_safe(value), indent=2) + "\n")


def write_tsv(path: Path, frame: pd.DataFrame) -> None:
    atomic_write_text(path, frame.to_csv(sep="\t", index=False, float_format="%.9g", na_rep="NaN"))


def write_history(path: Path, history: list[dict]) -> None:
    write_tsv(path, pd.DataFrame(history))


HISTORY_METRICS = ("mae", "rmse", "r2", "pearson", "coverage", "interval_width",  # regression
                   "accuracy", "balanced_accuracy", "roc_auc", "log_loss")  # classification


def history_row(epoch: int, result, lr: float, seconds: float, target_columns, column_targets: list[int]) -> dict:
    """One history.tsv row: losses (total and per target, the mean of its loss columns, whose targets
    `column_targets` gives; MoE router losses), learning rate, time, validation metrics."""
    row = {"epoch": epoch, "train_loss": result.train_loss, "val_loss": result.val_loss, "lr": lr,
           "seconds": round(seconds, 3)}
    for i, name in enumerate(target_columns):
        cols = [k for k, t in enumerate(column_targets) if t == i]
        row[f"train_loss_{name}"] = float(np.mean([result.train_column_loss[k] for k in cols]))
        row[f"val_loss_{name}"] = float(np.mean([result.val_column_loss[k] for k in cols]))
    for name, value in result.train_router_loss.items():  # MoE: train_balance_loss, train_z_loss
        row[f"train_{name}"] = value
    for name, values in result.metrics.items():
        for metric in HISTORY_METRICS:
            if metric in values:
                row[f"{name}_{metric}"] = values[metric]
    return row


def plot_predictions(plots_dir: Path, p, target_columns) -> list[Path]:
    """One scatter per target: predicted vs observed, with the identity line, and for a quantile
    model the [lowest, highest] quantile interval as error bars."""
    plt = pyplot(plots_dir)
    paths = []
    for i, name in enumerate(target_columns):
        if i in p.probabilities:  # a classification target: aam.evaluation.class_plots
            continue
        ok = ~np.isnan(p.observed[:, i])
        x, y = p.observed[ok, i], p.point[ok, i]
        fig, ax = plt.subplots(figsize=(4.5, 4.5))
        if p.quantiles:
            lo, hi = p.quantile_values[ok, i, 0], p.quantile_values[ok, i, -1]
            ax.errorbar(x, y, yerr=np.stack([y - lo, hi - y]), fmt="o", markersize=3, alpha=0.6, elinewidth=0.8,
                        label=f"{quantile_label(p.quantiles[0])}-{quantile_label(p.quantiles[-1])} interval")
        else:
            ax.scatter(x, y, s=12, alpha=0.7)
        if ok.any():
            lo, hi = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
            ax.plot([lo, hi], [lo, hi], color="black", linewidth=1, label="identity")
            ax.legend(loc="upper left")
        ax.set_xlabel(f"observed {name}")
        ax.set_ylabel(f"predicted {name}")
        ax.set_title(f"{name}: validation samples (n={int(ok.sum())})")
        paths.append(save_figure(plt, fig, plots_dir / f"pred_vs_observed_{safe_name(name)}.png"))
    return paths


def plot_calibration(plots_dir: Path, metrics: dict, quantiles: tuple[float, ...]) -> Path:
    """Observed fraction below each predicted quantile vs its nominal level, one line per target."""
    plt = pyplot(plots_dir)
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="black", linewidth=1, label="ideal")
    for name, values in metrics.items():
        ax.plot(quantiles, [values["observed_below"][level_label(q)] for q in quantiles], marker="o", label=name)
    ax.set_xlabel("nominal quantile level")
    ax.set_ylabel("fraction of validation samples below")
    ax.legend()
    return save_figure(plt, fig, plots_dir / "calibration.png")


def plot_losses(plots_dir: Path, history: list[dict]) -> Path:
    """Train and validation loss per epoch."""
    plt = pyplot(plots_dir)
    frame = pd.DataFrame(history)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(frame["epoch"], frame["train_loss"], label="train")
    ax.plot(frame["epoch"], frame["val_loss"], label="validation")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (z-scored targets)")
    ax.legend()
    return save_figure(plt, fig, plots_dir / "loss_curves.png")


def plot_moe_utilization(plots_dir: Path, moe: dict, column: str | None) -> Path:
    """Stacked bars of the share of routed (sample, slot) pairs per expert: all validation samples,
    then each level of `column` (the "moe" block of metrics.json)."""
    plt = pyplot(plots_dir)
    groups = {"all": moe["utilization"], **moe["by_category"]}
    shares = np.asarray(list(groups.values()))  # [groups, E]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.7 * len(groups) + 2.5), 4))
    bottom = np.zeros(len(groups))
    for e in range(shares.shape[1]):
        ax.bar(range(len(groups)), shares[:, e], bottom=bottom, label=f"expert {e}")
        bottom += shares[:, e]
    ax.set_xticks(range(len(groups)), list(groups), rotation=30, ha="right")
    ax.set_ylabel("share of routed samples x slots")
    ax.set_xlabel(column or "")
    ax.set_title("expert utilization (validation)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return save_figure(plt, fig, plots_dir / "moe_utilization.png")


def pyplot(plots_dir: Path):
    """matplotlib.pyplot on the Agg backend (files only, no display), with plots_dir created."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots_dir.mkdir(parents=True, exist_ok=True)
    return plt


def save_figure(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
