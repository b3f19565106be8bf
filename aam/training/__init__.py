"""AAM training: the run builder, the training loop, losses and the trainer.

Public API:
- `build_run(RunConfig, device, split=None, resume_from=None, data=None) -> Run` (build.py): data, model,
  loss, loaders and trainer of one run, for `train`, cross-validation folds (`data` prepared from the one
  study they share) and benchmarks.
- `fit(run, output_dir)` (loop.py): the epoch loop with checkpoints.
- `train(RunConfig, resume=False, overwrite=False) -> TrainResult` (run.py): a whole training run;
  `train_into(folder, run)` (run.py): start files, `fit` and reports of a built run in a claimed folder
  (`aam train` and each cross-validation fold).
- `resume_config(output_dir)` (resume.py): the configuration of a run, to continue it.
- `ColumnLoss` (losses.py): one output column's loss parameters.

Prediction, metrics, reports and the baseline are in `aam.evaluation`.
"""

from aam.training.build import Run, build_run
from aam.training.loop import fit
from aam.training.losses import ColumnLoss
from aam.training.resume import resume_config
from aam.training.run import TrainResult, train, train_into

__all__ = ["ColumnLoss", "Run", "TrainResult", "build_run", "fit", "resume_config", "train", "train_into"]
