"""From a loaded study and its split to training and validation datasets, with the transforms fitted on train only.

The study is read once per command (`load_training_study`) and split by `aam.data.split.decide_split`;
`prepare_data` then works on both, so cross-validation folds share one study.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from aam.config import DataConfig
from aam.data.dataset import AAMDataset
from aam.data.encoders import CategoryEncoder, TargetScaler
from aam.data.split import decide_split
from aam.data.study import Study, load_study
from aam.errors import UserError

log = logging.getLogger("aam.data")


@dataclass
class PreparedData:
    study: Study
    train_idx: np.ndarray  # int64 positions into study
    val_idx: np.ndarray
    encoder: CategoryEncoder | None  # fitted on the training samples; None without categorical columns
    scaler: TargetScaler  # z-score per target, fitted on the training samples
    train_set: AAMDataset
    val_set: AAMDataset
    levels: CategoryEncoder | None = None  # levels of each classification target in the training samples

    @property
    def train_ids(self) -> list[str]:
        return [self.study.sample_ids[i] for i in self.train_idx]

    @property
    def val_ids(self) -> list[str]:
        return [self.study.sample_ids[i] for i in self.val_idx]


def load_training_study(config: DataConfig) -> Study:
    if not config.table:
        raise UserError("give the feature table (--table)")
    if not config.metadata:
        raise UserError("give the metadata file with the target column(s) (--metadata)")
    return load_study(config.table, config.sequences, config.metadata, config.target_columns,
                      config.categorical_columns, config.group_column, require_targets=True,
                      classification_columns=config.classification_columns)


def prepare_data(study: Study, split: tuple[np.ndarray, np.ndarray], config: DataConfig, seed: int) -> PreparedData:
    """Datasets of the (train, validation) positions `split` into `study`, the category encoder and target
    scaler fitted on the training samples; `seed` seeds the training set's per-epoch draws."""
    train_idx, val_idx = split
    encoder = None
    if study.categorical_columns:
        encoder = CategoryEncoder.fit(study.categorical_columns, study.categories[train_idx])
    scaler = TargetScaler.fit(study.target_columns, study.targets[train_idx])
    levels = fit_levels(study, train_idx, val_idx)
    options = dict(max_bp=config.max_bp, token_limit=config.token_limit, encoders=encoder, levels=levels, seed=seed)
    train_set = AAMDataset(study, train_idx, asv_sampling=config.asv_sampling, train=True, rarefy=config.rarefy,
                           asv_dropout=config.asv_dropout, **options)
    val_set = AAMDataset(study, val_idx, train=False, **options)
    return PreparedData(study, train_idx, val_idx, encoder, scaler, train_set, val_set, levels)


def fit_levels(study: Study, train_idx: np.ndarray, val_idx: np.ndarray) -> CategoryEncoder | None:
    """The levels of each classification target among the training samples (None without one); a level held
    by validation samples only is logged: the model cannot predict it, and those samples are left out of the
    validation metrics."""
    if not study.class_columns:
        return None
    labels = study.class_labels()
    levels = CategoryEncoder.fit(study.class_columns, labels[train_idx])
    for i, column in enumerate(study.class_columns):
        unseen = sorted({str(v) for v in labels[val_idx, i] if v is not None} - set(levels.levels[column]))
        if unseen:
            count = sum(1 for v in labels[val_idx, i] if v is not None and str(v) in unseen)
            log.warning("classification target '%s': level(s) %s only in %d validation sample(s); the model cannot "
                        "predict them and they are left out of the validation metrics", column,
                        ", ".join(f"'{u}'" for u in unseen), count)
    return levels


def load_prepared(config: DataConfig, seed: int, split: tuple[list[str], list[str]] | None = None) -> PreparedData:
    """Read the study, split it (`decide_split`: seeded, or `split` = (train IDs, val IDs) as on resume) and
    prepare it: a single run's data."""
    study = load_training_study(config)
    positions = decide_split(study, config.test_size, seed, config.group_column, given=split, strata=study.strata())
    return prepare_data(study, positions, config, seed)
