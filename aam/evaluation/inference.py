"""Running a trained model over a loader, and `predict`: checkpoint + new table -> predictions table."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from aam.config import RunConfig
from aam.data.dataset import AAMDataset, make_loader
from aam.data.encoders import CategoryEncoder, TargetScaler
from aam.data.study import Study, load_study
from aam.errors import UserError
from aam.evaluation.conformal import IntervalCalibration
from aam.evaluation.labels import quantile_column
from aam.evaluation.metrics import metrics_table
from aam.models import AAMRegressor
from aam.models.moe import Routing
from aam.runtime.checkpoint import Checkpoint
from aam.runtime.device import autocast, resolve_device

log = logging.getLogger("aam.training")


@dataclass
class ModelOutputs:
    sample_ids: list[str]
    pred_z: torch.Tensor  # float32 [N, T, Q] in z-scored units, on CPU
    targets: torch.Tensor  # float32 [N, T] raw observed values (NaN = missing), on CPU
    categories: torch.Tensor  # int64 [N, C]
    routing: Routing | None = None  # MoE head: logits, probs [N, E] and tokens_per_expert [E] summed over batches


@torch.no_grad()
def run_model(model: AAMRegressor, loader, device: torch.device, precision: str = "auto") -> ModelOutputs:
    """Evaluation-mode forward over every batch of `loader`, concatenated in loader order (`precision`:
    the run's --precision; `aam.runtime.device.compute_dtype` for an evaluation pass)."""
    model.eval()
    ids, preds, targets, categories, routings = [], [], [], [], []
    for batch in loader:
        ids += batch.sample_ids
        with autocast(device, precision):
            pred, routing = model.forward_batch(batch.to(device, non_blocking=True), return_routing=True)
        preds.append(pred.float().cpu())
        targets.append(batch.targets)
        categories.append(batch.categories)
        if routing is not None:
            routings.append(Routing(*(t.cpu() for t in routing)))
    routing = None
    if routings:
        routing = Routing(torch.cat([r.logits for r in routings]), torch.cat([r.probs for r in routings]),
                          torch.stack([r.tokens_per_expert for r in routings]).sum(0))
    return ModelOutputs(ids, torch.cat(preds), torch.cat(targets), torch.cat(categories), routing)


def point_predictions(pred: torch.Tensor, quantiles: tuple[float, ...] = ()) -> torch.Tensor:
    """[N, T, Q] -> [N, T]: the point prediction of each target.

    Q = 1: the only output. Quantiles: the 0.5 level when present, else the median interpolated
    linearly between the two levels around 0.5 (the nearest level when 0.5 is outside them).
    """
    if pred.shape[-1] == 1:
        return pred[..., 0]
    assert len(quantiles) == pred.shape[-1]
    if 0.5 in quantiles:
        return pred[..., quantiles.index(0.5)]
    above = next((j for j, q in enumerate(quantiles) if q > 0.5), len(quantiles))
    if above == 0 or above == len(quantiles):
        return pred[..., min(above, len(quantiles) - 1)]
    lo, hi = quantiles[above - 1], quantiles[above]
    w = (0.5 - lo) / (hi - lo)
    return (1 - w) * pred[..., above - 1] + w * pred[..., above]


def inverse_scale(scaler: TargetScaler, pred_z: torch.Tensor) -> np.ndarray:
    """[N, T] or [N, T, Q] z-scores -> float64 original units (same shape)."""
    z = pred_z.double().numpy()
    if z.ndim == 3:
        return z * np.asarray(scaler.std)[:, None] + np.asarray(scaler.mean)[:, None]
    return scaler.inverse(z)


def predictions_frame(sample_ids: list[str], predicted: np.ndarray, target_columns,
                      observed: np.ndarray | None = None, quantile_values: np.ndarray | None = None,
                      quantiles: tuple[float, ...] = ()) -> pd.DataFrame:
    """sample_id, then per target `<t>`, `<t>_q<level>` per quantile, and `<t>_observed` when given."""
    columns = {"sample_id": sample_ids}
    for i, name in enumerate(target_columns):
        columns[name] = predicted[:, i]
        for j, level in enumerate(quantiles):
            columns[quantile_column(name, level)] = quantile_values[:, i, j]
        if observed is not None:
            columns[f"{name}_observed"] = observed[:, i]
    return pd.DataFrame(columns)


@dataclass
class Predictions:
    """Everything a report needs from one pass of a model, in original units."""

    sample_ids: list[str]
    point: np.ndarray  # [N, T]
    quantile_values: np.ndarray | None  # [N, T, Q] or None for a point model
    observed: np.ndarray  # [N, T], NaN = missing
    quantiles: tuple[float, ...] = ()  # the Q levels of quantile_values (sorted); () for a point model

    def frame(self, target_columns, with_observed: bool) -> pd.DataFrame:
        return predictions_frame(self.sample_ids, self.point, target_columns,
                                 self.observed if with_observed else None, self.quantile_values, self.quantiles)

    def metrics(self, target_columns) -> dict[str, dict[str, float]]:
        """{target: metrics} against the observed values (the metrics.json shape)."""
        return metrics_table(self.point, self.observed, target_columns, self.quantile_values, self.quantiles)


def to_predictions(outputs: ModelOutputs, scaler: TargetScaler, quantiles: tuple[float, ...],
                   calibration: IntervalCalibration | None = None) -> Predictions:
    """Original units; `quantiles` are the levels of the model's Q outputs (`LossConfig.quantiles`);
    `calibration` moves the quantile intervals (the point prediction stays the model's own)."""
    point = inverse_scale(scaler, point_predictions(outputs.pred_z, quantiles))
    values = inverse_scale(scaler, outputs.pred_z) if quantiles else None
    if values is not None and calibration is not None:
        values = calibration.apply(values)
    return Predictions(outputs.sample_ids, point, values, outputs.targets.double().numpy(), quantiles)


@dataclass
class LoadedModel:
    model: AAMRegressor
    config: RunConfig
    scaler: TargetScaler
    encoder: CategoryEncoder | None
    checkpoint: Checkpoint
    calibration: IntervalCalibration | None = None  # conformal interval offsets fitted after training


def load_model(path: str | Path, device: torch.device | str = "cpu") -> LoadedModel:
    """Rebuild the model exactly as trained from a checkpoint (model.pt or last.pt), with the
    run's --fused-kernels choice (`ModelConfig.use_kernels`) for an MoE head (both paths read the same
    weights)."""
    checkpoint = Checkpoint.load(path)
    try:
        config = RunConfig.from_dict(checkpoint.config)
        model = AAMRegressor(config.model)
        model.load_state_dict(checkpoint.model_state)
        scaler = TargetScaler.from_dict(checkpoint.target_scaler)
        encoder = CategoryEncoder.from_dict(checkpoint.category_encoder) if checkpoint.category_encoder else None
        calibration = (IntervalCalibration.from_dict(checkpoint.interval_calibration)
                       if checkpoint.interval_calibration is not None else None)
    except (KeyError, RuntimeError, TypeError) as exc:
        raise UserError(f"{path}: checkpoint does not match this aam's model ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0]})") from None
    return LoadedModel(model.to(device).eval(), config, scaler, encoder, checkpoint, calibration)


def predict(model_path: str | Path, table: str | Path, sequences: str | Path | None = None,
            metadata: str | Path | None = None, device: str = "auto", batch_size: int | None = None) -> pd.DataFrame:
    """Predictions in original units for every sample of `table` with reads: sample_id, then per target
    `<target>` and, for a quantile model, `<target>_q<level>` per level."""
    dev = resolve_device(device)
    loaded = load_model(model_path, dev)
    return predict_study(loaded, prediction_study(loaded, table, sequences, metadata), dev, batch_size)


def prediction_study(loaded: LoadedModel, table: str | Path, sequences: str | Path | None = None,
                     metadata: str | Path | None = None) -> Study:
    """The samples to predict, read with the categorical columns `loaded` needs (targets not required)."""
    categorical = loaded.config.data.categorical_columns
    if categorical and metadata is None:
        raise UserError(f"this model uses categorical column(s) {', '.join(categorical)}: pass --metadata with "
                        "them (values not seen in training are allowed)")
    return load_study(table, sequences, metadata, categorical_columns=categorical, require_targets=False)


def predict_study(loaded: LoadedModel, study: Study, device: torch.device, batch_size: int | None = None
                  ) -> pd.DataFrame:
    """`predict`'s table for a study already read (`prediction_study`), with the model on `device`."""
    config = loaded.config
    dataset = AAMDataset(study, max_bp=config.data.max_bp, token_limit=config.data.token_limit, train=False,
                         encoders=loaded.encoder)
    loader = make_loader(dataset, batch_size or config.train.batch_size, shuffle=False)
    predictions = to_predictions(run_model(loaded.model, loader, device), loaded.scaler, config.loss.quantiles,
                                 loaded.calibration)
    return predictions.frame(config.data.target_columns, with_observed=False)
