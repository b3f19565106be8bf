"""Training loss: the config -> per-output-column parameters -> ONE `regression_loss` call.

Every supported loss is the same formula with four numbers per output column (DESIGN.md §3.2):
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

import json
import logging
from dataclasses import dataclass

import torch
from torch import nn

from aam.config import DEFAULT_QUANTILES, LOSS_TYPES, QUANTILE_LOSSES, LossConfig
from aam.errors import UserError

log = logging.getLogger("aam")


@dataclass(frozen=True)
class ColumnLoss:
    """Parameters of the loss of one output column (one target, one quantile level)."""

    under: float = 1.0  # weight of under-prediction (target above prediction)
    over: float = 1.0  # weight of over-prediction
    delta: float = 0.0  # Huber threshold, 0 = off
    power: int = 2  # 1 = absolute error, 2 = squared error (ignored when delta > 0)


@dataclass(frozen=True)
class TargetLoss:
    """The loss of one target as the user named it; None = the global flag's value or the default."""

    kind: str
    delta: float | None = None
    over: float | None = None
    under: float | None = None

    def columns(self, quantiles: tuple[float, ...]) -> list[ColumnLoss]:
        """One ColumnLoss per output quantile (a point loss is the same for every quantile column)."""
        n = max(1, len(quantiles))
        if self.kind == "quantile":
            return [ColumnLoss(q, 1.0 - q, self.delta or 0.0, 1) for q in quantiles]
        if self.kind == "expectile":
            return [ColumnLoss(q, 1.0 - q, 0.0, 2) for q in quantiles]
        if self.kind == "asymmetric":
            return [ColumnLoss(self.under or 1.0, self.over or 1.0, 0.0, 1)] * n
        return [named_loss(self.kind, 1.0 if self.delta is None else self.delta)] * n


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
        return [c for t in self.targets for c in t.columns(self.quantiles)]


def _check_quantiles(values: tuple[float, ...]) -> tuple[float, ...]:
    if any(not 0.0 < q < 1.0 for q in values):
        raise UserError(f"--quantiles must lie strictly between 0 and 1; got {','.join(map(str, values))}")
    if len(set(values)) != len(values):
        raise UserError(f"--quantiles repeats a level: {','.join(map(str, values))}")
    return tuple(sorted(values))  # sorted for the user: the head's cumulative steps need increasing levels


def _parse_entry(key: str, value) -> TargetLoss:
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise UserError(f"--loss-config['{key}'] must be a loss name or an object with a \"type\"")
    kind = value["type"]
    if kind not in LOSS_TYPES:
        raise UserError(f"--loss-config['{key}']: unknown loss {kind!r} (choose {', '.join(LOSS_TYPES)})")
    unknown = set(value) - {"type", "delta", "over", "under"}
    if unknown:
        raise UserError(f"--loss-config['{key}']: unknown parameter(s) {', '.join(sorted(unknown))} "
                        "(known: delta, over, under)")
    params = {k: value.get(k) for k in ("delta", "over", "under")}
    for name, p in params.items():
        if p is not None and (isinstance(p, bool) or not isinstance(p, (int, float)) or not p > 0):
            raise UserError(f"--loss-config['{key}']: {name} must be a number > 0; got {p!r}")
    return TargetLoss(kind, **params)


def parse_loss_config(text: str, target_columns: tuple[str, ...]) -> dict[int, TargetLoss]:
    """JSON {target name or 0-based index: loss} -> {target index: TargetLoss}."""
    try:
        given = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"--loss-config is not valid JSON ({exc.msg} at character {exc.pos})") from None
    if not isinstance(given, dict):
        raise UserError('--loss-config must be a JSON object, e.g. {"ph": "mse", "temperature": "huber"}')
    out = {}
    for key, value in given.items():
        if key in target_columns:
            index = target_columns.index(key)
        elif key.isdigit() and int(key) < len(target_columns):
            index = int(key)
        else:
            raise UserError(f"--loss-config names '{key}', which is not a target column or index "
                            f"({', '.join(target_columns)})")
        if index in out:
            raise UserError(f"--loss-config gives target '{target_columns[index]}' twice (by name and by index)")
        out[index] = _parse_entry(key, value)
    return out


def plan_loss(config: LossConfig, target_columns: tuple[str, ...]) -> LossPlan:
    """Resolve flags + --loss-config into per-target losses and the output quantile levels.

    Raises UserError for contradictions; logs a warning for parameters a loss ignores.
    """
    default = TargetLoss(config.loss_type, config.huber_delta, config.over_penalty, config.under_penalty)
    overrides = parse_loss_config(config.loss_config, target_columns) if config.loss_config else {}
    targets = tuple(overrides.get(i, default) for i in range(len(target_columns)))
    uses_quantiles = any(t.kind in QUANTILE_LOSSES for t in targets)
    if config.quantiles and not uses_quantiles:
        raise UserError("--quantiles needs a quantile-type loss (--loss-type quantile or expectile, or one in "
                        "--loss-config)")
    quantiles = _check_quantiles(tuple(config.quantiles) or DEFAULT_QUANTILES) if uses_quantiles else ()
    for i, t in enumerate(targets):
        _warn_ignored(t, target_columns[i], from_flags=i not in overrides)
    return LossPlan(targets, quantiles)


def _warn_ignored(t: TargetLoss, target: str, from_flags: bool) -> None:
    names = {"delta": "--huber-delta", "over": "--over-penalty", "under": "--under-penalty"} if from_flags else \
        {"delta": "delta", "over": "over", "under": "under"}
    used = {"huber": {"delta"}, "quantile": {"delta"}, "asymmetric": {"over", "under"}}.get(t.kind, set())
    for param in ("delta", "over", "under"):
        if getattr(t, param) is not None and param not in used:
            log.warning("warning: %s is ignored by the %s loss of target '%s'", names[param], t.kind, target)


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


def build_loss(config: LossConfig, target_columns: tuple[str, ...], fused: bool = False) -> RegressionLoss:
    plan = plan_loss(config, target_columns)
    return RegressionLoss(plan.columns(), plan.n_quantiles, fused)
