"""End to end on CPU: simulate -> aam train (ph, temperature; location categorical) -> aam predict.

What a run must deliver: the best model's predictions from `aam predict` equal
val_predictions.tsv on the validation samples, and ph MAE < 0.8 x the MAE of predicting the
training mean (computed here from the metadata and the split files, independently of aam).
"""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from aam.cli.main import main
from aam.runtime.checkpoint import load_checkpoint

TARGETS = ["--metadata-column", "ph,temperature", "--categorical-columns", "location"]


@pytest.fixture(scope="module")
def trained(small_study_args, small_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    code = main(["train", *small_study_args, "--output-dir", str(out), *TARGETS, *small_model, "--epochs", "10"])
    assert code == 0
    return out


def test_run_writes_every_output(trained):
    for name in ("model.pt", "last.pt", "config.json", "history.tsv", "train_samples.txt", "val_samples.txt",
                 "val_predictions.tsv", "metrics.json", "plots/pred_vs_observed_ph.png",
                 "plots/pred_vs_observed_temperature.png", "plots/loss_curves.png"):
        assert (trained / name).is_file(), name
    history = pd.read_csv(trained / "history.tsv", sep="\t")
    assert list(history["epoch"]) == list(range(1, 11))
    assert {"train_loss_ph", "val_loss_temperature", "ph_mae", "temperature_r2"} <= set(history.columns)
    metrics = json.loads((trained / "metrics.json").read_text())
    assert set(metrics) == {"ph", "temperature"}
    assert set(metrics["ph"]) == {"mae", "rmse", "r2", "pearson", "n"}


def test_split_is_disjoint_and_covers_the_study(trained, small_study):
    train = (trained / "train_samples.txt").read_text().split()
    val = (trained / "val_samples.txt").read_text().split()
    assert not set(train) & set(val)
    assert len(train) + len(val) == 160


def test_ph_beats_the_training_mean_and_metrics_match_predictions(trained, small_study):
    meta = pd.read_csv(small_study / "metadata.tsv", sep="\t", index_col=0)
    train = (trained / "train_samples.txt").read_text().split()
    preds = pd.read_csv(trained / "val_predictions.tsv", sep="\t", index_col="sample_id")
    observed = meta.loc[preds.index, "ph"]
    np.testing.assert_allclose(preds["ph_observed"], observed, rtol=1e-6)
    model_mae = np.abs(preds["ph"] - observed).mean()
    mean_mae = np.abs(meta.loc[train, "ph"].mean() - observed).mean()
    assert model_mae < 0.8 * mean_mae, (model_mae, mean_mae)
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["ph"]["mae"] == pytest.approx(model_mae, rel=1e-6)
    assert metrics["ph"]["n"] == len(preds)


def test_predict_equals_val_predictions(trained, small_study, tmp_path):
    out = tmp_path / "pred.tsv"
    # A different batch size: predictions must not depend on batch composition or padding.
    code = main(["predict", "--model", str(trained / "model.pt"), "--table", str(small_study / "table.biom"),
                 "--metadata", str(small_study / "metadata.tsv"), "--device", "cpu", "--batch-size", "7",
                 "--output", str(out)])
    assert code == 0
    predicted = pd.read_csv(out, sep="\t", index_col="sample_id")
    assert list(predicted.columns) == ["ph", "temperature"]
    assert len(predicted) == 160
    val = pd.read_csv(trained / "val_predictions.tsv", sep="\t", index_col="sample_id")
    np.testing.assert_allclose(predicted.loc[val.index, ["ph", "temperature"]], val[["ph", "temperature"]],
                               rtol=1e-5, atol=1e-5)


def test_baseline_on_the_same_split(trained, tmp_path):
    out = tmp_path / "rf"
    assert main(["baseline", "--train-dir", str(trained), "--output-dir", str(out), "--trees", "20",
                 "--n-jobs", "1"]) == 0
    assert (out / "val_samples.txt").read_text() == (trained / "val_samples.txt").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"ph", "temperature"} and set(metrics["ph"]) == {"mae", "rmse", "r2", "pearson", "n"}


def test_best_metric_last_keeps_the_final_epoch_and_never_stops_early(tiny_study_args, tiny_model, tmp_path):
    out = tmp_path / "run"
    assert main(["train", *tiny_study_args, *tiny_model, "--metadata-column", "ph", "--epochs", "4", "--patience", "1",
                 "--lr", "0.05", "--best-metric", "last", "--output-dir", str(out)]) == 0
    history = pd.read_csv(out / "history.tsv", sep="\t")
    assert history["epoch"].tolist() == [1, 2, 3, 4]
    best, last = (load_checkpoint(out / name) for name in ("model.pt", "last.pt"))
    assert best["epoch"] == 4
    for name, tensor in last["model_state"].items():
        assert torch.equal(best["model_state"][name], tensor), name
