"""AAM training: the run builder, the training loop, losses and the trainer.

Public API:
- `train(RunConfig, resume=False, overwrite=False) -> TrainResult` (run.py): a whole training run.
- `resume_config(output_dir)` (run.py): the configuration of a run, to continue it.
- `build_loss`, `ColumnLoss` (losses.py).

Prediction, metrics, reports and the baseline are in `aam.evaluation`.
"""

from aam.training.losses import ColumnLoss, build_loss
from aam.training.run import TrainResult, resume_config, train

__all__ = ["ColumnLoss", "TrainResult", "build_loss", "resume_config", "train"]
