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
from aam.data.study import load_study
from aam.errors import UserError
from aam.models import AAMRegressor
from aam.training.checkpoint import load_checkpoint
from aam.training.device import autocast, resolve_device

log = logging.getLogger("aam.training")


@dataclass
class ModelOutputs:
    sample_ids: list[str]
    pred_z: torch.Tensor  # float32 [N, T, Q] in z-scored units, on CPU
    targets: torch.Tensor  # float32 [N, T] raw observed values (NaN = missing), on CPU
    categories: torch.Tensor  # int64 [N, C]


@torch.no_grad()
def run_model(model: AAMRegressor, loader, device: torch.device) -> ModelOutputs:
    """Evaluation-mode forward over every batch of `loader`, concatenated in loader order."""
    model.eval()
    ids, preds, targets, categories = [], [], [], []
    for batch in loader:
        ids += batch.sample_ids
        with autocast(device):
            pred = model.forward_batch(batch.to(device, non_blocking=True))
        preds.append(pred.float().cpu())
        targets.append(batch.targets)
        categories.append(batch.categories)
    return ModelOutputs(ids, torch.cat(preds), torch.cat(targets), torch.cat(categories))


def point_predictions(pred: torch.Tensor) -> torch.Tensor:
    """[N, T, Q] -> [N, T]: the prediction of each target (Q = 1: the only column)."""
    assert pred.shape[-1] == 1, "quantile point predictions are not implemented yet"
    return pred[..., 0]


def inverse_scale(scaler: TargetScaler, pred_z: torch.Tensor) -> np.ndarray:
    """[N, T] z-scores -> float64 [N, T] original units."""
    return scaler.inverse(pred_z.double().numpy())


def predictions_frame(sample_ids: list[str], predicted: np.ndarray, target_columns,
                      observed: np.ndarray | None = None) -> pd.DataFrame:
    """sample_id, then per target `<t>` (and `<t>_observed` when given)."""
    columns = {"sample_id": sample_ids}
    for i, name in enumerate(target_columns):
        columns[name] = predicted[:, i]
        if observed is not None:
            columns[f"{name}_observed"] = observed[:, i]
    return pd.DataFrame(columns)


@dataclass
class LoadedModel:
    model: AAMRegressor
    config: RunConfig
    scaler: TargetScaler
    encoder: CategoryEncoder | None
    checkpoint: dict


def load_model(path: str | Path, device: torch.device | str = "cpu") -> LoadedModel:
    """Rebuild the model exactly as trained from a checkpoint (model.pt or last.pt)."""
    payload = load_checkpoint(path)
    try:
        config = RunConfig.from_dict(payload["config"])
        model = AAMRegressor(config.model)
        model.load_state_dict(payload["model_state"])
        scaler = TargetScaler.from_dict(payload["target_scaler"])
        encoder = CategoryEncoder.from_dict(payload["category_encoder"]) if payload["category_encoder"] else None
    except (KeyError, RuntimeError, TypeError) as exc:
        raise UserError(f"{path}: checkpoint does not match this aam's model ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0]})") from None
    return LoadedModel(model.to(device).eval(), config, scaler, encoder, payload)


def predict(model_path: str | Path, table: str | Path, sequences: str | Path | None = None,
            metadata: str | Path | None = None, device: str = "auto", batch_size: int | None = None) -> pd.DataFrame:
    """Predictions in original units for every sample of `table` with reads: sample_id, `<target>` ..."""
    dev = resolve_device(device)
    loaded = load_model(model_path, dev)
    config = loaded.config
    categorical = config.data.categorical_columns
    if categorical and metadata is None:
        raise UserError(f"this model uses categorical column(s) {', '.join(categorical)}: pass --metadata with "
                        "them (values not seen in training are allowed)")
    study = load_study(table, sequences, metadata, categorical_columns=categorical, require_targets=False)
    dataset = AAMDataset(study, max_bp=config.data.max_bp, token_limit=config.data.token_limit, train=False,
                         encoders=loaded.encoder)
    loader = make_loader(dataset, batch_size or config.train.batch_size, shuffle=False)
    outputs = run_model(loaded.model, loader, dev)
    predicted = inverse_scale(loaded.scaler, point_predictions(outputs.pred_z))
    return predictions_frame(outputs.sample_ids, predicted, config.data.target_columns)
