"""Predictions of a cross-validation folder: the average of its fold models (an ensemble)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from aam.crossval.run import fold_model_paths
from aam.evaluation.inference import predict


def predict_ensemble(cv_dir: str | Path, table: str | Path, sequences: str | Path | None = None,
                     metadata: str | Path | None = None, device: str = "auto", batch_size: int | None = None
                     ) -> tuple[pd.DataFrame, int]:
    """(predictions, number of models): every column of `predict` averaged over the finished fold models
    (quantile columns level by level, in original units)."""
    paths = fold_model_paths(cv_dir)
    frames = [predict(p, table, sequences, metadata, device, batch_size) for p in paths]
    values = sum(f.drop(columns="sample_id") for f in frames) / len(frames)
    return pd.concat([frames[0][["sample_id"]], values], axis=1), len(frames)
