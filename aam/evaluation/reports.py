"""The end of a finished run: the conformal interval calibration of a quantile model (stored in model.pt),
then the report files val_predictions.tsv, metrics.json and plots, from its best model."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from aam.data.dataset import make_loader
from aam.data.prepared import PreparedData
from aam.evaluation import outputs
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
    p = to_predictions(model_outputs, loaded.scaler, quantiles)
    calibration = None
    if quantiles and loaded.config.train.conformal:
        calibrated = [t.kind == "quantile" for t in loaded.config.loss.target_losses(columns)]
        calibration = IntervalCalibration.fit(p.quantile_values, p.observed, quantiles, calibrated)
        dataclasses.replace(loaded.checkpoint, interval_calibration=calibration.to_dict()).save(out / BEST_FILE)
        p = to_predictions(model_outputs, loaded.scaler, quantiles, calibration)
    outputs.write_tsv(out / "val_predictions.tsv", p.frame(columns, with_observed=True))
    metrics = p.metrics(columns)
    if calibration is not None:
        for t, name in enumerate(columns):
            if calibration.calibrated[t]:
                metrics[name]["interval_offsets"] = calibration.interval_offsets(t, quantiles)
    plots = outputs.plot_predictions(out / "plots", p, columns)
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
