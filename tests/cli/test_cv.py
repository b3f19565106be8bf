"""`aam cv` end to end on a simulated study with a tiny model: folds, the inner split that picks the epoch,
the forest and the mean on the same folds, metrics recomputed from cv_predictions.tsv with numpy and
scikit-learn, resume after an interruption, the fold ensemble in `aam predict`, and bad inputs."""

import dataclasses
import json
import signal

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from cli_helpers import cv_fold_parts

from aam.cli.main import main
from aam.crossval import cross_validate
from aam.runtime.checkpoint import load_checkpoint

# on top of the tiny model: three epochs, so the inner split has an epoch to choose and a run to interrupt
RUN = ["--metadata-column", "ph", "--batch-size", "16", "--lr", "3e-3", "--epochs", "3", "--patience", "0",
       "--seed", "4"]
TREES = 30
CV = ["--folds", "3", "--trees", str(TREES), "--group-column", "subject", "--ensemble", "1"]


def data_flags(study):
    return ["--table", str(study / "table.biom"), "--metadata", str(study / "grouped.tsv")]


@pytest.fixture(scope="module")
def study(small_study):
    """The small study with a subject column: 40 subjects of 4 samples, one sample without a subject."""
    meta = pd.read_csv(small_study / "metadata.tsv", sep="\t", index_col=0)
    subjects = [f"m{i // 4}" for i in range(len(meta))]
    subjects[5] = ""
    meta["subject"] = subjects
    meta.to_csv(small_study / "grouped.tsv", sep="\t")
    return small_study


@pytest.fixture(scope="module")
def tiny(tiny_model):
    return [*tiny_model, *RUN]


@pytest.fixture(scope="module")
def cv_run(study, tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("cv") / "cv"
    assert main(["cv", *data_flags(study), "--output-dir", str(out), *tiny, *CV]) == 0
    return out


def test_folds_are_disjoint_cover_every_sample_and_keep_subjects_whole(cv_run, study):
    meta = pd.read_csv(study / "grouped.tsv", sep="\t", index_col=0, dtype={"subject": str})
    preds = pd.read_csv(cv_run / "cv_predictions.tsv", sep="\t", index_col="sample_id")
    assert sorted(preds.index) == sorted(meta.index.astype(str))  # each sample once (one repeat)
    subjects = meta["subject"].reindex(preds.index)
    for fold in (1, 2, 3):
        inside = subjects[preds["fold"] == fold].dropna()
        outside = subjects[preds["fold"] != fold].dropna()
        assert len(inside) and set(inside).isdisjoint(outside)
    folds = pd.read_csv(cv_run / "folds.tsv", sep="\t", index_col="sample_id")
    assert (folds.loc[preds.index, "repeat1"] == preds["fold"]).all()


def test_the_inner_split_is_outside_the_test_fold_and_picks_the_epoch(cv_run):
    preds = pd.read_csv(cv_run / "cv_predictions.tsv", sep="\t", index_col="sample_id")
    for fold in (1, 2, 3):
        folder = cv_run / "folds" / f"repeat1_fold{fold}"
        train = set((folder / "train_samples.txt").read_text().split())
        val = set((folder / "val_samples.txt").read_text().split())
        test = set(preds.index[preds["fold"] == fold])
        assert train.isdisjoint(val) and train.isdisjoint(test) and val.isdisjoint(test)
        assert len(train | val | test) == len(preds)
        # the epoch of model.pt is the best validation MAE of history.tsv, computed on val_samples.txt
        history = pd.read_csv(folder / "history.tsv", sep="\t")
        best = int(history.loc[history["ph_mae"].idxmin(), "epoch"])
        assert load_checkpoint(folder / "model.pt")["epoch"] == best
        val_preds = pd.read_csv(folder / "val_predictions.tsv", sep="\t", index_col="sample_id")
        assert set(val_preds.index) == val
        mae = np.abs(val_preds["ph"] - val_preds["ph_observed"]).mean()
        assert mae == pytest.approx(history.loc[history["epoch"] == best, "ph_mae"].item(), rel=1e-5)


def test_forest_and_mean_are_fitted_on_the_same_folds(cv_run, study):
    for preds, test, train, x_train, x_test in cv_fold_parts(cv_run, study / "table.biom", 3):
        observed = preds.loc[train, "ph_observed"]
        np.testing.assert_allclose(preds.loc[test, "ph_mean"], observed.mean(), rtol=1e-9)
        forest = RandomForestRegressor(n_estimators=TREES, random_state=4, n_jobs=1)
        forest.fit(x_train, observed.to_numpy())
        np.testing.assert_allclose(preds.loc[test, "ph_forest"], forest.predict(x_test), rtol=1e-6)


def test_pooled_and_per_fold_metrics_equal_those_recomputed_from_the_predictions(cv_run):
    preds = pd.read_csv(cv_run / "cv_predictions.tsv", sep="\t")
    metrics = json.loads((cv_run / "cv_metrics.json").read_text())
    assert metrics["folds"] == 3 and metrics["group_column"] == "subject"

    def reference(rows, method):
        y, p = rows["ph_observed"].to_numpy(), rows[f"ph_{method}"].to_numpy()
        return {"mae": mean_absolute_error(y, p), "rmse": np.sqrt(mean_squared_error(y, p)), "r2": r2_score(y, p),
                "n": len(y)}

    for method in ("aam", "forest", "mean"):
        for key, value in reference(preds, method).items():
            assert metrics["pooled"][method]["ph"][key] == pytest.approx(value, rel=1e-6), (method, key)
        if method != "mean":
            r = np.corrcoef(preds["ph_observed"], preds[f"ph_{method}"])[0, 1]
            assert metrics["pooled"][method]["ph"]["pearson"] == pytest.approx(r, rel=1e-6)
        for entry in metrics["per_fold"]:
            rows = preds[preds["fold"] == entry["fold"]]
            assert entry[method]["ph"]["mae"] == pytest.approx(reference(rows, method)["mae"], rel=1e-6)
    summary = pd.read_csv(cv_run / "cv_summary.tsv", sep="\t").set_index(["method", "target", "metric"])
    per_fold = [mean_absolute_error(g["ph_observed"], g["ph_aam"]) for _, g in preds.groupby("fold")]
    assert summary.loc[("aam", "ph", "mae"), "fold_mean"] == pytest.approx(np.mean(per_fold), rel=1e-6)
    assert summary.loc[("aam", "ph", "mae"), "fold_sd"] == pytest.approx(np.std(per_fold, ddof=1), rel=1e-6)
    for name in ("cv_pred_vs_observed_ph.png", "cv_mae_per_fold_ph.png"):
        assert (cv_run / "plots" / name).is_file()


def test_an_interrupted_cv_resumes_to_the_same_results(cv_run, study, tiny, tmp_path):
    from aam.cli.cv import TRAINING_FLAGS
    from aam.cli.flags import DATA_FLAGS, LOSS_FLAGS, MODEL_FLAGS, config_from_args
    from aam.cli.main import build_parser
    from aam.crossval import CVConfig

    out = tmp_path / "cv"
    args = build_parser().parse_args(["cv", *data_flags(study), *tiny])
    config = config_from_args(args, DATA_FLAGS + MODEL_FLAGS + LOSS_FLAGS + TRAINING_FLAGS)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, group_column="subject"),
                                 train=dataclasses.replace(config.train, output_dir=str(out)))

    def stop_in_second_fold(fold, epoch, row):
        if fold == "repeat1_fold2" and epoch == 2:
            signal.raise_signal(signal.SIGTERM)  # caught by the training loop: the run stops after this epoch

    result = cross_validate(config, CVConfig(folds=3, trees=TREES, ensemble=1), on_epoch_end=stop_in_second_fold)
    assert result.interrupted_by == signal.SIGTERM and result.folds_run == 1
    assert (out / "folds" / "repeat1_fold1" / "test_predictions.tsv").is_file()
    assert load_checkpoint(out / "folds" / "repeat1_fold2" / "last.pt")["epoch"] == 2
    assert not (out / "cv_predictions.tsv").exists()
    first_fold = (out / "folds" / "repeat1_fold1" / "test_predictions.tsv").read_bytes()

    assert main(["cv", "--resume", "--output-dir", str(out), "--no-progress"]) == 0
    assert (out / "folds" / "repeat1_fold1" / "test_predictions.tsv").read_bytes() == first_fold
    history = pd.read_csv(out / "folds" / "repeat1_fold2" / "history.tsv", sep="\t")
    assert list(history["epoch"]) == [1, 2, 3]
    resumed = pd.read_csv(out / "cv_predictions.tsv", sep="\t")
    uninterrupted = pd.read_csv(cv_run / "cv_predictions.tsv", sep="\t")
    pd.testing.assert_frame_equal(resumed, uninterrupted, rtol=1e-6)
    pd.testing.assert_frame_equal(pd.read_csv(out / "cv_summary.tsv", sep="\t"),
                                  pd.read_csv(cv_run / "cv_summary.tsv", sep="\t"), rtol=1e-6)


def test_predict_with_the_cv_folder_averages_the_fold_models(cv_run, study, tmp_path, capsys):
    out = tmp_path / "ensemble.tsv"
    assert main(["predict", "--model", str(cv_run), "--table", str(study / "table.biom"), "--device", "cpu",
                 "--output", str(out)]) == 0
    assert "averaged the predictions of 3 fold models" in capsys.readouterr().out
    single = []
    for fold in (1, 2, 3):
        path = tmp_path / f"fold{fold}.tsv"
        assert main(["predict", "--model", str(cv_run / "folds" / f"repeat1_fold{fold}" / "model.pt"),
                     "--table", str(study / "table.biom"), "--device", "cpu", "--output", str(path)]) == 0
        single.append(pd.read_csv(path, sep="\t", index_col="sample_id")["ph"])
    ensemble = pd.read_csv(out, sep="\t", index_col="sample_id")["ph"]
    np.testing.assert_allclose(ensemble, sum(single) / 3, rtol=1e-6)


@pytest.mark.parametrize("flags, message", [
    (["--folds", "1"], "--folds must be >= 2; got 1"),
    (["--folds", "5", "--group-column", "location"], "--folds 5 is more than the 4 groups in 'location'"),
])
def test_bad_fold_counts_get_one_line_and_exit_2(study, tiny, tmp_path, user_error, flags, message):
    user_error(["cv", *data_flags(study), "--output-dir", str(tmp_path / "cv"), *tiny, *flags], message)


def test_a_finished_cv_folder_is_not_reused_without_resume(cv_run, study, tiny, user_error):
    user_error(["cv", *data_flags(study), "--output-dir", str(cv_run), *tiny, *CV], "pass --resume")


def test_pearson_of_a_constant_prediction_is_undefined():
    from aam.evaluation.metrics import regression_metrics

    # 0.1 * 7 / 7 != 0.1 in floating point: the rounding noise must not become a correlation
    assert np.isnan(regression_metrics(np.full(7, 0.1), np.arange(7.0))["pearson"])
    assert regression_metrics(np.arange(7.0) * 2 + 1, np.arange(7.0))["pearson"] == pytest.approx(1.0)


def test_a_cv_folder_from_before_the_ensemble_flag_resumes_with_one_model_per_fold(cv_run, tmp_path):
    from aam.crossval.run import resume_settings

    saved = json.loads((cv_run / "cv_config.json").read_text())
    assert saved["cv"]["ensemble"] == 1
    del saved["cv"]["ensemble"]
    (tmp_path / "cv_config.json").write_text(json.dumps(saved))
    _, cv = resume_settings(tmp_path)
    assert cv.ensemble == 1 and cv.folds == 3
