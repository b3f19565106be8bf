"""CPU path: pure PyTorch, loss and closed-form gradient in one sweep of elementwise ops.

Returns the same three tensors as the Triton launcher (see ``forward``), so ``op.py`` treats both alike.
Written for few passes over memory: broadcasting a per-column [K] vector through ``torch.where``,
or multiplying by a bool mask, is slow on CPU, so the side-dependent weight is built
arithmetically from sign(r).
The gradient at r == 0 is 0 for power-1 columns, as autograd's |r|' = sign(r) gives.
"""

from __future__ import annotations

import torch

from aam_kernels.regression_loss.checks import ColumnParams


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _kind_terms(kind: str, r, sign, under, over, delta):
    """(loss, d loss / d pred) for one kind of column, all [N, K]; r = target - pred, sign = sign(r)."""
    if kind == "linear":
        # w sign(r) = sign * (a + sign * b), a = (under + over) / 2, b = (under - over) / 2:
        # under for r > 0, -over for r < 0, 0 at r == 0, with no bool->float copies
        d_dr = (sign * ((under - over) * 0.5)).add_((under + over) * 0.5).mul_(sign)
        return d_dr * r, d_dr.neg_()
    # w = under where r >= 0, over where r < 0; sign is -1 exactly where r < 0
    w = (sign.le(-1) * (over - under)).add_(under)
    if kind == "square":
        wr = w.mul_(r)
        return wr * r, wr.mul_(-2.0)
    clipped = torch.maximum(torch.minimum(r, delta), -delta)  # clamp(r, -delta, delta)
    wc = w.mul_(clipped)
    return wc * (r - 0.5 * clipped), wc.neg_()  # 0.5 r^2 inside, delta (|r| - delta/2) outside


def forward(
    pred: torch.Tensor,  # [N, K]
    target: torch.Tensor,  # [N, K] (may have zero strides)
    weight: torch.Tensor | None,  # [N]
    params: ColumnParams,
    reduction: str,
    compute_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(out, grad [N, K] or empty, stats [3 K + 1]) in pred's dtype, pred's dtype, fp32 (fp64 for fp64).

    out: the loss, reduced ("mean", "sum": a 0-dim tensor) or elementwise ("none": [N, K] of
    weight * valid * loss). grad = d sum(elementwise) / d pred (unnormalized; the autograd function
    scales it). stats = [col_sum, col_den, col_mean (K each), scale]: per column the weighted loss,
    the weight and their ratio (0 where nothing is valid); scale = d out / d sum(elementwise).
    """
    acc = _acc_dtype(pred.dtype)
    n, k = pred.shape
    r = target.to(acc) - pred.to(acc)
    missing = torch.isnan(target)
    # On CPU asking whether anything is missing costs no device sync and saves passes when nothing is.
    any_missing = pred.device.type != "cpu" or bool(missing.any())
    if any_missing:
        r.masked_fill_(missing, 0.0)  # r = 0 gives loss 0 and gradient 0 in every branch
    sign = torch.sign(r)
    under, over, delta, power = (t.to(acc) for t in (params.under, params.over, params.delta, params.power))

    huber_cols = delta > 0
    square_cols = (power == 2) & ~huber_cols
    masks = {"linear": ~(huber_cols | square_cols), "square": square_cols, "huber": huber_cols}
    loss = grad = None
    for kind, cols in masks.items():
        if k == 0 or not bool(cols.any()):
            continue
        kind_loss, kind_grad = _kind_terms(kind, r, sign, under, over, delta)
        if loss is None:  # the common case: one kind for every column
            loss, grad = kind_loss, kind_grad
        else:
            loss, grad = torch.where(cols, kind_loss, loss), torch.where(cols, kind_grad, grad)
    if loss is None:  # K == 0
        loss, grad = r.clone(), r.clone()

    store_elementwise = reduction == "none"
    if weight is None:
        col_sum = loss.sum(0)
        col_den = n - missing.sum(0, dtype=acc) if any_missing else torch.full((k,), float(n), dtype=acc)
    else:
        row_w = weight.to(acc)
        col_sum = row_w @ loss  # [K], no [N, K] temporary
        col_den = row_w @ (~missing).to(acc) if any_missing else row_w.sum().expand(k).clone()
        if store_elementwise:
            loss.mul_(row_w[:, None])
        if compute_grad:
            grad.mul_(row_w[:, None])
    grad = grad.to(pred.dtype) if compute_grad else pred.new_empty(0)
    # the same sums as the Triton kernel's last program
    total = col_sum.sum()
    den_raw = col_den.sum()
    den = den_raw.clamp_min(1e-30)  # nothing valid: loss 0, not 0/0, and gradient scale 0
    if reduction == "mean":
        scale = torch.where(den_raw > 0, 1.0 / den, 0.0)
    else:
        scale = torch.ones((), dtype=acc, device=pred.device)
    stats = torch.cat([col_sum, col_den, col_sum / col_den.clamp_min(1e-30), scale.reshape(1)])
    if store_elementwise:
        out = loss.to(pred.dtype)
    else:
        out = (total / den if reduction == "mean" else total).to(pred.dtype)
    return out, grad, stats
