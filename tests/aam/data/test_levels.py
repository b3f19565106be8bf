"""Classification targets in the data layer: which targets are classified, their levels fitted on the
training samples, and the level index each dataset hands the model."""

import logging

import numpy as np
import pandas as pd
import pytest

from aam.config import DataConfig
from aam.data import load_study
from aam.data.prepared import prepare_data
from aam.data.simulate import write_simulation
from aam.errors import UserError


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim")
    write_simulation(folder, n_samples=40, seed=2, n_features=16)
    return folder


def load(sim, columns, **kwargs):
    return load_study(sim / "table.biom", None, sim / "metadata.tsv", target_columns=columns, **kwargs)


def test_text_targets_are_classified_and_numbers_regressed_unless_named(sim):
    study = load(sim, ["ph", "ph_class", "location"])
    assert study.class_columns == ("ph_class", "location")
    assert np.isnan(study.targets[:, 1:]).all() and not np.isnan(study.targets[:, 0]).any()
    metadata = pd.read_csv(sim / "metadata.tsv", sep="\t", index_col="sample_id").loc[study.sample_ids]
    assert study.class_labels()[:, 0].tolist() == metadata["ph_class"].tolist()
    with pytest.raises(UserError, match="classification target 'depth' has a single sample"):
        load(sim, ["depth"], classification_columns=["depth"])  # named: its numbers are levels, each in one sample


def test_levels_come_from_the_training_samples_and_a_validation_only_level_is_reported(sim, caplog):
    study = load(sim, ["ph", "ph_class"])
    labels = study.class_labels()[:, 0]
    alkaline = np.flatnonzero(labels == "alkaline")
    val_idx = np.sort(np.concatenate([alkaline, np.flatnonzero(labels != "alkaline")[:4]]))
    train_idx = np.setdiff1d(np.arange(study.n_samples), val_idx)
    with caplog.at_level(logging.WARNING, logger="aam.data"):
        data = prepare_data(study, (train_idx, val_idx), DataConfig(), seed=0)
    assert data.levels.levels["ph_class"] == sorted(set(labels[train_idx]))
    assert "'alkaline' only in" in caplog.text and f"{len(alkaline)} validation sample(s)" in caplog.text
    index = {level: k for k, level in enumerate(data.levels.levels["ph_class"])}
    np.testing.assert_array_equal(data.train_set.targets[:, 1], [index[v] for v in labels[train_idx]])
    expected = [index.get(v, np.nan) for v in labels[val_idx]]
    np.testing.assert_array_equal(data.val_set.targets[:, 1], np.asarray(expected, dtype=np.float32))
    np.testing.assert_array_equal(data.train_set.targets[:, 0], study.targets[train_idx, 0].astype(np.float32))
