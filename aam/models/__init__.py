"""AAM model: ASV encoder, sample encoder, categorical embeddings, regression head.

Public API: `AAMRegressor(ModelConfig)`; building blocks in blocks.py, encoders.py, heads.py, moe.py.
"""

from aam.models.predictor import AAMRegressor

__all__ = ["AAMRegressor"]
