"""The two real studies, read through the package and directly through biom-format / pandas."""

import hashlib

import numpy as np
import pandas as pd

from data_fixtures import MOUSE, UDCA, require

from aam.data import AAMDataset, load_study, make_loader, split_samples
from aam.data.summary import summarize


def test_udca_qza_with_rep_seqs():
    import biom

    require(UDCA)
    study = load_study(UDCA / "table.qza", UDCA / "rep-seqs.qza", UDCA / "sra-submission-sheet.tsv",
                       target_columns=["host_age", "host_body_mass_index"], categorical_columns=["host_sex"],
                       group_column="host_subject_id")
    meta = pd.read_csv(UDCA / "sra-submission-sheet.tsv", sep="\t", dtype=str).set_index("sample_name")
    reference = biom.load_table(str(UDCA / "feature-table.biom")).filter(list(meta.index), inplace=False)
    reference.remove_empty(axis="observation", inplace=True)
    assert study.n_samples == 802 == len(meta)
    assert study.dropped == {"not in metadata": 150}
    assert set(study.sample_ids) == set(meta.index)
    ref = pd.DataFrame(reference.matrix_data.T.toarray(), index=list(reference.ids()),
                       columns=list(reference.ids(axis="observation")))
    ours = pd.DataFrame(study.counts.toarray(), index=study.sample_ids, columns=study.feature_ids)
    pd.testing.assert_frame_equal(ours, ref.loc[ours.index, ours.columns], check_dtype=False)
    assert len(study.feature_ids) == reference.shape[0] == 4333
    # Every hashed ID is the MD5 of its sequence (SOURCE.md), an independent check of the join.
    assert all(hashlib.md5(s.encode()).hexdigest() == f for f, s in zip(study.feature_ids, study.sequences))
    np.testing.assert_array_equal(study.targets[:, 0], meta.loc[study.sample_ids, "host_age"].astype(float))
    assert np.isnan(study.targets[:, 1]).sum() == 12  # the literal "missing" cells
    train, val = split_samples(study, 0.2, seed=0, group_column="host_subject_id")
    subjects = study.column("host_subject_id")
    assert set(subjects[train]).isdisjoint(subjects[val])
    ds = AAMDataset(study, train, max_bp=150, token_limit=1024, train=True)
    batch = next(iter(make_loader(ds, 64, shuffle=True, seed=0)))
    assert batch.asv_tokens.shape[1] == 150 and batch.asv_mask.sum(1).max() <= 340


def test_mouse_sequences_as_ids():
    import biom

    require(MOUSE)
    study = load_study(MOUSE / "qiita_10422_table.biom", metadata=MOUSE / "qiita_10422_metadata.tsv",
                       target_columns=["age", "weight", "weekly_cage_food_consumption"],
                       categorical_columns=["exposure_type"])
    table = biom.load_table(str(MOUSE / "qiita_10422_table.biom"))
    assert study.n_samples == 184 and len(study.feature_ids) == table.shape[0] == 1298
    assert study.sequences == study.feature_ids and {len(s) for s in study.sequences} == {100}
    meta = pd.read_csv(MOUSE / "qiita_10422_metadata.tsv", sep="\t", dtype=str).set_index("feature-id")
    np.testing.assert_array_equal(study.targets[:, 1], meta.loc[study.sample_ids, "weight"].astype(float))
    assert np.isnan(study.targets[:, 2]).sum() == 92
    assert sorted(set(study.categories[:, 0])) == ["Air", "IHH"]


def test_summaries_match_biom_format_and_pandas():
    import biom

    for table_path, seqs, meta_path, id_col in (
        (UDCA / "feature-table.biom", UDCA / "dna-sequences.fasta", UDCA / "sra-submission-sheet.tsv", "sample_name"),
        (MOUSE / "qiita_10422_table.biom", None, MOUSE / "qiita_10422_metadata.tsv", "feature-id"),
    ):
        require(table_path)
        summary = summarize(table_path, seqs, meta_path)
        table = biom.load_table(str(table_path))
        reads = table.sum(axis="sample")
        assert summary["samples"] == table.shape[1] and summary["features"] == table.shape[0]
        assert summary["reads_per_sample"]["min"] == reads.min()
        assert summary["reads_per_sample"]["median"] == np.median(reads)
        assert summary["zero_read_samples"] == int((reads == 0).sum())
        meta = pd.read_csv(meta_path, sep="\t", dtype=str, keep_default_na=False).set_index(id_col)
        in_both = set(meta.index) & set(table.ids())
        assert summary["metadata"]["in_both"] == len(in_both)
        assert summary["metadata"]["table_only"] == table.shape[1] - len(in_both)
        assert summary["metadata"]["metadata_only"] == len(meta) - len(in_both)
