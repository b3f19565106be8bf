"""load_study: joins, drops with warnings, and every user error."""

import logging

import numpy as np
import pytest
from data_fixtures import COUNTS, SEQS, write_biom

from aam.data import load_study
from aam.errors import UserError


def test_join_with_sequences_targets_and_categories(hashed_study, caplog):
    with caplog.at_level(logging.WARNING, logger="aam.data"):
        study = load_study(hashed_study["table"], hashed_study["sequences"], hashed_study["metadata"],
                           target_columns=["ph", "temp"], categorical_columns=["site"], group_column="subject")
    # s3: zero reads; s4: both targets missing; s9: metadata only.
    assert study.sample_ids == ["s1", "s2"]
    assert study.dropped == {"zero reads": 1, "all targets missing": 1}
    assert "dropped 1 sample: zero reads" in caplog.text
    assert "dropped 1 sample: all targets missing" in caplog.text
    # f1 (10, 0), f2 (5, 3), f3 (0, 7): all used by s1/s2.
    assert study.feature_ids == ["f1", "f2", "f3"]
    np.testing.assert_array_equal(study.counts.toarray(), COUNTS[:, :2].T)
    assert study.sequences == [SEQS[f] for f in study.feature_ids]
    np.testing.assert_array_equal(study.targets, [[6.5, 20.0], [np.nan, 22.0]])
    assert study.categories.tolist() == [["A"], ["B"]]
    assert study.column("subject").tolist() == ["p1", "p1"]


def test_features_without_reads_in_kept_samples_are_removed(tmp_path):
    counts = np.array([[4, 0], [0, 0], [1, 2]], dtype=float)
    table = write_biom(tmp_path / "t.biom", counts, ["ACGT", "GGGG", "TTTA"], ["a", "b"], "json")
    study = load_study(table)
    assert study.feature_ids == ["ACGT", "TTTA"]
    assert study.sequences == ["ACGT", "TTTA"]
    assert study.targets.shape == (2, 0) and study.categories.shape == (2, 0)


def test_prediction_keeps_samples_without_metadata(hashed_study):
    study = load_study(hashed_study["table"], hashed_study["sequences"], hashed_study["metadata"],
                       target_columns=["ph"], require_targets=False)
    assert study.sample_ids == ["s1", "s2", "s4"]
    np.testing.assert_array_equal(study.targets[:, 0], [6.5, np.nan, np.nan])
    assert load_study(hashed_study["table"], hashed_study["sequences"], require_targets=False).n_samples == 3


def test_samples_not_in_metadata_are_dropped_for_training(tmp_path, hashed_study):
    counts = np.array([[1, 2, 3]], dtype=float)
    table = write_biom(tmp_path / "t.biom", counts, ["ACGT"], ["s1", "s2", "zz"], "hdf5")
    study = load_study(table, metadata=hashed_study["metadata"], target_columns=["ph"])
    assert study.sample_ids == ["s1"]
    assert study.dropped == {"not in metadata": 1, "all targets missing": 1}


def test_hashed_ids_without_sequences(hashed_study):
    with pytest.raises(UserError, match=r"feature IDs in .*table.biom are not DNA sequences .*'f1'.*--sequences"):
        load_study(hashed_study["table"])


def test_sequences_missing_for_some_features(hashed_study, tmp_path):
    fasta = tmp_path / "partial.fasta"
    fasta.write_text(">f1\nACGT\n")
    with pytest.raises(UserError, match=r"2 of 3 features in .*table.biom have no sequence in .*partial.fasta \(e.g. 'f2'\)"):
        load_study(hashed_study["table"], fasta)


def test_no_overlap_between_table_and_metadata(hashed_study, tmp_path):
    meta = tmp_path / "other.tsv"
    meta.write_text("sample_id\tph\nx1\t1\nx2\t2\n")
    with pytest.raises(UserError, match=r"no sample IDs shared between table .*'s1'.* and metadata .*other.tsv.*'x1'"):
        load_study(hashed_study["table"], hashed_study["sequences"], meta, target_columns=["ph"])


@pytest.mark.parametrize("kwargs,message", [
    ({"target_columns": ["depth"]}, "target column 'depth' is not in metadata"),
    ({"target_columns": ["site"]}, r"level 'A' of classification target 'site' has a single sample \('s1'\)"),
    ({"target_columns": ["ph"], "categorical_columns": ["colour"]}, "categorical column 'colour' is not in metadata"),
    ({"target_columns": ["ph"], "group_column": "patient"}, "group column 'patient' is not in metadata"),
])
def test_column_errors(hashed_study, kwargs, message):
    with pytest.raises(UserError, match=message):
        load_study(hashed_study["table"], hashed_study["sequences"], hashed_study["metadata"], **kwargs)


def test_targets_without_metadata(hashed_study):
    with pytest.raises(UserError, match="need a metadata file"):
        load_study(hashed_study["table"], hashed_study["sequences"], target_columns=["ph"])


def test_every_sample_dropped(tmp_path):
    table = write_biom(tmp_path / "t.biom", np.zeros((1, 2)), ["ACGT"], ["a", "b"], "hdf5")
    with pytest.raises(UserError, match="no samples left .*2 zero reads"):
        load_study(table)


def test_prediction_reads_absent_columns_as_missing(hashed_study, caplog):
    with caplog.at_level(logging.WARNING, logger="aam.data"):
        study = load_study(hashed_study["table"], hashed_study["sequences"], hashed_study["metadata"],
                           target_columns=["ph", "salinity"], categorical_columns=["site", "soil"],
                           require_targets=False)
    assert "target column 'salinity' is not in metadata" in caplog.text
    assert study.targets.shape == (3, 2) and np.isnan(study.targets[:, 1]).all()
    assert study.categories.tolist() == [["A", None], ["B", None], [None, None]]
    bare = load_study(hashed_study["table"], hashed_study["sequences"], target_columns=["ph"],
                      categorical_columns=["site"], require_targets=False)
    assert bare.targets.shape == (3, 1) and bare.categories.shape == (3, 1) and bare.metadata is None
