"""The end of a finished run: the conformal interval calibration of a quantile model and the temperatures of
a classifier (stored in model.pt), then the report files val_predictions.tsv, metrics.json and plots, from
its best model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch

from aam.data.dataset import make_loader
from aam.data.prepared import PreparedData
from aam.evaluation import outputs
from aam.evaluation.class_plots import plot_classifier
from aam.evaluation.classes import ClassLevels
from aam.evaluation.classification import fit_temperature
from aam.evaluation.conformal import IntervalCalibration
from aam.evaluation.inference import load_model, run_model, to_predictions
from aam.evaluation.metrics import MOE_KEY
from aam.evaluation.moe_report import moe_metrics, report_column
from aam.runtime.checkpoint import BEST_FILE


def write_reports(out: Path, data: PreparedData, history: list[dict], device: torch.device):
    """val_predictions.tsv, metrics.json and plots from the best model (model.pt as saved); first, for a
    quantile model with `train.conformal`, the interval offsets fitted on the validation samples are stored
    in model.pt, and the reports show the calibrated intervals."""
    loaded = load_model(out / BEST_FILE, device)
    columns = loaded.config.data.target_columns
    loader = make_loader(data.val_set, loaded.config.train.batch_size, shuffle=False)
    model_outputs = run_model(loaded.model, loader, device)
    quantiles = loaded.config.loss.quantiles
    classes = loaded.classes
    p = to_predictions(model_outputs, loaded.scaler, quantiles, classes=classes)
    calibration, stored = None, {}
    if quantiles and loaded.config.train.conformal:
        calibrated = [t.kind == "quantile" and name not in (classes.levels if classes else {})
                      for name, t in zip(columns, loaded.config.loss.target_losses(columns))]
        calibration = IntervalCalibration.fit(p.quantile_values, p.observed, quantiles, calibrated)
        stored["interval_calibration"] = calibration.to_dict()
    if classes is not None and loaded.config.train.calibration:
        classes = classes.with_temperatures(fit_temperatures(classes, model_outputs))
        stored["class_temperatures"] = classes.temperatures
    if stored:
        dataclasses.replace(loaded.checkpoint, **stored).save(out / BEST_FILE)
        p = to_predictions(model_outputs, loaded.scaler, quantiles, calibration, classes)
    outputs.write_tsv(out / "val_predictions.tsv", p.frame(columns, with_observed=True))
    metrics = p.metrics(columns)
    if calibration is not None:
        for t, name in enumerate(columns):
            if calibration.calibrated[t]:
                metrics[name]["interval_offsets"] = calibration.interval_offsets(t, quantiles)
    for name, temperature in (classes.temperatures if classes is not None else {}).items():
        metrics[name]["temperature"] = temperature
    plots = outputs.plot_predictions(out / "plots", p, columns)
    for t in p.probabilities:
        plots += plot_classifier(out / "plots", columns[t], p.probabilities[t], observed_levels(p, t), p.levels[t])
    if p.quantiles:
        plots.append(outputs.plot_calibration(out / "plots", metrics, p.quantiles))
    plots.append(outputs.plot_losses(out / "plots", history))
    if model_outputs.routing is not None:
        column = report_column(loaded.config.model, loaded.config.data.categorical_columns)
        codes, levels = None, ()
        if column is not None:
            codes = model_outputs.categories[:, data.encoder.columns.index(column)]
            levels = data.encoder.levels[column]
        metrics[MOE_KEY] = moe_metrics(model_outputs.routing, loaded.config.model.moe_top_k, codes, levels)
        plots.append(outputs.plot_moe_utilization(out / "plots", metrics[MOE_KEY], column))
    outputs.write_json(out / "metrics.json", metrics)
    return metrics, plots


def observed_levels(p, target: int):
    """int64 [N]: the observed level index of classification target `target`, -1 where missing."""
    observed = p.observed[:, target]
    return np.where(np.isnan(observed), -1, observed).astype(np.int64)


def fit_temperatures(classes: ClassLevels, model_outputs) -> dict[str, float]:
    """The temperature of each classification target minimizing the log loss of the validation samples."""
    targets = model_outputs.targets.double().numpy()
    observed = np.where(np.isnan(targets), -1, targets).astype(np.int64)  # a classification target's level index
    return {classes.target_columns[t]: fit_temperature(classes.logits(model_outputs.pred_z, t), observed[:, t])
            for t in classes.positions}
