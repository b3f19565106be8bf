"""Training loss: the config -> per-output-column parameters -> ONE `regression_loss` call.

Every supported loss is the same formula with four numbers per output column:
    w(r) = under if r >= 0 else over,   r = target - pred
    h    = |r| (power 1) | r^2 (power 2) | huber_delta(|r|) (delta > 0)
    loss = w * h
| loss                 | under | over  | delta | power |
| mse                  | 1     | 1     | 0     | 2     |  (not halved)
| mae                  | 1     | 1     | 0     | 1     |
| huber(d)             | 1     | 1     | d     | -     |
| quantile(tau)        | tau   | 1-tau | 0 (d: smooth pinball) | 1 |
| asymmetric(po, pu)   | pu    | po    | 0     | 1     |
| expectile(tau)       | tau   | 1-tau | 0     | 2     |
Predictions [B, T, Q] are flattened to [B, T*Q] (target-major) and each target repeated per
quantile, so a mixed per-target configuration is still one launch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import nn

from aam.config import LossConfig, TargetLoss, resolve_loss
from aam.errors import UserError
from aam.training.plain_loss import plain_regression_loss

log = logging.getLogger("aam")


@dataclass(frozen=True)
class ColumnLoss:
    """Parameters of the loss of one output column (one target, one quantile level)."""

    under: float = 1.0  # weight of under-prediction (target above prediction)
    over: float = 1.0  # weight of over-prediction
    delta: float = 0.0  # Huber threshold, 0 = off
    power: int = 2  # 1 = absolute error, 2 = squared error (ignored when delta > 0)


def column_losses(target: TargetLoss, quantiles: tuple[float, ...]) -> list[ColumnLoss]:
    """One ColumnLoss per output quantile (a point loss is the same for every quantile column)."""
    n = max(1, len(quantiles))
    if target.kind == "quantile":
        return [ColumnLoss(q, 1.0 - q, target.delta or 0.0, 1) for q in quantiles]
    if target.kind == "expectile":
        return [ColumnLoss(q, 1.0 - q, 0.0, 2) for q in quantiles]
    if target.kind == "asymmetric":
        return [ColumnLoss(target.under or 1.0, target.over or 1.0, 0.0, 1)] * n
    return [named_loss(target.kind, 1.0 if target.delta is None else target.delta)] * n


def named_loss(loss_type: str, huber_delta: float = 1.0) -> ColumnLoss:
    """The column parameters of a point loss by name."""
    if loss_type == "mse":
        return ColumnLoss(1.0, 1.0, 0.0, 2)
    if loss_type == "mae":
        return ColumnLoss(1.0, 1.0, 0.0, 1)
    if loss_type == "huber":
        return ColumnLoss(1.0, 1.0, float(huber_delta), 2)
    raise UserError(f"unknown loss type {loss_type!r} (choose mse, mae or huber)")


@dataclass(frozen=True)
class LossPlan:
    targets: tuple[TargetLoss, ...]  # one per target column
    quantiles: tuple[float, ...]  # output quantile levels, () = one point output per target

    @property
    def n_quantiles(self) -> int:
        return max(1, len(self.quantiles))

    def columns(self) -> list[ColumnLoss]:
        return [c for t in self.targets for c in column_losses(t, self.quantiles)]


def plan_loss(config: LossConfig, target_columns: tuple[str, ...]) -> LossPlan:
    """Per-target losses and the output quantile levels of `config` (resolved by `aam.config.resolve_loss`,
    which a `RunConfig` has already done; a bare LossConfig is resolved here the same way).

    Raises UserError for contradictions; logs a warning for parameters a loss ignores.
    """
    config = resolve_loss(config, target_columns)
    targets = config.target_losses(target_columns)
    for name, t in zip(target_columns, targets):
        _warn_ignored(t, name, from_flags=name not in (config.loss_config or {}))
    return LossPlan(targets, config.quantiles)


def _warn_ignored(t: TargetLoss, target: str, from_flags: bool) -> None:
    names = {"delta": "--huber-delta", "over": "--over-penalty", "under": "--under-penalty"} if from_flags else \
        {"delta": "delta", "over": "over", "under": "under"}
    used = {"huber": {"delta"}, "quantile": {"delta"}, "asymmetric": {"over", "under"}}.get(t.kind, set())
    for param in ("delta", "over", "under"):
        if getattr(t, param) is not None and param not in used:
            log.warning("warning: %s is ignored by the %s loss of target '%s'", names[param], t.kind, target)


def _regression_loss_op(use_kernels: bool):
    if not use_kernels:
        return plain_regression_loss
    try:
        from aam_kernels import regression_loss
    except ImportError as exc:
        raise UserError(f"--fused-kernels: aam_kernels.regression_loss is not available ({exc})") from None
    return regression_loss


class RegressionLoss(nn.Module):
    """Weighted mean loss over the valid (non-NaN) elements, plus the per-column means for logging."""

    def __init__(self, columns: list[ColumnLoss], *, n_quantiles: int = 1, use_kernels: bool = False):
        super().__init__()
        self.n_quantiles = n_quantiles
        self.use_kernels = use_kernels  # aam_kernels.regression_loss instead of `plain_regression_loss`
        self.op = _regression_loss_op(use_kernels)
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

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None):
        """The pieces of `forward`'s mean, which data-parallel ranks sum across processes: pred [B, T, Q],
        target [B, T], weight [B] or None -> (weighted loss per element [B, T*Q], 0 where missing;
        each element's weight in the mean [B, T*Q], 0 where missing)."""
        b, t, q = pred.shape
        flat_target = target.to(pred.dtype).repeat_interleave(q, dim=1)
        elements = self.op(pred.reshape(b, t * q), flat_target, under=self.under, over=self.over, delta=self.delta,
                           power=self.power, weight=weight, reduction="none")
        mass = (~torch.isnan(flat_target)).float()
        return elements, mass if weight is None else mass * weight.float()[:, None]

