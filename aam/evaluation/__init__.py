"""AAM evaluation: running a trained model, metrics, report files and the random-forest baseline.

Public API:
- `predict(model_path, table, sequences=None, metadata=None, device="auto") -> DataFrame` (inference.py).
- `load_model(path)` (inference.py): the trained model with its config, target scaler and encoder.
- `regression_metrics` (metrics.py); `run_baseline` (baseline.py); `IntervalCalibration` (conformal.py): the
  conformal offsets of a quantile model's intervals, fitted on its validation samples after training.
- `forest_columns`, `permutation_importance` (forest_importance.py): the baseline forest's ASV importances;
  `relative_abundance`, `abundance_columns` (abundance.py): the abundance columns beside them and beside
  `aam explain`'s attributions.
"""

from aam.evaluation.inference import load_model, predict
from aam.evaluation.metrics import regression_metrics

__all__ = ["load_model", "predict", "regression_metrics"]
