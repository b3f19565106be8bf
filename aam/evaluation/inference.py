"""Running a trained model over a loader, and `predict`: checkpoint + new table -> predictions table."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from aam.config import RunConfig
from aam.data.dataset import AAMDataset, make_loader
from aam.data.encoders import CategoryEncoder, TargetScaler
from aam.data.study import Study, load_study
from aam.errors import UserError
from aam.evaluation.classes import ClassLevels
from aam.evaluation.classification import classification_metrics
from aam.evaluation.conformal import IntervalCalibration
from aam.evaluation.labels import probability_column, quantile_column
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
                      quantiles: tuple[float, ...] = (), probabilities: dict[int, np.ndarray] | None = None,
                      levels: dict[int, list[str]] | None = None) -> pd.DataFrame:
    """sample_id, then per target `<t>`, `<t>_q<level>` per quantile, and `<t>_observed` when given.

    A classification target t (a key of `probabilities` [N, K] and `levels`): `<t>` is the predicted level
    (the most probable), then `<t>_p_<level>` per level, and the observed level (empty when missing)."""
    probabilities, levels = probabilities or {}, levels or {}
    columns = {"sample_id": sample_ids}
    for i, name in enumerate(target_columns):
        if i in probabilities:
            names = np.asarray(levels[i], dtype=object)
            columns[name] = names[probabilities[i].argmax(axis=1)]
            for k, level in enumerate(levels[i]):
                columns[probability_column(name, level)] = probabilities[i][:, k]
            if observed is not None:
                known = ~np.isnan(observed[:, i])
                columns[f"{name}_observed"] = np.where(known, names[np.where(known, observed[:, i], 0).astype(int)], "")
            continue
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
    point: np.ndarray  # [N, T]; a classification target: the index of the most probable level
    quantile_values: np.ndarray | None  # [N, T, Q] or None for a point model (NaN for classification targets)
    observed: np.ndarray  # [N, T], NaN = missing; a classification target: the level's index
    quantiles: tuple[float, ...] = ()  # the Q levels of quantile_values (sorted); () for a point model
    probabilities: dict[int, np.ndarray] = field(default_factory=dict)  # classification target -> [N, K]
    levels: dict[int, list[str]] = field(default_factory=dict)  # classification target -> its K levels

    def frame(self, target_columns, with_observed: bool) -> pd.DataFrame:
        return predictions_frame(self.sample_ids, self.point, target_columns,
                                 self.observed if with_observed else None, self.quantile_values, self.quantiles,
                                 self.probabilities, self.levels)

    def metrics(self, target_columns) -> dict[str, dict[str, float]]:
        """{target: metrics} against the observed values (the metrics.json shape)."""
        regression = [i for i in range(len(target_columns)) if i not in self.probabilities]
        values = self.quantile_values[:, regression] if self.quantile_values is not None else None
        table = metrics_table(self.point[:, regression], self.observed[:, regression],
                              [target_columns[i] for i in regression], values, self.quantiles)
        for i, probabilities in self.probabilities.items():
            observed = np.where(np.isnan(self.observed[:, i]), -1, self.observed[:, i]).astype(np.int64)
            table[target_columns[i]] = classification_metrics(probabilities, observed, self.levels[i])
        return {name: table[name] for name in target_columns}


def to_predictions(outputs: ModelOutputs, scaler: TargetScaler, quantiles: tuple[float, ...],
                   calibration: IntervalCalibration | None = None, classes: ClassLevels | None = None) -> Predictions:
    """Original units; `quantiles` are the levels of the model's Q outputs (`LossConfig.quantiles`);
    `calibration` moves the quantile intervals (the point prediction stays the model's own); `classes`: the
    classification targets' levels and temperatures, whose probabilities replace their outputs."""
    pred = outputs.pred_z[..., :max(1, len(quantiles))]  # [N, T, Q]; a classification target's first logits
    point = inverse_scale(scaler, point_predictions(pred, quantiles))
    values = inverse_scale(scaler, pred) if quantiles else None
    if values is not None and calibration is not None:
        values = calibration.apply(values)
    probabilities, levels = {}, {}
    for t in classes.positions if classes is not None else ():
        probabilities[t] = classes.probabilities(outputs.pred_z, t)
        levels[t] = classes.levels[classes.target_columns[t]]
        point[:, t] = probabilities[t].argmax(axis=1)
        if values is not None:
            values[:, t] = np.nan
    return Predictions(outputs.sample_ids, point, values, outputs.targets.double().numpy(), quantiles,
                       probabilities, levels)


@dataclass
class LoadedModel:
    model: AAMRegressor
    config: RunConfig
    scaler: TargetScaler
    encoder: CategoryEncoder | None
    checkpoint: Checkpoint
    calibration: IntervalCalibration | None = None  # conformal interval offsets fitted after training
    classes: ClassLevels | None = None  # classification targets: training levels and fitted temperatures


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
        classes = ClassLevels.of(config.data.target_columns, checkpoint.target_levels, checkpoint.class_temperatures)
    except (KeyError, RuntimeError, TypeError) as exc:
        raise UserError(f"{path}: checkpoint does not match this aam's model ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0]})") from None
    return LoadedModel(model.to(device).eval(), config, scaler, encoder, checkpoint, calibration, classes)


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
                                 loaded.calibration, loaded.classes)
    return predictions.frame(config.data.target_columns, with_observed=False)
