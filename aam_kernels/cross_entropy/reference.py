"""The spec: cross-entropy as plain PyTorch autograd, obviously correct and slow.

With log p = log_softmax(logits), class weights w (1 by default), smoothing eps over C classes and
row weights r (1 by default), a row with target y != ignore_index has
    loss = r * ((1 - eps) * w_y * (-log p_y) + eps / C * sum_c w_c * (-log p_c))
and an ignored row has loss 0. mean = sum(loss) / sum(r * w_y over non-ignored rows) (NaN when that is
0, as PyTorch gives when every row is ignored). This is torch.nn.functional.cross_entropy's definition.
"""

from __future__ import annotations

import torch

from aam_kernels.cross_entropy.checks import check_inputs


def cross_entropy_reference(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    label_smoothing: float = 0.0,
    ignore_index: int = -100,
    reduction: str = "mean",
    row_weight: torch.Tensor | None = None,
    upcast: bool = True,
) -> torch.Tensor:
    """Same contract as ``aam_kernels.cross_entropy``; computes in fp32 (fp64 stays fp64) when ``upcast``."""
    check_inputs(logits, target, weight, row_weight, label_smoothing, ignore_index, reduction)
    n, c = logits.shape
    dtype = logits.dtype
    if upcast:
        dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    logp = torch.log_softmax(logits.to(dtype), dim=1)  # [N, C]
    valid = target != ignore_index  # [N]
    y = torch.where(valid, target, torch.zeros_like(target))
    w = torch.ones(c, dtype=dtype, device=logits.device) if weight is None else weight.to(dtype)
    w_y = w[y]  # [N]
    nll = -logp.gather(1, y[:, None]).squeeze(1) * w_y  # [N]
    smooth = -(logp * w).sum(1)  # [N]
    r = torch.ones(n, dtype=dtype, device=logits.device) if row_weight is None else row_weight.to(dtype)
    per_row = r * ((1.0 - label_smoothing) * nll + (label_smoothing / c) * smooth)
    per_row = torch.where(valid, per_row, torch.zeros_like(per_row))
    if reduction == "none":
        return per_row.to(logits.dtype)
    if reduction == "sum":
        return per_row.sum().to(logits.dtype)
    mass = torch.where(valid, r * w_y, torch.zeros_like(w_y))
    return (per_row.sum() / mass.sum()).to(logits.dtype)
