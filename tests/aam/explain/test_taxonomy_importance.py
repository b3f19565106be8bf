"""Taxonomy readers (.qza and TSV, missing features), per-taxon sums, Spearman columns and the forest's
permutation importance, each against an independent computation."""

import zipfile

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.stats import spearmanr

from aam.errors import UserError
from aam.evaluation.abundance import abundance_columns, spearman_columns
from aam.evaluation.forest_importance import permutation_importance
from aam.explain.importance import asv_table, taxon_table
from aam.explain.taxonomy import UNASSIGNED, read_taxonomy

FEATURES = ["f1", "f2", "f3", "f4", "f5"]
TAXA = {
    "f1": "d__Bacteria; p__Firmicutes; c__Bacilli; o__Lactobacillales; f__Streptococcaceae; g__Streptococcus",
    "f2": "d__Bacteria; p__Firmicutes; c__Bacilli; o__Lactobacillales; f__Streptococcaceae; g__Lactococcus",
    "f3": "d__Bacteria; p__Bacteroidota; c__Bacteroidia; o__Bacteroidales; f__Bacteroidaceae; g__",
    "f4": "d__Bacteria; p__Firmicutes; c__Bacilli; o__Lactobacillales; f__Streptococcaceae; g__Streptococcus",
}  # f5 is missing from the file; f3 has no genus


def _tsv(path, rows=TAXA, header="Feature ID\tTaxon\tConfidence\n"):
    path.write_text(header + "".join(f"{f}\t{t}\t0.9\n" for f, t in rows.items()))
    return path


def _qza(path, tsv_text):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("0d4c5a1e-aaaa-bbbb-cccc-123456789abc/metadata.yaml", "type: FeatureData[Taxonomy]\n")
        archive.writestr("0d4c5a1e-aaaa-bbbb-cccc-123456789abc/data/taxonomy.tsv", tsv_text)
    return path


@pytest.mark.parametrize("kind", ["tsv", "qza"])
def test_taxonomy_both_formats_with_missing_features(tmp_path, kind):
    tsv = _tsv(tmp_path / "taxonomy.tsv")
    path = tsv if kind == "tsv" else _qza(tmp_path / "taxonomy.qza", tsv.read_text())
    taxonomy = read_taxonomy(path, FEATURES)
    assert taxonomy.ranks == ["domain", "phylum", "class", "order", "family", "genus"]
    assert taxonomy.lineage("f5") == UNASSIGNED
    assert taxonomy.taxon_at("f1", 1) == "d__Bacteria; p__Firmicutes"
    assert taxonomy.taxon_at("f3", 5).endswith("f__Bacteroidaceae; (unassigned genus)")
    assert taxonomy.taxon_at("f5", 0) == UNASSIGNED


def test_taxonomy_without_prefixes_names_levels(tmp_path):
    path = _tsv(tmp_path / "t.tsv", {"f1": "Bacteria;Firmicutes", "f2": "Bacteria"})
    assert read_taxonomy(path, FEATURES).ranks == ["level_1", "level_2"]


def test_taxonomy_errors_name_the_file(tmp_path):
    with pytest.raises(UserError, match="none of its 2 feature IDs"):
        read_taxonomy(_tsv(tmp_path / "other.tsv", {"x1": "d__B", "x2": "d__B"}), FEATURES)
    with pytest.raises(UserError, match="'Feature ID' and 'Taxon'"):
        read_taxonomy(_tsv(tmp_path / "cols.tsv", header="id\tlineage\tConfidence\n"), FEATURES)
    with pytest.raises(UserError, match="holds no taxonomy"):
        with zipfile.ZipFile(tmp_path / "wrong.qza", "w") as archive:
            archive.writestr("u/data/dna-sequences.fasta", ">a\nACGT\n")
        read_taxonomy(tmp_path / "wrong.qza", FEATURES)
    with pytest.raises(UserError, match="not found"):
        read_taxonomy(tmp_path / "absent.tsv", FEATURES)


def test_spearman_columns_match_scipy():
    rng = np.random.default_rng(0)
    values = rng.poisson(1.0, (40, 6)).astype(float)  # ties and zeros
    values[:, 5] = 3.0  # constant
    target = rng.normal(size=40)
    target[[3, 7]] = np.nan
    got = spearman_columns(sp.csr_matrix(values), target)
    keep = ~np.isnan(target)
    for j in range(5):
        assert got[j] == pytest.approx(spearmanr(values[keep, j], target[keep]).statistic, abs=1e-12)
    assert np.isnan(got[5])


def test_tables_sum_asvs_per_taxon(tmp_path):
    rng = np.random.default_rng(1)
    counts = sp.csr_matrix(rng.poisson(2.0, (12, 5)) * (rng.random((12, 5)) > 0.3))
    abundance = sp.csr_matrix(counts / np.maximum(counts.sum(axis=1), 1))
    attributions = [sp.csr_matrix(rng.normal(size=(12, 5)) * (counts.toarray() > 0))]
    targets = rng.normal(size=(12, 1))
    taxonomy = read_taxonomy(_tsv(tmp_path / "t.tsv"), FEATURES)
    asvs = asv_table(FEATURES, ["ACGT"] * 5, abundance, targets, ("ph",), attributions, ["ph"], taxonomy)
    dense = attributions[0].toarray()
    expected = pd.Series(np.abs(dense).mean(axis=0), index=FEATURES)
    np.testing.assert_allclose(asvs.set_index("feature_id")["mean_abs_attribution_ph"], expected[asvs["feature_id"]])
    assert list(asvs["mean_abs_attribution_ph"]) == sorted(asvs["mean_abs_attribution_ph"], reverse=True)
    present = counts.toarray() > 0
    when_present = pd.Series([np.abs(dense[present[:, j], j]).mean() for j in range(5)], index=FEATURES)
    np.testing.assert_allclose(asvs.set_index("feature_id")["mean_abs_attribution_present_ph"],
                               when_present[asvs["feature_id"]])
    taxa = taxon_table(FEATURES, abundance, targets, ("ph",), attributions, ["ph"], taxonomy)
    genus = taxa[taxa["rank"] == "genus"].set_index("taxon")
    strep = [t for t in genus.index if t.endswith("g__Streptococcus")]
    assert len(strep) == 1 and genus.loc[strep[0], "n_asvs"] == 2
    summed = dense[:, 0] + dense[:, 3]  # f1 + f4 per sample
    assert genus.loc[strep[0], "mean_abs_attribution_ph"] == pytest.approx(np.abs(summed).mean())
    either = present[:, 0] | present[:, 3]
    assert genus.loc[strep[0], "mean_abs_attribution_present_ph"] == pytest.approx(np.abs(summed[either]).mean())
    assert genus.loc[UNASSIGNED, "n_asvs"] == 1
    prevalence = ((counts[:, 0] + counts[:, 3]).toarray() > 0).mean()
    assert genus.loc[strep[0], "prevalence"] == pytest.approx(prevalence)
    assert set(taxa["rank"]) == set(taxonomy.ranks)
    columns = abundance_columns(abundance, targets, ("ph",))
    np.testing.assert_allclose(columns["mean_relative_abundance"], abundance.toarray().mean(axis=0))


def test_permutation_importance_matches_sklearn():
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance as sklearn_permutation

    rng = np.random.default_rng(2)
    x = rng.random((120, 4))
    x[:, 3] = 0.5  # constant: never split on
    y = 3 * x[:, 0] + 0.5 * x[:, 1] + 0.05 * rng.normal(size=120)
    forest = RandomForestRegressor(n_estimators=30, random_state=0).fit(x[:80], y[:80])
    ours = permutation_importance(forest, sp.csr_matrix(x[80:]), y[80:], repeats=40, seed=0)
    theirs = sklearn_permutation(forest, x[80:], y[80:], n_repeats=40, random_state=0, scoring="r2")
    np.testing.assert_allclose(ours, theirs.importances_mean, atol=0.05)
    assert ours[0] > 0.5 and ours[3] == 0
