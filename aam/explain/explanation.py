"""`explain_study`: attributions of every sample of a study by one model, or averaged over several,
by cohort Shapley values (`aam.explain.cohort`) or integrated gradients (`aam.explain.attribution`).

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
from aam.explain.attribution import attribute_batch, output_names, output_values
from aam.explain.cohort import cohort_shapley
from aam.explain.config import ExplainConfig
from aam.evaluation.abundance import relative_abundance
from aam.evaluation.inference import LoadedModel

METHODS = ("cohort", "integrated-gradients")


@dataclass
class Explanation:
    sample_ids: list[str]
    outputs: list[str]  # K output names: targets, then `<target>_width` (calibrated) for quantile models
    prediction: np.ndarray  # float64 [N, K] in target units (mean over models)
    # float64 [N, K]: integrated gradients: the outputs at the reference input (mean over models); cohort:
    # the mean prediction over the samples plus the attributions of the sample's categorical values
    baseline: np.ndarray
    attributions: list[sp.csr_matrix]  # K x float64 [N, F] over the study's features (mean over models)
    n_models: int = 1

    @property
    def gap(self) -> np.ndarray:
        """[N, K]: baseline + sum of attributions - prediction (integrated gradients: the quadrature error;
        cohort: rounding only)."""
        sums = np.stack([np.asarray(a.sum(axis=1)).ravel() for a in self.attributions], axis=1)
        return self.baseline + sums - self.prediction


def check_compatible(models: list[LoadedModel]) -> None:
    """Averaging needs the same outputs and categorical inputs in every model."""
    first = models[0].config
    for other in models[1:]:
        c = other.config
        for what, a, b in (("target columns", first.data.target_columns, c.data.target_columns),
                           ("quantiles", first.loss.quantiles, c.loss.quantiles),
                           ("classification levels", _levels(models[0]), _levels(other)),
                           ("categorical columns", first.data.categorical_columns, c.data.categorical_columns)):
            if tuple(a) != tuple(b):
                raise UserError(f"models to average differ in their {what}: {list(a)} vs {list(b)}")


def _levels(model: LoadedModel) -> tuple:
    """The model's classification targets and their levels, comparable across models."""
    return tuple((c, tuple(v)) for c, v in model.classes.levels.items()) if model.classes is not None else ()


def explain_study(models: list[LoadedModel], study: Study, device: torch.device,
                  config: ExplainConfig | None = None) -> Explanation:
    """Attributions of every sample of `study` by `config.method`, for the mean of `models`' outputs
    (each model's widths include its own conformal calibration).

    Integrated gradients: each model's attributions sum to its own prediction, so their mean sums to the
    mean prediction. Cohort: the Shapley values of the mean prediction, whose players are the ASVs any
    of the models saw (the largest `token_limit`'s slots, which hold the others'). `config`: None = the
    defaults."""
    assert models
    config = config or ExplainConfig()
    if config.method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {config.method!r}")
    check_compatible(models)
    run = models[0].config
    names = output_names(run.data.target_columns, run.loss.quantiles, models[0].classes)
    n, f, k = study.n_samples, len(study.feature_ids), len(names)
    prediction, baseline = np.zeros((n, k)), np.zeros((n, k))
    attributions = [sp.csr_matrix((n, f)) for _ in range(k)]
    total_batches = sum(-(-n // (config.batch_size or m.config.train.batch_size)) for m in models)
    bar = tqdm(total=total_batches, desc="explain", unit="batch", file=sys.stderr, disable=not config.progress)
    players, players_limit = None, 0
    for loaded in models:
        if config.method == "integrated-gradients":
            p, b, a = _explain_one(loaded, study, device, config.batch_size, config.steps, config.reference, bar)
            baseline += b / len(models)
            attributions = [acc + part / len(models) for acc, part in zip(attributions, a)]
        else:
            p, seen = _predict_one(loaded, study, device, config.batch_size, bar)
            if loaded.config.data.token_limit > players_limit:
                players, players_limit = seen, loaded.config.data.token_limit
        prediction += p / len(models)
    bar.close()
    if config.method == "cohort":
        result = cohort_shapley(prediction, relative_abundance(study.counts), players, study.categories,
                                config.similarity_ratio, config.permutations, config.seed, config.progress)
        attributions = result.attributions
        baseline = result.mean[None, :] + result.categorical.sum(axis=1)
    return Explanation(list(study.sample_ids), names, prediction, baseline, attributions, len(models))


def _batches(loaded: LoadedModel, study: Study, device: torch.device, batch_size: int | None):
    """(first sample's row, batch on `device`, the batch's dataset items) in study order."""
    config = loaded.config
    dataset = AAMDataset(study, max_bp=config.data.max_bp, token_limit=config.data.token_limit, train=False,
                         encoders=loaded.encoder)
    start = 0
    for batch in make_loader(dataset, batch_size or config.train.batch_size, shuffle=False):
        yield start, batch.to(device), [dataset[start + i] for i in range(len(batch))]
        start += len(batch)


@torch.no_grad()
def _predict_one(loaded: LoadedModel, study: Study, device: torch.device, batch_size: int | None,
                 bar) -> tuple[np.ndarray, list[np.ndarray]]:
    """float64 [N, K] outputs in target units, and per sample the feature columns of its slots."""
    config = loaded.config
    model = loaded.model.to(device).eval()
    preds, players = [], []
    for _, batch, items in _batches(loaded, study, device, batch_size):
        pred_z = model.forward_batch(batch)
        preds.append(output_values(pred_z, loaded.scaler, config.loss.quantiles, loaded.calibration, loaded.classes)
                     .double().cpu().numpy())
        players += [item.features for item in items]
        bar.update(1)
    return np.concatenate(preds), players


def _explain_one(loaded: LoadedModel, study: Study, device: torch.device, batch_size: int | None, steps: int,
                 reference: str, bar) -> tuple[np.ndarray, np.ndarray, list[sp.csr_matrix]]:
    config = loaded.config
    model = loaded.model.to(device).eval()
    preds, bases, rows, cols, values = [], [], [], [], []
    for start, batch, items in _batches(loaded, study, device, batch_size):
        result = attribute_batch(model, batch, loaded.scaler, config.loss.quantiles, steps, reference,
                                 loaded.calibration, loaded.classes)
        mask = batch.asv_mask.cpu().numpy()  # [B, A]
        slot_row, slot = np.nonzero(mask)
        # Feature column of each real slot: the dataset keeps each sample's ASVs as a prefix of its slots.
        rows.append(start + slot_row)
        cols.append(np.concatenate([item.features for item in items]))
        values.append(result.attribution.cpu().numpy()[slot_row, slot])  # [n_slots, K]
        preds.append(result.prediction.cpu().numpy())
        bases.append(result.baseline.cpu().numpy())
        bar.update(1)
    row, col, value = np.concatenate(rows), np.concatenate(cols), np.concatenate(values)
    shape = (study.n_samples, len(study.feature_ids))
    per_output = [sp.csr_matrix((value[:, j], (row, col)), shape=shape) for j in range(value.shape[1])]
    return np.concatenate(preds), np.concatenate(bases), per_output
