"""AAM training: losses, trainer, checkpoints, metrics, prediction.

Public API:
- `train(RunConfig, resume=False, overwrite=False) -> TrainResult` (run.py): a whole training run.
- `resume_config(output_dir)` (run.py): the configuration of a run, to continue it.
- `predict(model_path, table, sequences=None, metadata=None, device="auto") -> DataFrame` (inference.py).
- `load_model(path)` (inference.py): the trained model with its config, target scaler and encoder.
- `build_loss`, `ColumnLoss` (losses.py); `regression_metrics` (metrics.py); `run_baseline` (baseline.py).
"""

from aam.training.inference import load_model, predict
from aam.training.losses import ColumnLoss, build_loss
from aam.training.metrics import regression_metrics
from aam.training.run import TrainResult, resume_config, train

__all__ = ["ColumnLoss", "TrainResult", "build_loss", "load_model", "predict", "regression_metrics",
           "resume_config", "train"]
