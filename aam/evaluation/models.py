"""What a `--model` names (one checkpoint, or the fold models of a cross-validation folder), and the
predictions of several models averaged (an ensemble).

The layout names of a cross-validation folder live here, below `aam.crossval` that writes it, so that
`aam predict` and `aam explain` read such a folder without importing the cross-validation code."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from aam.errors import UserError
from aam.evaluation.inference import load_model, predict_study, prediction_study
from aam.evaluation.labels import probability_column
from aam.runtime.checkpoint import BEST_FILE
from aam.runtime.device import resolve_device

CONFIG_FILE = "cv_config.json"  # a folder holding it is a cross-validation folder
FOLDS_DIR = "folds"
TEST_FILE = "test_predictions.tsv"  # written last in a fold folder: the fold is finished
MEMBER_PREFIX = "member"  # `aam cv --ensemble`: a fold's models after the first train in <fold>/member<m>


def fold_model_paths(output_dir: str | Path) -> list[Path]:
    """The model.pt of every finished fold of a cross-validation folder, and of each of its ensemble members
    (an ensemble); a folder without a finished fold is the user's error (given as --model)."""
    folder = Path(output_dir) / FOLDS_DIR
    finished = sorted(p for p in folder.glob("repeat*_fold*") if (p / TEST_FILE).is_file())
    paths = [p / BEST_FILE for fold in finished for p in [fold, *sorted(fold.glob(f"{MEMBER_PREFIX}*"))]]
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
    original units; a classification target's probabilities level by level, 0 for a level a model was not
    trained on, and the predicted level the most probable of the mean); one model's predictions as `predict`
    gives them. The table is read once: the models of one cross-validation were trained with the same data
    settings (each brings its own category encoder)."""
    dev = resolve_device(device)
    models = [load_model(paths[0], dev)]
    study = prediction_study(models[0], table, sequences, metadata)
    models += [load_model(p, dev) for p in paths[1:]]
    frames = [predict_study(m, study, dev, batch_size) for m in models]
    if len(frames) == 1:
        return frames[0]
    levels: dict[str, set[str]] = {}
    for m in models:
        for target, names in (m.classes.levels if m.classes is not None else {}).items():
            levels.setdefault(target, set()).update(names)
    levels = {target: sorted(names) for target, names in levels.items()}
    columns = [probability_column(target, level) for target, names in levels.items() for level in names]
    frames = [f.assign(**{c: 0.0 for c in columns if c not in f.columns}) for f in frames]
    values = sum(f.drop(columns=["sample_id", *levels]) for f in frames) / len(frames)
    out = pd.concat([frames[0][["sample_id"]], values], axis=1)
    for target, names in levels.items():
        p = out[[probability_column(target, level) for level in names]].to_numpy()
        out.insert(out.columns.get_loc(probability_column(target, names[0])), target, np.asarray(names)[p.argmax(1)])
    return out
