"""AAM evaluation: running a trained model, metrics, report files and the random-forest baseline.

Public API:
- `predict(model_path, table, sequences=None, metadata=None, device="auto") -> DataFrame` (inference.py).
- `load_model(path)` (inference.py): the trained model with its config, target scaler and encoder.
- `PredictConfig` (config.py): what `aam predict` is asked to do.
- `model_paths(model)` (models.py): the checkpoints a `--model` names (itself, or a cross-validation folder's
  fold models); `predict_ensemble(paths, table, ...)`: their predictions averaged.
- `regression_metrics` (metrics.py); `run_baseline` (baseline.py); `IntervalCalibration` (conformal.py): the
  conformal offsets of a quantile model's intervals, fitted on its validation samples after training.
- `forest_columns`, `permutation_importance` (forest_importance.py): the baseline forest's ASV importances;
  `relative_abundance`, `abundance_columns` (abundance.py): the abundance columns beside them and beside
  `aam explain`'s attributions.

The names below load their modules on first use, so the CLI parser reads `PredictConfig` without loading the
model code.
"""

import importlib

_HOMES = {"load_model": "inference", "predict": "inference", "regression_metrics": "metrics"}

__all__ = list(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'aam.evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(f"aam.evaluation.{_HOMES[name]}"), name)
