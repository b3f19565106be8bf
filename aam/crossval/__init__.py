"""Cross-validation: AAM, the random forest and the mean predictor scored on the same grouped folds.

Public API:
- `cross_validate(RunConfig, CVConfig, resume=False) -> CVResult` (run.py); `resume_settings(output_dir)`.
- `model_paths(model)` (ensemble.py): the checkpoints a `--model` names (itself, or a CV folder's fold models);
  `predict_ensemble(paths, table, ...)`: their predictions averaged.
"""

from aam.crossval.run import CVConfig, CVResult, cross_validate, resume_settings

__all__ = ["CVConfig", "CVResult", "cross_validate", "resume_settings"]
