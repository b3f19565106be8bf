"""Random-forest baseline on relative abundances, on the same split as an `aam train` run (a classification
target gets the random-forest classifier).

The field's standard comparison: if the transformer does not beat this, say so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from aam.config import DataConfig, RunConfig
from aam.data.prepared import load_training_study
from aam.data.split import TRAIN_FILE, VAL_FILE, decide_split, read_sample_list, write_split
from aam.data.study import Study
from aam.errors import UserError
from aam.evaluation import outputs
from aam.evaluation.abundance import relative_abundance
from aam.evaluation.forest_importance import forest_columns, importance_table
from aam.evaluation.forest_classifier import forest_probabilities, study_levels
from aam.evaluation.inference import Predictions, predictions_frame
from aam.run_folder import run_folder


@dataclass(kw_only=True)
class BaselineConfig:
    output_dir: str = ""  # where metrics.json, val_predictions.tsv and the split go
    train_dir: str | None = None  # an `aam train` output folder: reuse its data settings and split
    n_estimators: int = 500  # trees per forest (one forest per target)
    seed: int = 42  # split seed (without train_dir) and forest seed
    n_jobs: int = -1  # parallel tree building; -1 = all cores
    permutation_repeats: int = 5  # shuffles per ASV for the permutation importance; 0 = impurity importance only


def data_config_of_run(train_dir: str | Path) -> DataConfig:
    path = Path(train_dir) / "config.json"
    if not path.is_file():
        raise UserError(f"--train-dir {train_dir}: no config.json (not an `aam train` output folder?)")
    return RunConfig.from_dict(json.loads(path.read_text())).data


def fit_forests(study: Study, x: sp.csr_matrix, train_idx: np.ndarray, n_estimators: int = 500, seed: int = 42,
                n_jobs: int = -1):
    """Yields (target index, fitted forest) for each target observed in some training sample: one forest per
    target on the relative abundances `x` of the training samples where that target is observed."""
    from sklearn.ensemble import RandomForestRegressor

    for t in range(len(study.target_columns)):
        y = study.targets[train_idx, t]
        known = ~np.isnan(y)
        if not known.any():
            continue
        forest = RandomForestRegressor(n_estimators=n_estimators, random_state=seed, n_jobs=n_jobs)
        forest.fit(x[train_idx[known]], y[known])
        yield t, forest


def forest_predictions(study: Study, train_idx: np.ndarray, test_idx: np.ndarray, n_estimators: int = 500,
                       seed: int = 42, n_jobs: int = -1) -> np.ndarray:
    """float64 [len(test_idx), T]: `fit_forests`' predictions (NaN column for a target observed nowhere)."""
    x = relative_abundance(study.counts)
    predicted = np.full((len(test_idx), len(study.target_columns)), np.nan)
    for t, forest in fit_forests(study, x, train_idx, n_estimators, seed, n_jobs):
        predicted[:, t] = forest.predict(x[test_idx])
    return predicted


def run_baseline(data: DataConfig, config: BaselineConfig, overwrite: bool = False) -> dict[str, dict[str, float]]:
    """Fit one forest per target on the training samples, write and return validation metrics, holding
    the output folder's lock (as `aam train` does)."""
    if not config.output_dir:
        raise UserError("give an output folder (--output-dir)")
    if config.n_estimators < 1:
        raise UserError(f"--trees must be >= 1; got {config.n_estimators}")
    if config.n_jobs == 0 or config.n_jobs < -1:
        raise UserError(f"--n-jobs must be >= 1, or -1 for all cores; got {config.n_jobs}")
    if config.permutation_repeats < 0:
        raise UserError(f"--permutation-repeats must be >= 0; got {config.permutation_repeats}")
    with run_folder(config.output_dir, "aam baseline", overwrite=overwrite) as out:
        return _run_baseline(out, data, config)


def _run_baseline(out: Path, data: DataConfig, config: BaselineConfig) -> dict[str, dict[str, float]]:
    study = load_training_study(data)
    given = None
    if config.train_dir is not None:
        given = tuple(read_sample_list(Path(config.train_dir) / name) for name in (TRAIN_FILE, VAL_FILE))
    train_idx, val_idx = decide_split(study, data.test_size, config.seed, data.group_column, given=given,
                                      sources=(TRAIN_FILE, VAL_FILE), strata=study.strata())
    x = relative_abundance(study.counts)
    predicted = np.full((len(val_idx), len(study.target_columns)), np.nan)
    importance = {}
    for t, forest in fit_forests(study, x, train_idx, config.n_estimators, config.seed, config.n_jobs):
        predicted[:, t] = forest.predict(x[val_idx])
        importance.update(forest_columns(forest, x[val_idx], study.targets[val_idx, t], study.target_columns[t],
                                         config.permutation_repeats, config.seed))
    observed = study.targets[val_idx].copy()
    levels = study_levels(study)
    probabilities, names = {}, {}
    targets = study.target_values()  # a classification target's levels as indices into `levels`
    for column in study.class_columns:  # the random-forest classifier
        t = study.target_columns.index(column)
        names[t] = levels.levels[column]
        known = targets[:, t]
        probabilities[t], forest = forest_probabilities(x, known, train_idx, val_idx, len(names[t]),
                                                        config.n_estimators, config.seed, config.n_jobs)
        observed[:, t] = known[val_idx]
        predicted[:, t] = probabilities[t].argmax(axis=1)
        importance.update(forest_columns(forest, x[val_idx], known[val_idx], column, config.permutation_repeats,
                                         config.seed))
    out.mkdir(parents=True, exist_ok=True)
    write_split(out, study, train_idx, val_idx)
    val_ids = [study.sample_ids[i] for i in val_idx]
    outputs.write_tsv(out / "val_predictions.tsv",
                      predictions_frame(val_ids, predicted, study.target_columns, observed,
                                        probabilities=probabilities, levels=names))
    outputs.write_tsv(out / "asv_importance.tsv", importance_table(study, x, importance))
    metrics = Predictions(val_ids, predicted, None, observed, (), probabilities, names).metrics(study.target_columns)
    outputs.write_json(out / "metrics.json", metrics)
    return metrics
