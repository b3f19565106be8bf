"""`explain_study`: attributions of every sample of a study by one model, or averaged over several.

Attributions are stored per output as a sparse [samples, features] matrix over the study's features:
an ASV absent from a sample (or beyond the model's `token_limit` most abundant ASVs of it) has no
slot, so its attribution is exactly 0.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from aam.data.dataset import AAMDataset, make_loader
from aam.data.study import Study
from aam.errors import UserError
from aam.explain.attribution import attribute_batch, output_names
from aam.evaluation.inference import LoadedModel


@dataclass
class Explanation:
    sample_ids: list[str]
    outputs: list[str]  # K output names: targets, then `<target>_width` (calibrated) for quantile models
    prediction: np.ndarray  # float64 [N, K] in target units (mean over models)
    baseline: np.ndarray  # float64 [N, K]: the outputs at the reference input (mean over models)
    attributions: list[sp.csr_matrix]  # K x float64 [N, F] over the study's features (mean over models)
    n_models: int = 1

    @property
    def gap(self) -> np.ndarray:
        """[N, K]: baseline + sum of attributions - prediction (the quadrature error)."""
        sums = np.stack([np.asarray(a.sum(axis=1)).ravel() for a in self.attributions], axis=1)
        return self.baseline + sums - self.prediction


def check_compatible(models: list[LoadedModel]) -> None:
    """Averaging needs the same outputs and categorical inputs in every model."""
    first = models[0].config
    for other in models[1:]:
        c = other.config
        for what, a, b in (("target columns", first.data.target_columns, c.data.target_columns),
                           ("quantiles", first.loss.quantiles, c.loss.quantiles),
                           ("categorical columns", first.data.categorical_columns, c.data.categorical_columns)):
            if tuple(a) != tuple(b):
                raise UserError(f"models to average differ in their {what}: {list(a)} vs {list(b)}")


def explain_study(models: list[LoadedModel], study: Study, device: torch.device, batch_size: int | None = None,
                  steps: int = 64, reference: str = "empty", progress: bool = True) -> Explanation:
    """Integrated-gradients attributions (see `aam.explain.attribution`) of every sample of `study`,
    averaged over `models` (each model's attributions sum to its own prediction, so their mean sums
    to the mean prediction; each model's widths include its own conformal calibration)."""
    assert models
    check_compatible(models)
    config = models[0].config
    names = output_names(config.data.target_columns, config.loss.quantiles)
    n, f, k = study.n_samples, len(study.feature_ids), len(names)
    prediction, baseline = np.zeros((n, k)), np.zeros((n, k))
    attributions = [sp.csr_matrix((n, f)) for _ in range(k)]
    total_batches = sum(-(-n // (batch_size or m.config.train.batch_size)) for m in models)
    bar = tqdm(total=total_batches, desc="explain", unit="batch", file=sys.stderr, disable=not progress)
    for loaded in models:
        p, b, a = _explain_one(loaded, study, device, batch_size, steps, reference, bar)
        prediction += p / len(models)
        baseline += b / len(models)
        attributions = [acc + part / len(models) for acc, part in zip(attributions, a)]
    bar.close()
    return Explanation(list(study.sample_ids), names, prediction, baseline, attributions, len(models))


def _explain_one(loaded: LoadedModel, study: Study, device: torch.device, batch_size: int | None, steps: int,
                 reference: str, bar) -> tuple[np.ndarray, np.ndarray, list[sp.csr_matrix]]:
    config = loaded.config
    dataset = AAMDataset(study, max_bp=config.data.max_bp, token_limit=config.data.token_limit, train=False,
                         encoders=loaded.encoder)
    model = loaded.model.to(device).eval()
    preds, bases, rows, cols, values = [], [], [], [], []
    start = 0
    for batch in make_loader(dataset, batch_size or config.train.batch_size, shuffle=False):
        result = attribute_batch(model, batch.to(device), loaded.scaler, config.loss.quantiles, steps, reference,
                                 loaded.calibration)
        mask = batch.asv_mask.numpy()  # [B, A]
        slot_row, slot = np.nonzero(mask)
        # Feature column of each real slot: the dataset keeps each sample's ASVs as a prefix of its slots.
        items = [dataset[start + i] for i in range(len(batch))]
        rows.append(start + slot_row)
        cols.append(np.concatenate([item.features for item in items]))
        values.append(result.attribution.cpu().numpy()[slot_row, slot])  # [n_slots, K]
        preds.append(result.prediction.cpu().numpy())
        bases.append(result.baseline.cpu().numpy())
        start += len(batch)
        bar.update(1)
    row, col, value = np.concatenate(rows), np.concatenate(cols), np.concatenate(values)
    shape = (study.n_samples, len(study.feature_ids))
    per_output = [sp.csr_matrix((value[:, j], (row, col)), shape=shape) for j in range(value.shape[1])]
    return np.concatenate(preds), np.concatenate(bases), per_output
