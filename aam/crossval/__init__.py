"""Cross-validation: AAM, the random forest and the mean predictor scored on the same grouped folds.

Public API:
- `cross_validate(RunConfig, CVConfig, resume=False) -> CVResult` (run.py); `resume_settings(output_dir)`.
What a `--model` names (a checkpoint or this folder's fold models) and their averaged predictions are in
`aam.evaluation.models`, which `aam predict` and `aam explain` use.
"""

from aam.crossval.run import CVConfig, CVResult, cross_validate, resume_settings

__all__ = ["CVConfig", "CVResult", "cross_validate", "resume_settings"]
