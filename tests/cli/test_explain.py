"""`aam explain` end to end: tiny trained models (point with a categorical column, quantile), every output
file, agreement with `aam predict`, taxonomy in both formats, and each bad input -> one line, exit 2."""

import hashlib
import json
import zipfile

import numpy as np
import pandas as pd
import pytest

from aam.cli.main import main

TINY = ["--embedding-dim", "16", "--attention-heads", "2", "--asv-layers", "1", "--sample-layers", "1",
        "--dropout", "0", "--max-bp", "32", "--token-limit", "32", "--batch-size", "16", "--lr", "3e-3",
        "--patience", "0", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def point_run(small_study_args, tmp_path_factory):
    out = tmp_path_factory.mktemp("explain_point") / "run"
    assert main(["train", *small_study_args, "--metadata-column", "ph,temperature", "--categorical-columns",
                 "location", "--epochs", "3", "--output-dir", str(out), *TINY]) == 0
    return out


@pytest.fixture(scope="module")
def quantile_run(small_study_args, tmp_path_factory):
    out = tmp_path_factory.mktemp("explain_quantile") / "run"
    # intervals kept as trained: explain's width is the model's own highest minus lowest quantile
    assert main(["train", *small_study_args, "--metadata-column", "ph", "--loss-type", "quantile",
                 "--quantiles", "0.1,0.5,0.9", "--epochs", "2", "--no-conformal", "--output-dir", str(out), *TINY]) == 0
    return out


@pytest.fixture(scope="module")
def conformal_run(small_study_args, tmp_path_factory):
    """A quantile model whose intervals were calibrated after training (the default)."""
    out = tmp_path_factory.mktemp("explain_conformal") / "run"
    assert main(["train", *small_study_args, "--metadata-column", "ph", "--loss-type", "quantile",
                 "--quantiles", "0.1,0.5,0.9", "--epochs", "2", "--output-dir", str(out), *TINY]) == 0
    return out


@pytest.fixture(scope="module")
def cv_run(small_study_args, tmp_path_factory):
    """A 3-fold `aam cv` folder of one-epoch models."""
    out = tmp_path_factory.mktemp("explain_cv") / "cv"
    assert main(["cv", *small_study_args, "--metadata-column", "ph", "--epochs", "1", "--folds", "3", "--trees", "10",
                 "--ensemble", "1", "--output-dir", str(out), *TINY]) == 0
    return out


@pytest.fixture(scope="module")
def taxonomy_tsv(small_study, tmp_path_factory):
    """Genus per simulated clade; the last 5 features are left out of the file (unassigned)."""
    truth = json.loads((small_study / "truth.json").read_text())
    features = _feature_ids(small_study)
    rows = [f"{f}\td__Bacteria; p__Simulata; g__Clade{c}\t0.95" for f, c in
            zip(features[:-5], truth["feature_clade"][:-5])]
    path = tmp_path_factory.mktemp("taxonomy") / "taxonomy.tsv"
    path.write_text("Feature ID\tTaxon\tConfidence\n" + "\n".join(rows) + "\n")
    return path


def _feature_ids(study):
    import biom

    return list(biom.load_table(str(study / "table.biom")).ids("observation"))


@pytest.mark.parametrize("method", ["cohort", "integrated-gradients"])
def test_explain_point_model_with_categories_and_taxonomy(point_run, small_study, small_study_args, taxonomy_tsv,
                                                          tmp_path, capsys, method):
    out = tmp_path / "explain"
    assert main(["explain", "--model", str(point_run / "model.pt"), *small_study_args, "--taxonomy",
                 str(taxonomy_tsv), "--output-dir", str(out), "--batch-size", "9", "--device", "cpu",
                 "--sample", "sample_005", "--method", method, "--no-progress"]) == 0
    assert json.loads((out / "explain.json").read_text())["method"] == method
    for name in ("samples.tsv", "attributions.tsv", "asv_importance.tsv", "taxon_importance.tsv", "explain.json",
                 "plots/top_asvs_ph.png", "plots/top_taxa_temperature.png", "plots/heatmap_ph.png",
                 "plots/waterfall_sample_005_ph.png"):
        assert (out / name).is_file(), name
    samples = pd.read_csv(out / "samples.tsv", sep="\t", index_col="sample_id")
    # the predictions explained are those of `aam predict` (an independent code path)
    assert main(["predict", "--model", str(point_run / "model.pt"), *small_study_args, "--device", "cpu",
                 "--output", str(tmp_path / "pred.tsv")]) == 0
    predicted = pd.read_csv(tmp_path / "pred.tsv", sep="\t", index_col="sample_id")
    for target in ("ph", "temperature"):
        np.testing.assert_allclose(samples[target], predicted.loc[samples.index, target], rtol=1e-4, atol=1e-4)
        spread = samples[target].max() - samples[target].min()
        assert np.abs(samples[f"{target}_gap"]).max() < 0.01 * spread
    # per sample, the long table's attributions add up with the baseline to the prediction
    long = pd.read_csv(out / "attributions.tsv", sep="\t")
    sums = long[long["output"] == "ph"].groupby("sample_id")["attribution"].sum()
    np.testing.assert_allclose(samples.loc[sums.index, "ph_baseline"] + sums, samples.loc[sums.index, "ph"],
                               atol=0.01 * (samples["ph"].max() - samples["ph"].min()))
    asvs = pd.read_csv(out / "asv_importance.tsv", sep="\t")
    assert list(asvs.columns[:3]) == ["feature_id", "sequence", "taxonomy"]
    assert {"mean_abs_attribution_ph", "mean_attribution_temperature", "prevalence", "mean_relative_abundance",
            "spearman_ph", "spearman_temperature"} <= set(asvs.columns)
    assert (asvs["taxonomy"] == "Unassigned").sum() == 5
    # effect when present: |attribution| summed from the long table over the samples with reads of the ASV
    import biom

    table = biom.load_table(str(small_study / "table.biom"))
    reads = pd.DataFrame(table.matrix_data.toarray().T, index=table.ids("sample"), columns=table.ids("observation"))
    with_reads = (reads.loc[samples.index] > 0).sum()
    total_abs = long[long["output"] == "ph"].groupby("feature_id")["attribution"].apply(lambda a: a.abs().sum())
    expected = total_abs.reindex(with_reads.index, fill_value=0.0) / with_reads
    by_id = asvs.set_index("feature_id")
    np.testing.assert_allclose(by_id["mean_abs_attribution_present_ph"], expected[by_id.index], rtol=1e-5)
    taxa = pd.read_csv(out / "taxon_importance.tsv", sep="\t")
    assert set(taxa["rank"]) == {"domain", "phylum", "genus"}
    assert "Unassigned" in set(taxa.loc[taxa["rank"] == "genus", "taxon"])
    assert "explained 160 samples" in capsys.readouterr().out


def test_explain_quantile_model_gives_median_and_width(quantile_run, small_study, tmp_path):
    out = tmp_path / "explain"
    assert main(["explain", "--model", str(quantile_run / "model.pt"), "--table", str(small_study / "table.biom"),
                 "--output-dir", str(out), "--device", "cpu", "--no-progress"]) == 0
    assert main(["predict", "--model", str(quantile_run / "model.pt"), "--table", str(small_study / "table.biom"),
                 "--device", "cpu", "--output", str(tmp_path / "pred.tsv")]) == 0
    samples = pd.read_csv(out / "samples.tsv", sep="\t", index_col="sample_id")
    predicted = pd.read_csv(tmp_path / "pred.tsv", sep="\t", index_col="sample_id").loc[samples.index]
    np.testing.assert_allclose(samples["ph"], predicted["ph_q0.5"], atol=1e-4)
    np.testing.assert_allclose(samples["ph_width"], predicted["ph_q0.9"] - predicted["ph_q0.1"], atol=1e-4)
    asvs = pd.read_csv(out / "asv_importance.tsv", sep="\t")
    assert {"mean_abs_attribution_ph_width", "mean_attribution_ph_width"} <= set(asvs.columns)
    assert "spearman_ph" in asvs.columns and asvs["spearman_ph"].isna().all()  # no metadata given
    assert (out / "plots/waterfall_sample_000_ph_width.png").is_file()
    assert json.loads((out / "explain.json").read_text())["width_conformal"] == [False]  # --no-conformal


def test_explained_width_of_a_calibrated_model_is_the_width_predict_reports(conformal_run, small_study, tmp_path):
    table = ["--table", str(small_study / "table.biom"), "--device", "cpu"]
    out = tmp_path / "explain"
    assert main(["explain", "--model", str(conformal_run / "model.pt"), *table, "--output-dir", str(out),
                 "--no-progress"]) == 0
    assert main(["predict", "--model", str(conformal_run / "model.pt"), *table, "--output", str(tmp_path / "p.tsv")]) == 0
    samples = pd.read_csv(out / "samples.tsv", sep="\t", index_col="sample_id")
    predicted = pd.read_csv(tmp_path / "p.tsv", sep="\t", index_col="sample_id").loc[samples.index]
    offset = json.loads((conformal_run / "metrics.json").read_text())["ph"]["interval_offsets"]["0.1-0.9"]
    assert abs(offset) > 0.01  # the calibration moved the intervals, so ignoring it would show
    np.testing.assert_allclose(samples["ph_width"], predicted["ph_q0.9"] - predicted["ph_q0.1"], atol=1e-4)
    np.testing.assert_allclose(samples["ph"], predicted["ph_q0.5"], atol=1e-4)
    assert json.loads((out / "explain.json").read_text())["width_conformal"] == [True]
    long = pd.read_csv(out / "attributions.tsv", sep="\t")
    sums = long[long["output"] == "ph_width"].groupby("sample_id")["attribution"].sum()
    np.testing.assert_allclose(samples.loc[sums.index, "ph_width_baseline"] + sums, samples.loc[sums.index, "ph_width"],
                               atol=0.01 * max(np.ptp(samples["ph_width"]), 0.1))


def test_baseline_writes_forest_importances(point_run, tmp_path):
    out = tmp_path / "forest"
    assert main(["baseline", "--train-dir", str(point_run), "--output-dir", str(out), "--trees", "20",
                 "--n-jobs", "1", "--permutation-repeats", "2"]) == 0
    table = pd.read_csv(out / "asv_importance.tsv", sep="\t")
    assert {"feature_id", "sequence", "impurity_importance_ph", "permutation_importance_temperature",
            "prevalence", "mean_relative_abundance", "spearman_ph"} <= set(table.columns)
    assert table["impurity_importance_ph"].sum() == pytest.approx(1.0)


def test_explain_a_cv_folder_averages_its_fold_models(cv_run, small_study_args, tmp_path, capsys, user_error):
    out = tmp_path / "explain"
    assert main(["explain", "--model", str(cv_run), *small_study_args, "--output-dir", str(out), "--device", "cpu",
                 "--no-progress"]) == 0
    assert "with 3 model(s)" in capsys.readouterr().out
    folds = sorted(str(p) for p in (cv_run / "folds").glob("*/model.pt"))
    assert len(folds) == 3 and json.loads((out / "explain.json").read_text())["models"] == folds
    # the explained predictions are those of `aam predict` on the same folder (its own ensemble code)
    assert main(["predict", "--model", str(cv_run), *small_study_args, "--device", "cpu",
                 "--output", str(tmp_path / "pred.tsv")]) == 0
    samples = pd.read_csv(out / "samples.tsv", sep="\t", index_col="sample_id")
    predicted = pd.read_csv(tmp_path / "pred.tsv", sep="\t", index_col="sample_id")
    np.testing.assert_allclose(samples["ph"], predicted.loc[samples.index, "ph"], rtol=1e-4, atol=1e-4)
    long = pd.read_csv(out / "attributions.tsv", sep="\t")
    sums = long.groupby("sample_id")["attribution"].sum()
    np.testing.assert_allclose(samples.loc[sums.index, "ph_baseline"] + sums, samples.loc[sums.index, "ph"],
                               atol=0.01 * (samples["ph"].max() - samples["ph"].min()))
    # a cross-validation folder without a finished fold: one line, exit 2, nothing written
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / "cv_config.json").write_text((cv_run / "cv_config.json").read_text())
    user_error(["explain", "--model", str(unfinished), *small_study_args, "--output-dir", str(tmp_path / "none")],
               f"--model {unfinished}", "no finished fold models")
    assert not (tmp_path / "none").exists()


def _hashed_table(study, folder):
    """The study's table with md5 feature IDs, and a FASTA that lacks one of its sequences."""
    import biom
    import h5py

    table = biom.load_table(str(study / "table.biom"))
    ids = table.ids("observation")
    hashed = [hashlib.md5(s.encode()).hexdigest() for s in ids]
    out = biom.Table(table.matrix_data, observation_ids=hashed, sample_ids=table.ids("sample"))
    with h5py.File(folder / "hashed.biom", "w") as handle:
        out.to_hdf5(handle, generated_by="test")
    (folder / "partial.fasta").write_text("".join(f">{h}\n{s}\n" for h, s in zip(hashed[1:], ids[1:])))
    return folder / "hashed.biom", folder / "partial.fasta", hashed[0]


def test_bad_inputs_get_one_line_and_exit_2(point_run, small_study, small_study_args, tmp_path, user_error):
    model = ["--model", str(point_run / "model.pt")]
    args = [*model, *small_study_args, "--device", "cpu", "--no-progress"]
    other = tmp_path / "other.tsv"
    other.write_text("Feature ID\tTaxon\nabc\td__Bacteria\n")
    user_error(["explain", *args, "--taxonomy", str(other), "--output-dir", str(tmp_path / "a")], "--taxonomy",
               "none of its 1 feature IDs")
    qza = tmp_path / "other.qza"
    with zipfile.ZipFile(qza, "w") as archive:
        archive.writestr("u/data/taxonomy.tsv", other.read_text())
    user_error(["explain", *args, "--taxonomy", str(qza), "--output-dir", str(tmp_path / "a")], "none of its")
    table, fasta, missing = _hashed_table(small_study, tmp_path)
    user_error(["explain", *model, "--table", str(table), "--metadata", str(small_study / "metadata.tsv"),
                "--output-dir", str(tmp_path / "b")], "--sequences")
    user_error(["explain", *model, "--table", str(table), "--sequences", str(fasta), "--metadata",
                str(small_study / "metadata.tsv"), "--output-dir", str(tmp_path / "b")], missing)
    user_error(["explain", *model, "--table", str(small_study / "table.biom"), "--output-dir",
                str(tmp_path / "c")], "categorical", "--metadata")
    user_error(["explain", *args, "--sample", "nope", "--output-dir", str(tmp_path / "d")], "--sample nope")
    user_error(["explain", *args, "--steps", "1", "--output-dir", str(tmp_path / "e")], "--steps")
    user_error(["explain", *args, "--reference", "mean", "--output-dir", str(tmp_path / "e")], "--reference")
    user_error(["explain", *args, "--method", "lime", "--output-dir", str(tmp_path / "e")], "--method")
    user_error(["explain", *args, "--permutations", "1", "--output-dir", str(tmp_path / "e")], "--permutations")
    user_error(["explain", *args, "--similarity-ratio", "1", "--output-dir", str(tmp_path / "e")],
               "--similarity-ratio")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    user_error(["explain", *args, "--output-dir", str(busy)], "not empty", "--overwrite")
    assert (busy / "keep.txt").read_text() == "mine"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    user_error(["explain", *args, "--output-dir", str(blocker)], "not a folder")
    user_error(["explain", *args, "--output-dir", str(blocker / "sub")], "is a file, not a folder")
    user_error(["explain", "--model", str(tmp_path / "none.pt"), *small_study_args, "--output-dir",
                str(tmp_path / "f")], "checkpoint not found")
    for path in ("a", "b", "c", "d", "e", "f"):
        assert not (tmp_path / path).exists(), path  # nothing written before the inputs checked out
