"""Training loss: the config -> per-output-column parameters -> ONE `regression_loss` call.

Every supported loss is the same formula with four numbers per output column (DESIGN.md §3.2):
    w(r) = under if r >= 0 else over,   r = target - pred
    h    = |r| (power 1) | r^2 (power 2) | huber_delta(|r|) (delta > 0)
    loss = w * h
| loss      | under | over | delta | power |
| mse       | 1     | 1    | 0     | 2     |  (not halved)
| mae       | 1     | 1    | 0     | 1     |
| huber(d)  | 1     | 1    | d     | 2 (ignored) |
Predictions [B, T, Q] are flattened to [B, T*Q] (target-major) and each target repeated per
quantile, so a mixed configuration is still one launch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from aam.config import LossConfig
from aam.errors import UserError


@dataclass(frozen=True)
class ColumnLoss:
    """Parameters of the loss of one output column (one target, one quantile level)."""

    under: float = 1.0  # weight of under-prediction (target above prediction)
    over: float = 1.0  # weight of over-prediction
    delta: float = 0.0  # Huber threshold, 0 = off
    power: int = 2  # 1 = absolute error, 2 = squared error (ignored when delta > 0)


def named_loss(loss_type: str, huber_delta: float = 1.0) -> ColumnLoss:
    """The column parameters of a point loss by name."""
    if loss_type == "mse":
        return ColumnLoss(1.0, 1.0, 0.0, 2)
    if loss_type == "mae":
        return ColumnLoss(1.0, 1.0, 0.0, 1)
    if loss_type == "huber":
        return ColumnLoss(1.0, 1.0, float(huber_delta), 2)
    raise UserError(f"unknown loss type {loss_type!r} (choose mse, mae or huber)")


def column_losses(config: LossConfig, target_columns: tuple[str, ...], n_quantiles: int = 1) -> list[ColumnLoss]:
    """One `ColumnLoss` per output column, target-major: [t0q0, t0q1, ..., t1q0, ...]."""
    per_target = [named_loss(config.loss_type, config.huber_delta) for _ in target_columns]
    return [loss for loss in per_target for _ in range(n_quantiles)]


def _regression_loss_op(fused: bool):
    if not fused:
        from aam_kernels.regression_loss.reference import regression_loss_reference

        return regression_loss_reference
    try:
        from aam_kernels import regression_loss
    except ImportError as exc:
        raise UserError(f"--fused-kernels: aam_kernels.regression_loss is not available ({exc})") from None
    return regression_loss


class RegressionLoss(nn.Module):
    """Weighted mean loss over the valid (non-NaN) elements, plus the per-column means for logging."""

    def __init__(self, columns: list[ColumnLoss], n_quantiles: int = 1, fused: bool = False):
        super().__init__()
        self.n_quantiles = n_quantiles
        self.fused = fused
        self.op = _regression_loss_op(fused)
        for name in ("under", "over", "delta", "power"):
            values = torch.tensor([float(getattr(c, name)) for c in columns], dtype=torch.float32)
            self.register_buffer(name, values, persistent=False)  # [T*Q]

    def forward(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        """pred [B, T, Q], target [B, T] (z-scored, NaN = missing), weight [B] or None
        -> (scalar loss, column means [T*Q] fp32, detached)."""
        b, t, q = pred.shape
        assert q == self.n_quantiles and t * q == self.under.numel()
        flat_target = target.to(pred.dtype).repeat_interleave(q, dim=1)  # [B, T*Q]: target t under each quantile
        return self.op(pred.reshape(b, t * q), flat_target, under=self.under, over=self.over, delta=self.delta,
                       power=self.power, weight=weight, reduction="mean", return_column_means=True)


def build_loss(config: LossConfig, target_columns: tuple[str, ...], n_quantiles: int = 1,
               fused: bool = False) -> RegressionLoss:
    return RegressionLoss(column_losses(config, target_columns, n_quantiles), n_quantiles, fused)
