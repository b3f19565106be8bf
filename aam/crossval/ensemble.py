"""Predictions of a cross-validation folder: the average of its fold models (an ensemble)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from aam.crossval.run import fold_model_paths
from aam.evaluation.inference import load_model, predict_study, prediction_study
from aam.runtime.device import resolve_device


def predict_ensemble(cv_dir: str | Path, table: str | Path, sequences: str | Path | None = None,
                     metadata: str | Path | None = None, device: str = "auto", batch_size: int | None = None
                     ) -> tuple[pd.DataFrame, int]:
    """(predictions, number of models): every column of `predict` averaged over the finished fold models
    (quantile columns level by level, in original units). The table is read once: the fold models of one
    cross-validation were trained with the same data settings (each brings its own category encoder)."""
    paths = fold_model_paths(cv_dir)
    dev = resolve_device(device)
    first = load_model(paths[0], dev)
    study = prediction_study(first, table, sequences, metadata)
    frames = [predict_study(first, study, dev, batch_size)]
    frames += [predict_study(load_model(p, dev), study, dev, batch_size) for p in paths[1:]]
    values = sum(f.drop(columns="sample_id") for f in frames) / len(frames)
    return pd.concat([frames[0][["sample_id"]], values], axis=1), len(frames)
