"""Where each target's outputs sit in the model's prediction tensor [B, T, S].

Target t owns the first width_t of its S slots: a regression target its Q quantile outputs (z-scored
units), a classification target its K class logits; the slots after them are zeros that no loss, metric
or report reads. S = max(Q, largest K), so a model without classification targets gives exactly the
regression head's [B, T, Q].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class OutputLayout:
    n_classes: tuple[int, ...]  # per target: K levels of a classification target, 0 for a regression target
    n_quantiles: int = 1  # Q outputs of each regression target

    @classmethod
    def of(cls, model_config) -> "OutputLayout":
        """The layout of a `ModelConfig` (its derived n_targets, n_quantiles and n_classes)."""
        classes = tuple(model_config.n_classes) or (0,) * model_config.n_targets
        return cls(classes, model_config.n_quantiles)

    @property
    def regression_targets(self) -> list[int]:
        return [t for t, k in enumerate(self.n_classes) if k == 0]

    @property
    def class_targets(self) -> list[int]:
        return [t for t, k in enumerate(self.n_classes) if k > 0]

    @property
    def slots(self) -> int:
        return max([self.n_quantiles, *self.n_classes])

    def assemble(self, regression: torch.Tensor | None, logits: torch.Tensor | None) -> torch.Tensor:
        """regression [B, R, Q] (None when R = 0), logits [B, sum K] (None when no target is classified)
        -> [B, T, S]; the regression outputs themselves when no target is classified."""
        if logits is None:
            return regression
        s, parts, r, offset = self.slots, [], 0, 0
        for k in self.n_classes:
            if k:
                part, offset = logits[:, offset:offset + k], offset + k
            else:
                part, r = regression[:, r], r + 1
            parts.append(F.pad(part, (0, s - part.shape[-1])))
        return torch.stack(parts, dim=1)

    def regression(self, pred: torch.Tensor) -> torch.Tensor:
        """[B, T, S] -> [B, R, Q]: the regression targets' outputs (`pred` itself without classification)."""
        if not self.class_targets:
            return pred
        return pred[:, self.regression_targets, :self.n_quantiles]

    def logits(self, pred: torch.Tensor, target: int) -> torch.Tensor:
        """[B, T, S] -> [B, K]: the class logits of classification target `target` (an index into T)."""
        return pred[:, target, :self.n_classes[target]]
