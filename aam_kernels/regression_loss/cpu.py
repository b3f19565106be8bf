"""CPU path: pure PyTorch, loss and closed-form gradient in one sweep of elementwise ops.

Returns the same four tensors as the Triton launcher (see ``forward``), so ``op.py`` treats both alike.
The gradient at r == 0 is 0 for power-1 columns, as autograd's |r|' = sign(r) gives.
"""

from __future__ import annotations

import torch

from aam_kernels.regression_loss.checks import ColumnParams


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def forward(
    pred: torch.Tensor,  # [N, K]
    target: torch.Tensor,  # [N, K] (may have zero strides)
    weight: torch.Tensor | None,  # [N]
    params: ColumnParams,
    store_elementwise: bool,
    compute_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(elementwise [N, K] or empty, grad [N, K] or empty, col_sum [K], col_den [K]) (fp32; fp64 for fp64).

    elementwise = weight * valid * loss; grad = d sum(elementwise) / d pred (unnormalized; the
    autograd function scales it); col_sum / col_den are the weighted loss and weight per column.
    """
    acc = _acc_dtype(pred.dtype)
    n, k = pred.shape
    r = target.to(acc) - pred.to(acc)  # [N, K], NaN where the target is missing
    missing = torch.isnan(target)
    r.masked_fill_(missing, 0.0)  # r = 0 gives loss 0 and gradient 0 in every branch below
    under, over, delta, power = (t.to(acc) for t in (params.under, params.over, params.delta, params.power))

    huber_cols = delta > 0
    square_cols = (power == 2) & ~huber_cols
    linear_cols = ~(huber_cols | square_cols)
    kinds = [bool(m.any()) for m in (linear_cols, square_cols, huber_cols)]

    # loss and g = dl/dr for each kind of column; mixed configurations select per column
    loss = g = None
    if kinds[0]:
        g_lin = torch.where(r > 0, under, torch.where(r < 0, -over, 0.0))  # w * sign(r)
        loss_lin = g_lin * r
        loss, g = loss_lin, g_lin
    if kinds[1]:
        w = torch.where(r >= 0, under, over)
        loss_sq = w * r * r
        g_sq = 2.0 * w * r
        loss = loss_sq if loss is None else torch.where(square_cols, loss_sq, loss)
        g = g_sq if g is None else torch.where(square_cols, g_sq, g)
    if kinds[2]:
        w = torch.where(r >= 0, under, over)
        clipped = torch.maximum(torch.minimum(r, delta), -delta)  # clamp(r, -delta, delta)
        loss_hub = w * clipped * (r - 0.5 * clipped)  # 0.5 r^2 inside, delta (|r| - delta/2) outside
        g_hub = w * clipped
        loss = loss_hub if loss is None else torch.where(huber_cols, loss_hub, loss)
        g = g_hub if g is None else torch.where(huber_cols, g_hub, g)
    if loss is None:  # K == 0
        loss = g = r

    valid = (~missing).to(acc)
    if weight is None:
        col_sum, col_den = loss.sum(0), valid.sum(0)
    else:
        row_w = weight.to(acc)
        col_sum, col_den = row_w @ loss, row_w @ valid  # [K]: one pass each, no [N, K] temporary
    elementwise = pred.new_empty(0)
    if store_elementwise:
        elementwise = (loss if weight is None else loss * row_w[:, None]).to(pred.dtype)
    grad = pred.new_empty(0)
    if compute_grad:
        g = g.neg_() if weight is None else g.mul_(-row_w[:, None])  # d/dpred = -d/dr
        grad = g.to(pred.dtype)
    return elementwise, grad, col_sum, col_den
