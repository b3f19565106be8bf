"""`OutputLoss`: the training loss over every target's outputs, regression and classification alike.

Regression targets: `RegressionLoss` on their [B, R, Q] outputs (z-scored). Classification target t:
the cross-entropy of its K logits against the level index y (NaN = missing), with class weights w and
label smoothing eps, per row: (1 - eps) w_y (-log p_y) + (eps / K) sum_c w_c (-log p_c), times the row
weight r. The loss is one weighted mean over every valid (sample, output column) pair,
    sum(element losses) / sum(element weights),
where a classification target adds one column whose element weight is r * w_y (PyTorch's weighted mean
for cross-entropy) and a regression column its `RegressionLoss` weight. A model without classification
targets is exactly `RegressionLoss`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aam.errors import UserError
from aam.models.layout import OutputLayout
from aam.training.losses import RegressionLoss

IGNORED = -100  # the class index of a row whose level is missing


def _cross_entropy_op(use_kernels: bool):
    if not use_kernels:
        return _plain_cross_entropy
    try:
        from aam_kernels import cross_entropy
    except ImportError as exc:
        raise UserError(f"--fused-kernels: aam_kernels.cross_entropy is not available ({exc})") from None
    return cross_entropy


def _plain_cross_entropy(logits, target, *, weight, label_smoothing, ignore_index, reduction, row_weight):
    loss = F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index, reduction=reduction,
                           label_smoothing=label_smoothing)
    return loss if row_weight is None else loss * row_weight


class OutputLoss(nn.Module):
    """Callable as `RegressionLoss` is: (pred [B, T, S], target [B, T] (z-scored; a classification target's
    level index), row weight [B] or None) -> (scalar loss, column means [n_columns] fp32, detached)."""

    def __init__(self, regression: RegressionLoss, layout: OutputLayout,
                 class_weights: list[torch.Tensor | None] | None = None, label_smoothing: float = 0.0,
                 use_kernels: bool = False):
        super().__init__()
        self.regression, self.layout, self.label_smoothing = regression, layout, label_smoothing
        self.cross_entropy = _cross_entropy_op(use_kernels)
        classes = layout.class_targets
        weights = class_weights or [None] * len(classes)
        for i, (t, w) in enumerate(zip(classes, weights)):
            self.register_buffer(f"class_weight_{i}", torch.ones(layout.n_classes[t]) if w is None else w.float(),
                                 persistent=False)
        self.weighted = [w is not None for w in weights]
        # target index of each loss column: Q per regression target, then one per classification target
        self.column_targets = [t for t in layout.regression_targets for _ in range(layout.n_quantiles)] + classes

    @property
    def n_columns(self) -> int:
        return len(self.column_targets)

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        if not self.layout.class_targets:
            return self.regression(pred, target, weight)
        elements, mass = self.elementwise(pred, target, weight)
        den = mass.sum(0)  # [n_columns]
        total = den.sum()
        loss = torch.where(total > 0, elements.sum() / total.clamp_min(1e-30), elements.sum() * 0)
        sums = elements.detach().sum(0)
        means = torch.where(den > 0, sums / den.clamp_min(1e-30), torch.zeros_like(sums))
        return loss, means.float()

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        """(weighted loss per element [B, n_columns], 0 where missing; each element's weight in the mean
        [B, n_columns], 0 where missing): what data-parallel ranks sum across processes."""
        if not self.layout.class_targets:
            return self.regression.elementwise(pred, target, weight)
        parts, masses = [], []
        if self.layout.regression_targets:
            regression = self.layout.regression_targets
            e, m = self.regression.elementwise(self.layout.regression(pred), target[:, regression], weight)
            parts.append(e)
            masses.append(m)
        for i, t in enumerate(self.layout.class_targets):
            y = target[:, t]
            valid = ~torch.isnan(y)
            codes = torch.where(valid, y, torch.full_like(y, IGNORED)).long()
            class_weight = getattr(self, f"class_weight_{i}").to(pred.dtype)
            rows = self.cross_entropy(self.layout.logits(pred, t), codes,
                                      weight=class_weight if self.weighted[i] else None,
                                      label_smoothing=self.label_smoothing, ignore_index=IGNORED, reduction="none",
                                      row_weight=weight)
            mass = valid.to(pred.dtype) * class_weight[codes.clamp_min(0)]
            if weight is not None:
                mass = mass * weight.to(pred.dtype)
            parts.append(rows[:, None].to(pred.dtype))
            masses.append(mass[:, None])
        return torch.cat(parts, dim=1), torch.cat(masses, dim=1)


def class_weight_tables(mode: str, layout: OutputLayout, train_targets) -> list[torch.Tensor | None]:
    """Per classification target: None ("none"), or ("auto") the balanced weights n / (k * n_level) over the
    training samples' observed levels (k = levels observed; a level without training samples weighs 1)."""
    tables: list[torch.Tensor | None] = []
    for t in layout.class_targets:
        if mode != "auto":
            tables.append(None)
            continue
        y = torch.as_tensor(train_targets[:, t])
        y = y[~torch.isnan(y)].long()
        counts = torch.bincount(y, minlength=layout.n_classes[t]).double()
        seen = counts > 0
        table = torch.ones(layout.n_classes[t], dtype=torch.float64)
        table[seen] = counts[seen].sum() / (seen.sum() * counts[seen])
        tables.append(table.float())
    return tables
