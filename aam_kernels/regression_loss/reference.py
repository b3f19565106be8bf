"""The spec: the loss family as plain PyTorch autograd, obviously correct and slow.

Residual r = target - pred (positive = under-prediction). Per column k:
    w(r) = under_k if r >= 0 else over_k
    h(a) = a (power 1) | a^2 (power 2) | 0.5 a^2 if a <= delta_k else delta_k (a - 0.5 delta_k)  (delta_k > 0)
    loss = w(r) * h(|r|)
A NaN target is missing: no loss, no gradient, not counted. Row weights multiply each row.
mean = sum(weight * valid * loss) / sum(weight * valid), 0 when nothing is valid.
"""

from __future__ import annotations

import torch

from aam_kernels.regression_loss.checks import ParamLike, check_inputs, column_params


def regression_loss_reference(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    under: ParamLike,
    over: ParamLike,
    delta: ParamLike = None,
    power: ParamLike = None,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    return_column_means: bool = False,
    upcast: bool = True,
):
    """Same contract as ``aam_kernels.regression_loss``; computes in fp32 (fp64 stays fp64) when ``upcast``."""
    pred, target, weight = check_inputs(pred, target, weight, reduction)
    n, k = pred.shape
    p = column_params(under, over, delta, power, k, pred.device)
    dtype = pred.dtype
    if upcast:
        dtype = torch.float64 if pred.dtype == torch.float64 else torch.float32
    yhat, y = pred.to(dtype), target.to(dtype)
    under_k, over_k, delta_k, power_k = (t.to(dtype) for t in (p.under, p.over, p.delta, p.power))

    valid = ~torch.isnan(y)  # [N, K]
    r = torch.where(valid, y - yhat, torch.zeros_like(yhat))
    a = r.abs()
    w = torch.where(r >= 0, under_k, over_k)
    h_power = torch.where(power_k == 2, a * a, a)
    h_huber = torch.where(a <= delta_k, 0.5 * a * a, delta_k * (a - 0.5 * delta_k))
    h = torch.where(delta_k > 0, h_huber, h_power)

    row_w = torch.ones(n, dtype=dtype, device=pred.device) if weight is None else weight.to(dtype)
    mass = valid.to(dtype) * row_w[:, None]  # [N, K] weight of each element in the mean
    elem = w * h * mass
    col_sum, col_den = elem.sum(0), mass.sum(0)
    col_means = torch.where(col_den > 0, col_sum / col_den.clamp_min(1e-30), torch.zeros_like(col_sum)).detach()

    if reduction == "none":
        loss = elem.to(pred.dtype)
    elif reduction == "sum":
        loss = elem.sum().to(pred.dtype)
    else:
        den = col_den.sum()
        loss = torch.where(den > 0, elem.sum() / den.clamp_min(1e-30), elem.sum() * 0).to(pred.dtype)
    return (loss, col_means.float()) if return_column_means else loss
