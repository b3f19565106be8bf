"""End to end: quantile regression with a residual head, its conformal interval calibration, fused vs reference
loss, and each regressor-flag mistake as a one-line error."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from aam.cli.main import main
from aam.runtime.checkpoint import load_checkpoint

QUANTILE_MODEL = ["--metadata-column", "ph", "--epochs", "10", "--loss-type", "quantile", "--quantiles", "0.1,0.5,0.9",
                  "--regressor-hidden-dims", "32", "--residual-regression-head"]
LEVELS = ["ph_q0.1", "ph_q0.5", "ph_q0.9"]


@pytest.fixture(scope="module")
def runs(small_study_args, small_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name, extra in (("reference", []), ("fused", ["--fused-kernels"])):
        assert main(["train", *small_study_args, *small_model, *QUANTILE_MODEL, *extra,
                     "--output-dir", str(root / name)]) == 0
    return root


def test_quantiles_never_cross_and_cover_the_validation_samples(runs, small_study):
    val = pd.read_csv(runs / "reference" / "val_predictions.tsv", sep="\t", index_col="sample_id")
    assert list(val.columns) == ["ph", *LEVELS, "ph_observed"]
    q = val[LEVELS].to_numpy()
    assert (np.diff(q, axis=1) >= 0).all()
    inside = ((val["ph_observed"] >= val["ph_q0.1"]) & (val["ph_observed"] <= val["ph_q0.9"])).mean()
    assert 0.65 <= inside <= 0.95, inside
    np.testing.assert_array_equal(val["ph"], val["ph_q0.5"])  # the point prediction is the 0.5 quantile
    meta = pd.read_csv(small_study / "metadata.tsv", sep="\t", index_col=0)
    train = (runs / "reference" / "train_samples.txt").read_text().split()
    mean_mae = np.abs(meta.loc[train, "ph"].mean() - val["ph_observed"]).mean()
    assert np.abs(val["ph"] - val["ph_observed"]).mean() < mean_mae
    metrics = json.loads((runs / "reference" / "metrics.json").read_text())["ph"]
    assert metrics["coverage"] == pytest.approx(inside)
    assert metrics["nominal_coverage"] == pytest.approx(0.8)
    assert metrics["crossing_rate"] == 0.0
    assert set(metrics["pinball"]) == {"0.1", "0.5", "0.9"}
    assert (runs / "reference" / "plots" / "calibration.png").is_file()


def test_predict_writes_the_quantile_columns_without_crossing(runs, small_study, tmp_path):
    out = tmp_path / "p.tsv"
    assert main(["predict", "--model", str(runs / "reference" / "model.pt"), "--table", str(small_study / "table.biom"),
                 "--device", "cpu", "--output", str(out)]) == 0
    predicted = pd.read_csv(out, sep="\t", index_col="sample_id")
    assert list(predicted.columns) == ["ph", *LEVELS]
    assert (np.diff(predicted[LEVELS].to_numpy(), axis=1) >= 0).all()
    val = pd.read_csv(runs / "reference" / "val_predictions.tsv", sep="\t", index_col="sample_id")
    np.testing.assert_allclose(predicted.loc[val.index, LEVELS], val[LEVELS], rtol=1e-5, atol=1e-5)


def test_the_interval_is_calibrated_on_the_validation_samples(runs, small_study, tmp_path):
    """model.pt holds the conformal offset of the 0.1-0.9 interval: recomputed here from the model's own
    quantiles on its validation samples (the ceil(0.8 (n + 1))-th smallest score); predict applies it."""
    folder = runs / "reference"
    payload = load_checkpoint(folder / "model.pt")
    torch.save({k: v for k, v in payload.items() if k != "interval_calibration"}, tmp_path / "raw.pt")
    frames = {}
    for name, model in (("raw", tmp_path / "raw.pt"), ("calibrated", folder / "model.pt")):
        assert main(["predict", "--model", str(model), "--table", str(small_study / "table.biom"), "--device", "cpu",
                     "--output", str(tmp_path / f"{name}.tsv")]) == 0
        frames[name] = pd.read_csv(tmp_path / f"{name}.tsv", sep="\t", index_col="sample_id")
    val = (folder / "val_samples.txt").read_text().split()
    observed = pd.read_csv(small_study / "metadata.tsv", sep="\t", index_col=0).loc[val, "ph"].to_numpy()
    raw = frames["raw"].loc[val]
    scores = np.sort(np.maximum(raw["ph_q0.1"] - observed, observed - raw["ph_q0.9"]))
    offset = scores[math.ceil(0.8 * (len(val) + 1)) - 1]
    # predict batches the samples differently from the validation pass: fp32 rounding apart
    assert payload["interval_calibration"]["offsets"] == [[pytest.approx(offset, abs=1e-5)]]
    expected = np.sort(np.stack([frames["raw"]["ph_q0.1"] - offset, frames["raw"]["ph_q0.5"],
                                 frames["raw"]["ph_q0.9"] + offset], axis=1), axis=1)
    np.testing.assert_allclose(frames["calibrated"][LEVELS], expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(frames["calibrated"]["ph"], frames["raw"]["ph"])  # the median is not moved
    metrics = json.loads((folder / "metrics.json").read_text())["ph"]
    assert metrics["interval_offsets"] == {"0.1-0.9": pytest.approx(offset, abs=1e-5)}


def test_no_conformal_keeps_the_intervals_as_trained(small_study_args, tiny_model, tmp_path):
    assert main(["train", *small_study_args, *tiny_model, "--metadata-column", "ph", "--loss-type", "quantile",
                 "--no-conformal", "--output-dir", str(tmp_path / "run")]) == 0
    assert "interval_calibration" not in load_checkpoint(tmp_path / "run" / "model.pt")
    assert "interval_offsets" not in json.loads((tmp_path / "run" / "metrics.json").read_text())["ph"]


def test_fused_and_reference_runs_agree(runs):
    """The two paths differ by fp32 rounding only (tests/aam/training/test_losses.py checks loss and gradient
    to 1e-5). Measured on this run: every logged loss agrees to 1e-5 relative at every epoch and the
    predictions to 4e-5 pH; the bounds leave ~10x room for other CPUs' rounding."""
    a = pd.read_csv(runs / "reference" / "history.tsv", sep="\t").drop(columns="seconds")
    b = pd.read_csv(runs / "fused" / "history.tsv", sep="\t").drop(columns="seconds")
    pd.testing.assert_frame_equal(a, b, rtol=1e-4, atol=1e-6)
    pa = pd.read_csv(runs / "reference" / "val_predictions.tsv", sep="\t", index_col="sample_id")
    pb = pd.read_csv(runs / "fused" / "val_predictions.tsv", sep="\t", index_col="sample_id")
    np.testing.assert_allclose(pa.to_numpy(), pb.to_numpy(), atol=5e-4)  # pH units


def test_per_target_losses_are_logged(runs):
    history = pd.read_csv(runs / "reference" / "history.tsv", sep="\t")
    assert {"train_loss_ph", "val_loss_ph", "ph_coverage", "ph_interval_width"} <= set(history.columns)
    # One target without missing values: its loss is the mean over all its quantile columns, i.e. the total.
    np.testing.assert_allclose(history["val_loss_ph"], history["val_loss"], rtol=1e-5)
    np.testing.assert_allclose(history["train_loss_ph"], history["train_loss"], rtol=1e-5)


@pytest.mark.parametrize("flags, fragment", [
    (["--loss-type", "quantile", "--quantiles", "0.1,1.2"], "between 0 and 1"),
    (["--loss-type", "quantile", "--quantiles", "0,0.5"], "between 0 and 1"),
    (["--loss-type", "quantile", "--quantiles", "0.5,0.5"], "repeats"),
    (["--loss-type", "mse", "--quantiles", "0.1,0.9"], "quantile-type loss"),
    (["--loss-type", "asymmetric", "--over-penalty", "0"], "--over-penalty"),
    (["--loss-type", "asymmetric", "--under-penalty", "-1"], "--under-penalty"),
    (["--residual-regression-head"], "--regressor-hidden-dims"),
    (["--loss-config", "{ph: mse}"], "not valid JSON"),
    (["--loss-config", '{"soil": "mse"}'], "soil"),
    (["--loss-config", '{"ph": "cosine"}'], "cosine"),
    (["--loss-config", '{"0": {"type": "huber", "delta": -1}}'], "delta"),
    (["--loss-type", "cosine"], "--loss-type"),
], ids=["q-above-1", "q-zero", "q-repeated", "q-without-quantile-loss", "over-zero", "under-negative",
        "residual-without-hidden", "config-not-json", "config-unknown-column", "config-unknown-loss",
        "config-bad-param", "unknown-loss-type"])
def test_regressor_flag_errors(small_study_args, tiny_model, tmp_path, user_error, flags, fragment):
    user_error(["train", *small_study_args, "--metadata-column", "ph,temperature", "--output-dir",
                str(tmp_path / "o"), *tiny_model, *flags], fragment)
    assert not (tmp_path / "o").exists()


def test_parameters_a_loss_ignores_give_a_warning(small_study_args, tiny_model, tmp_path, caplog):
    assert main(["train", *small_study_args, "--metadata-column", "ph", "--output-dir", str(tmp_path / "o"),
                 *tiny_model,
                 "--loss-type", "mse", "--over-penalty", "2"]) == 0
    assert "--over-penalty is ignored by the mse loss" in caplog.text
