"""Cross-validation: AAM, the random forest and the mean predictor scored on the same grouped folds.

Public API:
- `cross_validate(RunConfig, CVConfig, resume=False) -> CVResult` (run.py); `resume_settings(output_dir)`.
- `predict_ensemble(cv_dir, table, ...)` (ensemble.py): the fold models' predictions averaged.
"""

from aam.crossval.run import CVConfig, CVResult, cross_validate, resume_settings

__all__ = ["CVConfig", "CVResult", "cross_validate", "resume_settings"]
