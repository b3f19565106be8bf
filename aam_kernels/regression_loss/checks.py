"""Argument checks and parameter broadcasting shared by the op and its reference.

Caller mistakes raise ValueError/TypeError naming the argument and what was given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence, Union

import torch

ParamLike = Union[float, int, Sequence[float], torch.Tensor, None]
REDUCTIONS = ("mean", "sum", "none")


@dataclass(frozen=True)
class ColumnParams:
    """Per-column loss parameters, each fp32 [K] on the prediction's device."""

    under: torch.Tensor  # weight where r = target - pred >= 0 (under-prediction)
    over: torch.Tensor  # weight where r < 0 (over-prediction)
    delta: torch.Tensor  # Huber threshold; 0 = off
    power: torch.Tensor  # 1.0 or 2.0 (ignored where delta > 0)


def check_float_tensor(name: str, x: object) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")
    return x


def _values(name: str, value: ParamLike, k: int, default: float) -> list[float] | torch.Tensor:
    """A Python list of length K, or (for tensor input) a float tensor [K]; shapes checked."""
    if value is None:
        value = default
    if isinstance(value, torch.Tensor):
        if value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"{name} must hold real numbers, got dtype {value.dtype}")
        if value.dim() > 1 or value.numel() not in (1, k):
            raise ValueError(f"{name} must be a scalar or have length {k} (one per column), got shape {tuple(value.shape)}")
        return value.detach().reshape(-1).float().expand(k)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        values = [float(value)]
    else:
        try:
            values = [float(v) for v in value]  # type: ignore[union-attr]
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a number, a sequence of numbers or a tensor, got {value!r}") from None
    if len(values) not in (1, k):
        raise ValueError(f"{name} must have length 1 or {k} (one per output column), got {len(values)}")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{name} must be finite, got {values}")
    return values * k if len(values) == 1 else values


def _check_values(name: str, values: list[float] | torch.Tensor, rule: str) -> None:
    """``rule`` is "nonnegative" or "power". Python input is checked on the host; CPU tensors
    eagerly. Accelerator tensors are trusted: reading them would sync the device every step, and
    torch.compile could not trace the read."""
    if isinstance(values, torch.Tensor):
        if torch.compiler.is_compiling() or values.device.type != "cpu":
            return
        values = values.tolist()  # K numbers: checking them in Python is cheaper than four tensor ops
    if any(not math.isfinite(v) or ((v < 0) if rule == "nonnegative" else (v not in (1.0, 2.0))) for v in values):
        need = ">= 0" if rule == "nonnegative" else "1 or 2"
        raise ValueError(f"{name} must be {need} for every column, got {values}")


# Python-number parameters -> tensors on a device: a training loop passes the same few every step,
# and building them (plus a host-to-device copy on GPU) would cost more than the op on small batches.
_PARAM_CACHE: dict[tuple, ColumnParams] = {}


# [K] fp32 parameter tensors already on the device (what aam's RegressionLoss passes every step), keyed by
# identity and version counter: an in-place change bumps the version, so it is checked again. An entry
# holds its tensors, so their ids cannot be reused by other tensors while it is cached.
_TENSOR_CACHE: dict[tuple, ColumnParams] = {}


def _cached_tensor_params(values: tuple, k: int, device) -> ColumnParams | None:
    if not all(
        isinstance(v, torch.Tensor) and v.dtype == torch.float32 and v.dim() == 1 and v.shape[0] == k
        and v.device == device and v.is_contiguous()
        for v in values
    ):  # fmt: skip
        return None
    key = tuple((id(v), v._version) for v in values)
    cached = _TENSOR_CACHE.get(key)
    if cached is None:
        cached = _column_params(*values, k, device)
        if len(_TENSOR_CACHE) >= 64:
            _TENSOR_CACHE.clear()
        _TENSOR_CACHE[key] = cached
    return cached


def column_params(under: ParamLike, over: ParamLike, delta: ParamLike, power: ParamLike, k: int, device) -> ColumnParams:
    """Broadcast scalars / sequences / tensors of length 1 or K to fp32 [K] parameters on ``device``."""
    if not torch.compiler.is_compiling():
        cached = _cached_tensor_params((under, over, delta, power), k, torch.device(device))
        if cached is not None:
            return cached
    return _column_params(under, over, delta, power, k, device)


def _column_params(under: ParamLike, over: ParamLike, delta: ParamLike, power: ParamLike, k: int, device) -> ColumnParams:
    raw = {
        "under": _values("under", under, k, 1.0),
        "over": _values("over", over, k, 1.0),
        "delta": _values("delta", delta, k, 0.0),
        "power": _values("power", power, k, 1.0),
    }
    for name in ("under", "over", "delta"):
        _check_values(name, raw[name], "nonnegative")
    _check_values("power", raw["power"], "power")
    if all(isinstance(v, list) for v in raw.values()):
        key = (tuple(tuple(v) for v in raw.values()), str(device))
        cached = None if torch.compiler.is_compiling() else _PARAM_CACHE.get(key)
        if cached is not None:
            return cached
        # one host-to-device copy for all four rows
        table = torch.tensor(list(raw.values()), dtype=torch.float32, device=device).reshape(4, k)
        params = ColumnParams(*table.unbind(0))
        if not torch.compiler.is_compiling():
            if len(_PARAM_CACHE) >= 256:
                _PARAM_CACHE.clear()
            _PARAM_CACHE[key] = params
        return params
    rows = [
        (torch.tensor(v, dtype=torch.float32) if isinstance(v, list) else v).to(device).contiguous()
        for v in raw.values()
    ]
    return ColumnParams(*rows)


def check_pair(pred: object, other: object, name: str = "target") -> None:
    """Both floating tensors on one device; errors name the caller's argument."""
    check_float_tensor("pred", pred)
    check_float_tensor(name, other)
    if other.device != pred.device:
        raise ValueError(f"{name} is on {other.device} but pred is on {pred.device}")


def check_inputs(pred, target, weight, reduction: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Validate pred [N, K], target broadcastable to it, weight [N]; return target expanded to [N, K]."""
    check_pair(pred, target)
    if pred.dim() != 2:
        raise ValueError(f"pred must be 2-D [N, K], got shape {tuple(pred.shape)}")
    try:
        target = target.expand_as(pred)
    except RuntimeError:
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match (or broadcast to) pred shape {tuple(pred.shape)}"
        ) from None
    if weight is not None:
        check_pair(pred, weight, "weight")
        if weight.shape != pred.shape[:1]:
            raise ValueError(f"weight must have shape [N] = [{pred.shape[0]}], got {tuple(weight.shape)}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}; got {reduction!r}")
    return pred, target, weight


def check_quantiles(quantiles) -> list[float]:
    """Quantile levels: 1-D, strictly inside (0, 1), strictly increasing (so no duplicates)."""
    if isinstance(quantiles, torch.Tensor):
        if quantiles.dim() != 1:
            raise ValueError(f"quantiles must be 1-D, got shape {tuple(quantiles.shape)}")
        quantiles = quantiles.tolist()
    try:
        q = [float(v) for v in quantiles]
    except (TypeError, ValueError):
        raise TypeError(f"quantiles must be a sequence of numbers or a 1-D tensor, got {quantiles!r}") from None
    if not q:
        raise ValueError("quantiles must not be empty")
    if not all(0.0 < v < 1.0 for v in q):
        raise ValueError(f"quantiles must lie strictly between 0 and 1, got {q}")
    if any(b <= a for a, b in zip(q, q[1:])):
        raise ValueError(f"quantiles must be sorted and unique, got {q}")
    return q
