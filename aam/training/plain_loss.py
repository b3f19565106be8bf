"""The regression loss family in plain PyTorch autograd: the training loss without --fused-kernels.

Residual r = target - pred (positive = under-prediction); per output column k:
    w(r) = under_k if r >= 0 else over_k
    h(a) = a (power 1) | a^2 (power 2) | 0.5 a^2 if a <= delta_k else delta_k (a - 0.5 delta_k)  (delta_k > 0)
    loss = w(r) * h(|r|)
A NaN target is missing: no loss, no gradient, not counted. Row weights multiply each row.
mean = sum(weight * valid * loss) / sum(weight * valid), 0 when nothing is valid.

It computes in the prediction's dtype (the trainer passes fp32) and takes the parameters as tensors
already on the device, with no argument checks: `RegressionLoss` builds them once. The operations
run in the order of `aam_kernels`' reference, so in fp32 both round alike.
"""

from __future__ import annotations

import torch


def plain_regression_loss(pred: torch.Tensor, target: torch.Tensor, *, under: torch.Tensor, over: torch.Tensor,
                          delta: torch.Tensor, power: torch.Tensor, weight: torch.Tensor | None = None,
                          reduction: str = "mean", return_column_means: bool = False):
    """pred [N, K], target [N, K] (NaN = missing), under/over/delta/power [K], weight [N] or None.

    reduction "mean" -> scalar; "none" -> the weighted loss per element [N, K] (0 where missing).
    With `return_column_means`: (loss, per-column weighted means [K] fp32, detached)."""
    assert reduction in ("mean", "none")
    dtype = pred.dtype
    under_k, over_k, delta_k, power_k = (t.to(dtype) for t in (under, over, delta, power))
    y = target.to(dtype)
    valid = ~torch.isnan(y)  # [N, K]
    r = torch.where(valid, y - pred, torch.zeros_like(pred))
    a = r.abs()
    w = torch.where(r >= 0, under_k, over_k)
    h_power = torch.where(power_k == 2, a * a, a)
    h_huber = torch.where(a <= delta_k, 0.5 * a * a, delta_k * (a - 0.5 * delta_k))
    h = torch.where(delta_k > 0, h_huber, h_power)

    mass = valid.to(dtype)  # [N, K] weight of each element in the mean
    if weight is not None:
        mass = mass * weight.to(dtype)[:, None]
    elem = w * h * mass
    col_den = mass.sum(0)  # [K]
    if reduction == "none":
        loss = elem
    else:
        den = col_den.sum()
        loss = torch.where(den > 0, elem.sum() / den.clamp_min(1e-30), elem.sum() * 0)
    if not return_column_means:
        return loss
    col_sum = elem.detach().sum(0)
    col_means = torch.where(col_den > 0, col_sum / col_den.clamp_min(1e-30), torch.zeros_like(col_sum))
    return loss, col_means.float()
