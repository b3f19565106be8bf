"""What a `--model` names (one checkpoint, or the fold models of a cross-validation folder), and the
predictions of several models averaged (an ensemble).

The layout names of a cross-validation folder live here, below `aam.crossval` that writes it, so that
`aam predict` and `aam explain` read such a folder without importing the cross-validation code."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from aam.errors import UserError
from aam.evaluation.inference import load_model, predict_study, prediction_study
from aam.runtime.checkpoint import BEST_FILE
from aam.runtime.device import resolve_device

CONFIG_FILE = "cv_config.json"  # a folder holding it is a cross-validation folder
FOLDS_DIR = "folds"
TEST_FILE = "test_predictions.tsv"  # written last in a fold folder: the fold is finished


def fold_model_paths(output_dir: str | Path) -> list[Path]:
    """The model.pt of every finished fold of a cross-validation folder (an ensemble); a folder without a
    finished fold is the user's error (given as --model)."""
    folder = Path(output_dir) / FOLDS_DIR
    paths = sorted(p / BEST_FILE for p in folder.glob("repeat*_fold*") if (p / TEST_FILE).is_file())
    if not paths:
        raise UserError(f"--model {output_dir}: no finished fold models in this cross-validation folder")
    return paths


def is_cv_dir(path: str | Path) -> bool:
    return (Path(path) / CONFIG_FILE).is_file()


def model_paths(model: str | Path) -> list[Path]:
    """The checkpoints `--model` names: the file as given, or every finished fold model of an `aam cv`
    folder (UserError naming --model when it has none)."""
    return fold_model_paths(model) if is_cv_dir(model) else [Path(model)]


def predict_ensemble(paths: list[Path], table: str | Path, sequences: str | Path | None = None,
                     metadata: str | Path | None = None, device: str = "auto", batch_size: int | None = None
                     ) -> pd.DataFrame:
    """Every column of `predict` averaged over the models of `paths` (quantile columns level by level, in
    original units); one model's predictions as `predict` gives them. The table is read once: the models of
    one cross-validation were trained with the same data settings (each brings its own category encoder)."""
    dev = resolve_device(device)
    first = load_model(paths[0], dev)
    study = prediction_study(first, table, sequences, metadata)
    frames = [predict_study(first, study, dev, batch_size)]
    frames += [predict_study(load_model(p, dev), study, dev, batch_size) for p in paths[1:]]
    if len(frames) == 1:
        return frames[0]
    values = sum(f.drop(columns="sample_id") for f in frames) / len(frames)
    return pd.concat([frames[0][["sample_id"]], values], axis=1)
