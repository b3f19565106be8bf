"""Loss curves of a pretraining run: the weighted total and each objective, training and held out."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from aam.evaluation.outputs import pyplot, save_figure
from aam.pretrain.objectives import OBJECTIVES


def plot_pretrain_losses(plots_dir: Path, history: list[dict]) -> Path:
    plt = pyplot(plots_dir)
    frame = pd.DataFrame(history)
    names = ["loss"] + [o for o in OBJECTIVES if f"train_{o}" in frame.columns]
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        ax.plot(frame["epoch"], frame[f"train_{name}"], label="train")
        ax.plot(frame["epoch"], frame[f"val_{name}"], label="held out")
        ax.set_title("weighted total" if name == "loss" else name)
        ax.set_xlabel("epoch")
    axes[0][0].legend()
    fig.tight_layout()
    return save_figure(plt, fig, plots_dir / "loss_curves.png")
