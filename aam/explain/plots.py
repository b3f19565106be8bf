"""Explanation plots (matplotlib, Agg backend): top ASVs or taxa, an abundance heatmap, one sample's waterfall."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from aam.evaluation.outputs import pyplot, save_figure


def short_label(feature_id: str, lineage: str | None = None) -> str:
    """A readable row label: the deepest named taxon (when known) and the start of the feature ID."""
    head = feature_id if len(feature_id) <= 12 else feature_id[:10] + ".."
    if lineage:
        names = [p for p in lineage.split("; ") if p and not p.startswith("(")]
        if names:
            return f"{names[-1]} | {head}"
    return head


def plot_top_bars(path: Path, labels: list[str], signed: np.ndarray, magnitude: np.ndarray, output: str,
                  what: str) -> Path:
    """Horizontal bars of the signed mean attribution of the top rows (largest mean |attribution| at the
    top), with the mean |attribution| as a marker: a bar much shorter than its marker means the row pushes
    predictions up in some samples and down in others."""
    plt = pyplot(path.parent)
    n = len(labels)
    fig, ax = plt.subplots(figsize=(8, 0.3 * n + 1.5))
    y = np.arange(n)[::-1]
    ax.barh(y, signed, color=np.where(signed >= 0, "tab:red", "tab:blue"), label="mean attribution (signed)")
    ax.scatter(magnitude, y, marker="|", s=120, color="black", label="mean |attribution|")
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(y, labels, fontsize="small")
    ax.set_xlabel(f"attribution to {output} (target units)")
    ax.set_title(f"top {n} {what} for {output}")
    ax.legend(loc="lower right", fontsize="small")
    return save_figure(plt, fig, path)


def plot_heatmap(path: Path, abundance: np.ndarray, labels: list[str], order_values: np.ndarray,
                 order_name: str) -> Path:
    """log10 relative abundance (rows: top ASVs; columns: samples sorted by `order_values`)."""
    plt = pyplot(path.parent)
    order = np.argsort(order_values, kind="stable")
    shown = np.log10(abundance[order].T + 1e-5)  # [ASVs, samples]; 1e-5 = absent
    fig, ax = plt.subplots(figsize=(9, 0.3 * len(labels) + 2))
    image = ax.imshow(shown, aspect="auto", interpolation="nearest", cmap="viridis")
    ax.set_yticks(np.arange(len(labels)), labels, fontsize="small")
    ticks = np.linspace(0, len(order) - 1, min(6, len(order))).astype(int)
    ax.set_xticks(ticks, [f"{order_values[order][t]:.3g}" for t in ticks])
    ax.set_xlabel(f"samples, ordered by {order_name}")
    fig.colorbar(image, ax=ax, label="log10 relative abundance (-5 = absent)")
    return save_figure(plt, fig, path)


def plot_waterfall(path: Path, sample_id: str, output: str, baseline: float, prediction: float,
                   labels: list[str], values: np.ndarray, rest: float, n_rest: int, baseline_label: str) -> Path:
    """From the baseline, one step per ASV (largest |attribution| first), the remaining ASVs as one step,
    ending at the prediction."""
    plt = pyplot(path.parent)
    steps = list(values) + ([rest] if n_rest else [])
    names = list(labels) + ([f"{n_rest} other ASVs"] if n_rest else [])
    fig, ax = plt.subplots(figsize=(8, 0.35 * (len(steps) + 2) + 1.5))
    level = baseline
    rows = len(steps) + 2
    ax.barh(rows - 1, baseline, color="grey")
    for i, (name, step) in enumerate(zip(names, steps)):
        ax.barh(rows - 2 - i, step, left=level, color="tab:red" if step >= 0 else "tab:blue")
        level += step
    ax.barh(0, prediction, color="black")
    ax.set_yticks(np.arange(rows)[::-1], [baseline_label, *names, "prediction"], fontsize="small")
    ax.set_xlabel(output)
    ax.set_title(f"{sample_id}: {output} = {baseline:.3g} + attributions = {prediction:.3g}")
    values_all = [baseline, prediction, *np.cumsum([baseline, *steps])]
    lo, hi = min(values_all), max(values_all)
    ax.set_xlim(lo - 0.05 * (hi - lo + 1e-12), hi + 0.05 * (hi - lo + 1e-12))
    return save_figure(plt, fig, path)


def top_rows(table: pd.DataFrame, output: str, n: int) -> pd.DataFrame:
    return table.sort_values(f"mean_abs_attribution_{output}", ascending=False, kind="stable").head(n)
