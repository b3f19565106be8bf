"""The classification targets of a model: each one's training levels (the order of its logits) and the
temperature fitted to calibrate its probabilities, as stored in model.pt."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from aam.data.encoders import CategoryEncoder
from aam.evaluation.classification import softmax_probabilities
from aam.models.layout import OutputLayout


@dataclass(frozen=True)
class ClassLevels:
    target_columns: tuple[str, ...]  # every target of the model, in output order
    levels: dict[str, list[str]]  # classification target -> its training levels; logit k is levels[k]
    temperatures: dict[str, float] = field(default_factory=dict)  # fitted temperatures; a target absent = 1

    @classmethod
    def of(cls, target_columns, levels: CategoryEncoder | dict | None,
           temperatures: dict[str, float] | None = None) -> "ClassLevels | None":
        """From the training levels (a CategoryEncoder or its dict); None without classification targets."""
        if isinstance(levels, dict):
            levels = CategoryEncoder.from_dict(levels)
        if levels is None or not levels.columns:
            return None
        return cls(tuple(target_columns), {c: list(levels.levels[c]) for c in levels.columns}, dict(temperatures or {}))

    @property
    def positions(self) -> list[int]:
        """Target indices of the classification targets."""
        return [t for t, c in enumerate(self.target_columns) if c in self.levels]

    def layout(self, n_quantiles: int) -> OutputLayout:
        return OutputLayout(tuple(len(self.levels.get(c, ())) for c in self.target_columns), n_quantiles)

    def logits(self, pred: torch.Tensor, target: int) -> np.ndarray:
        """float64 [N, K]: the logits of classification target `target` in the model's output [N, T, S]."""
        k = len(self.levels[self.target_columns[target]])
        return pred[:, target, :k].double().numpy()

    def probabilities(self, pred: torch.Tensor, target: int) -> np.ndarray:
        """float64 [N, K]: softmax(logits / T) of classification target `target`, rows summing to 1."""
        return softmax_probabilities(self.logits(pred, target), self.temperatures.get(self.target_columns[target], 1.0))

    def with_temperatures(self, temperatures: dict[str, float]) -> "ClassLevels":
        return ClassLevels(self.target_columns, self.levels, dict(temperatures))
