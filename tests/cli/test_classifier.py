"""Classification targets end to end: the simulated `ph_class` (acidic, neutral, alkaline by pH) trained,
predicted, cross-validated against the random-forest classifier and the class prior, and explained; every
number checked against scikit-learn on the files the commands wrote."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import (accuracy_score, average_precision_score, balanced_accuracy_score, confusion_matrix,
                             log_loss, roc_auc_score)

from cli_helpers import cv_fold_parts

from aam.cli.main import main
from aam.data.simulate import PH_CLASSES, write_simulation
from aam.runtime.checkpoint import load_checkpoint

MODEL = ["--embedding-dim", "32", "--attention-heads", "2", "--asv-layers", "1", "--sample-layers", "1",
         "--max-bp", "64", "--token-limit", "64", "--batch-size", "16", "--lr", "3e-3", "--patience", "0",
         "--seed", "1", "--device", "cpu", "--no-progress"]
LEVELS = sorted(PH_CLASSES)
TREES = 30


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("classes")
    write_simulation(folder, n_samples=240, seed=4, n_features=64)
    return folder


def data_flags(study):
    return ["--table", str(study / "table.biom"), "--metadata", str(study / "metadata.tsv")]


@pytest.fixture(scope="module")
def trained(study, tmp_path_factory):
    out = tmp_path_factory.mktemp("train") / "run"
    assert main(["train", *data_flags(study), "--metadata-column", "ph_class", "--epochs", "10", *MODEL,
                 "--output-dir", str(out)]) == 0
    return out


def probabilities(frame, column, prefix=None):
    return frame[[f"{prefix or column}_p_{level}" for level in LEVELS]].to_numpy()


def test_a_tiny_classifier_learns_the_simulated_levels(trained):
    metrics = json.loads((trained / "metrics.json").read_text())["ph_class"]
    assert metrics["levels"] == LEVELS
    assert metrics["balanced_accuracy"] >= 0.9


def test_probabilities_sum_to_one_and_the_predicted_level_is_the_most_probable(trained):
    frame = pd.read_csv(trained / "val_predictions.tsv", sep="\t")
    p = probabilities(frame, "ph_class")
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert (frame["ph_class"] == np.asarray(LEVELS)[p.argmax(axis=1)]).all()


def test_metrics_equal_scikit_learn_on_the_written_predictions(trained):
    frame = pd.read_csv(trained / "val_predictions.tsv", sep="\t")
    metrics = json.loads((trained / "metrics.json").read_text())["ph_class"]
    p, y = probabilities(frame, "ph_class"), frame["ph_class_observed"].map(LEVELS.index).to_numpy()
    predicted = p.argmax(axis=1)
    assert metrics["n"] == len(frame)
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y, predicted))
    assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, predicted))
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average="macro"), rel=1e-6)
    assert metrics["log_loss"] == pytest.approx(log_loss(y, p, labels=[0, 1, 2]), rel=1e-5)
    one_hot = np.eye(3)[y]
    assert metrics["average_precision"] == pytest.approx(
        np.mean([average_precision_score(one_hot[:, k], p[:, k]) for k in range(3)]), rel=1e-6)
    assert metrics["confusion_matrix"] == confusion_matrix(y, predicted, labels=[0, 1, 2]).tolist()


def test_predict_of_the_saved_classifier_equals_its_validation_probabilities(trained, study, tmp_path):
    out = tmp_path / "predictions.tsv"
    assert main(["predict", "--model", str(trained / "model.pt"), "--table", str(study / "table.biom"),
                 "--output", str(out)]) == 0
    predicted = pd.read_csv(out, sep="\t", index_col="sample_id")
    validation = pd.read_csv(trained / "val_predictions.tsv", sep="\t", index_col="sample_id")
    np.testing.assert_allclose(probabilities(predicted.loc[validation.index], "ph_class"),
                               probabilities(validation, "ph_class"), rtol=1e-6, atol=1e-9)
    assert (predicted.loc[validation.index, "ph_class"] == validation["ph_class"]).all()


def test_the_fitted_temperature_lowers_the_validation_log_loss(trained, study, tmp_path):
    """Same seed and flags with --no-calibration: the same weights, probabilities at temperature 1."""
    plain = tmp_path / "plain"
    assert main(["train", *data_flags(study), "--metadata-column", "ph_class", "--epochs", "10", *MODEL,
                 "--no-calibration", "--output-dir", str(plain)]) == 0
    calibrated, uncalibrated = (load_checkpoint(run / "model.pt") for run in (trained, plain))
    for key, value in calibrated["model_state"].items():
        assert torch.equal(value, uncalibrated["model_state"][key]), key
    assert "class_temperatures" not in uncalibrated
    assert calibrated["class_temperatures"]["ph_class"] > 0
    losses = [json.loads((run / "metrics.json").read_text())["ph_class"]["log_loss"] for run in (trained, plain)]
    assert losses[0] <= losses[1] + 1e-9


def test_classification_and_regression_targets_share_one_model(study, tmp_path):
    out = tmp_path / "mixed"
    assert main(["train", *data_flags(study), "--metadata-column", "ph,ph_class", "--class-weights", "auto",
                 "--label-smoothing", "0.05", "--epochs", "2", *MODEL, "--output-dir", str(out)]) == 0
    frame = pd.read_csv(out / "val_predictions.tsv", sep="\t")
    assert list(frame.columns) == ["sample_id", "ph", "ph_observed", "ph_class", *[f"ph_class_p_{v}" for v in LEVELS],
                                   "ph_class_observed"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"mae", "r2"} <= set(metrics["ph"]) and {"roc_auc", "brier"} <= set(metrics["ph_class"])
    history = pd.read_csv(out / "history.tsv", sep="\t")
    assert {"val_loss_ph", "val_loss_ph_class", "ph_mae", "ph_class_log_loss"} <= set(history.columns)


@pytest.fixture(scope="module")
def cv_run(study, tmp_path_factory):
    """Grouped by location: four groups, so three folds keep whole sites apart."""
    out = tmp_path_factory.mktemp("cv") / "cv"
    assert main(["cv", *data_flags(study), "--metadata-column", "ph_class", "--group-column", "location",
                 "--folds", "3", "--epochs", "3", "--trees", str(TREES), "--ensemble", "1", *MODEL,
                 "--output-dir", str(out)]) == 0
    return out


def test_cv_folds_keep_groups_whole_and_every_class_in_every_test_fold(cv_run, study):
    folds = pd.read_csv(cv_run / "folds.tsv", sep="\t", index_col="sample_id")["repeat1"]
    metadata = pd.read_csv(study / "metadata.tsv", sep="\t", index_col="sample_id").loc[folds.index]
    assert (metadata.groupby("location").apply(lambda rows: folds[rows.index].nunique()) == 1).all()
    for fold in (1, 2, 3):
        assert set(metadata.loc[folds == fold, "ph_class"]) == set(LEVELS)


def test_cv_forest_and_prior_are_fitted_on_the_same_folds(cv_run, study):
    for preds, test, train, x_train, x_test in cv_fold_parts(cv_run, study / "table.biom", 3):
        y = preds.loc[train, "ph_class_observed"].map(LEVELS.index).to_numpy()
        shares = np.bincount(y, minlength=3) / len(y)
        np.testing.assert_allclose(probabilities(preds.loc[test], "ph_class", "ph_class_prior"),
                                   np.broadcast_to(shares, (len(test), 3)), rtol=1e-8)
        forest = RandomForestClassifier(n_estimators=TREES, random_state=1, n_jobs=1)
        forest.fit(x_train, y)
        np.testing.assert_allclose(probabilities(preds.loc[test], "ph_class", "ph_class_forest"),
                                   forest.predict_proba(x_test), rtol=1e-6, atol=1e-12)


def test_cv_metrics_equal_scikit_learn_on_the_out_of_fold_predictions(cv_run):
    preds = pd.read_csv(cv_run / "cv_predictions.tsv", sep="\t")
    metrics = json.loads((cv_run / "cv_metrics.json").read_text())
    y = preds["ph_class_observed"].map(LEVELS.index).to_numpy()
    for method in ("aam", "forest", "prior"):
        p = probabilities(preds, "ph_class", f"ph_class_{method}")
        np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
        pooled = metrics["pooled"][method]["ph_class"]
        assert pooled["roc_auc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr"), rel=1e-6), method
        assert pooled["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p.argmax(axis=1))), method
        for entry in metrics["per_fold"]:
            rows = (preds["fold"] == entry["fold"]).to_numpy()
            assert entry[method]["ph_class"]["accuracy"] == pytest.approx(accuracy_score(y[rows],
                                                                                        p[rows].argmax(axis=1)))
    summary = pd.read_csv(cv_run / "cv_summary.tsv", sep="\t")
    assert set(summary["method"]) == {"aam", "forest", "prior"}


def test_baseline_fits_the_forest_classifier(study, tmp_path):
    out = tmp_path / "baseline"
    assert main(["baseline", *data_flags(study), "--metadata-column", "ph_class", "--trees", str(TREES),
                 "--n-jobs", "1", "--permutation-repeats", "1", "--output-dir", str(out)]) == 0
    frame = pd.read_csv(out / "val_predictions.tsv", sep="\t")
    metrics = json.loads((out / "metrics.json").read_text())["ph_class"]
    p, y = probabilities(frame, "ph_class"), frame["ph_class_observed"].map(LEVELS.index).to_numpy()
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr"), rel=1e-6)
    importance = pd.read_csv(out / "asv_importance.tsv", sep="\t")
    assert {"impurity_importance_ph_class", "permutation_importance_ph_class"} <= set(importance.columns)


def test_explain_attributes_each_level_log_odds(trained, study, tmp_path):
    out = tmp_path / "explain"
    assert main(["explain", "--model", str(trained / "model.pt"), "--table", str(study / "table.biom"),
                 "--metadata", str(study / "metadata.tsv"), "--method", "integrated-gradients", "--steps", "64",
                 "--no-progress", "--output-dir", str(out)]) == 0
    assert (out / "plots" / "heatmap_ph_class.png").is_file()
    samples = pd.read_csv(out / "samples.tsv", sep="\t", index_col="sample_id")
    predicted = pd.read_csv(trained / "val_predictions.tsv", sep="\t", index_col="sample_id")
    p = probabilities(predicted, "ph_class")
    for k, level in enumerate(LEVELS):
        odds = np.log(p[:, k] / (1 - p[:, k]))
        np.testing.assert_allclose(samples.loc[predicted.index, f"ph_class={level}"], odds, rtol=1e-4, atol=1e-4)


def test_predict_with_the_cv_folder_averages_the_fold_probabilities(cv_run, study, tmp_path):
    assert main(["predict", "--model", str(cv_run), "--table", str(study / "table.biom"),
                 "--output", str(tmp_path / "ensemble.tsv")]) == 0
    folds = sorted((cv_run / "folds").glob("repeat1_fold*"))
    each = []
    for k, fold in enumerate(folds):
        assert main(["predict", "--model", str(fold / "model.pt"), "--table", str(study / "table.biom"),
                     "--output", str(tmp_path / f"{k}.tsv")]) == 0
        each.append(probabilities(pd.read_csv(tmp_path / f"{k}.tsv", sep="\t"), "ph_class"))
    ensemble = pd.read_csv(tmp_path / "ensemble.tsv", sep="\t")
    mean = np.mean(each, axis=0)
    np.testing.assert_allclose(probabilities(ensemble, "ph_class"), mean, rtol=1e-6, atol=1e-9)
    assert (ensemble["ph_class"] == np.asarray(LEVELS)[mean.argmax(axis=1)]).all()


def test_cv_ensemble_scores_the_mean_of_its_members_on_each_test_fold(study, tmp_path):
    out = tmp_path / "cv"
    assert main(["cv", *data_flags(study), "--metadata-column", "ph_class,ph", "--folds", "3", "--epochs", "2",
                 "--trees", "5", "--ensemble", "2", *MODEL, "--output-dir", str(out)]) == 0
    preds = pd.read_csv(out / "cv_predictions.tsv", sep="\t", index_col="sample_id")
    for fold in (1, 2, 3):
        folder = out / "folds" / f"repeat1_fold{fold}"
        members = [folder, folder / "member2"]
        splits = [(m / "val_samples.txt").read_text() for m in members]
        assert splits[0] != splits[1]  # each member validates on its own part of the fold's training samples
        test = preds.index[preds["fold"] == fold]
        each = []
        for k, member in enumerate(members):
            assert main(["predict", "--model", str(member / "model.pt"), "--table", str(study / "table.biom"),
                         "--output", str(tmp_path / f"{fold}_{k}.tsv")]) == 0
            each.append(pd.read_csv(tmp_path / f"{fold}_{k}.tsv", sep="\t", index_col="sample_id").loc[test])
        np.testing.assert_allclose(probabilities(preds.loc[test], "ph_class", "ph_class_aam"),
                                   np.mean([probabilities(e, "ph_class") for e in each], axis=0), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(preds.loc[test, "ph_aam"], np.mean([e["ph"] for e in each], axis=0), rtol=1e-6)
