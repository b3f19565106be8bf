"""CPU path: pure PyTorch, the loss and its closed-form gradient from one softmax.

Returns the same three tensors as the Triton launcher (see ``forward``), so ``op.py`` treats both alike.
With p = softmax(x), s = sum_c exp(x_c - m), lse = m + log s, and per row coef = row weight (0 if
ignored), the loss and its gradient are
    loss    = coef * (keep * w_y * (lse - x_y) + spread * (W * lse - x . w))
    d loss / d x_j = coef * ((keep * w_y + spread * W) * p_j - spread * w_j - keep * w_y * [j == y])
with keep = 1 - eps, spread = eps / C, W = sum_c w_c. Written for few passes over the [N, C] logits:
a row max, exp(x - m), one matrix-vector product for s (and one for x . w with smoothing), and one
scaling of exp(x - m) into the gradient, with the target column fixed by a scatter of N values.
Row-wise reductions of a short last dimension are slow on CPU, so the row max of C <= 4 columns is a
chain of elementwise maxima over column views and the row sums are matrix-vector products.
"""

from __future__ import annotations

import torch

COLUMN_MAX_UP_TO = 4  # widest C whose row max is taken column by column


def _row_max(x: torch.Tensor) -> torch.Tensor:
    """[N] max of each row of x [N, C]."""
    c = x.shape[1]
    if c == 1 or c > COLUMN_MAX_UP_TO:
        return x.amax(1)
    m = torch.maximum(x[:, 0], x[:, 1])
    for j in range(2, c):
        torch.maximum(m, x[:, j], out=m)
    return m


def forward(
    logits: torch.Tensor,  # [N, C]
    target: torch.Tensor,  # [N] int64
    weight: torch.Tensor | None,  # [C] class weights
    row_weight: torch.Tensor | None,  # [N]
    label_smoothing: float,
    ignore_index: int,
    reduction: str,
    compute_grad: bool,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(out, grad [N, C] or empty, stats [3]) in logits' dtype, logits' dtype, fp32 (fp64 for fp64).

    out: the loss, reduced ("mean", "sum": a 0-dim tensor) or per row ("none": [N], 0 on ignored rows).
    grad = d sum(per-row loss) / d logits (unnormalized; the autograd function scales it).
    stats = [total, den, scale]: the summed loss, sum(row weight * w_y over non-ignored rows), and
    scale = d out / d total (1 for sum and none; 1 / den for mean, 0 when den is 0).
    """
    acc = torch.float64 if logits.dtype == torch.float64 else torch.float32
    n, c = logits.shape
    dev = logits.device
    x = logits.to(acc)
    keep, spread = 1.0 - label_smoothing, label_smoothing / c
    ignored = target == ignore_index  # [N]
    # On CPU asking whether any row is ignored costs no device sync and saves passes when none is.
    any_ignored = dev.type != "cpu" or bool(ignored.any())
    y = target.masked_fill(ignored, 0) if any_ignored else target  # [N] a class index on every row
    coef = None if row_weight is None else row_weight.to(acc)  # [N]; None: 1 on every row
    if any_ignored:
        coef = (~ignored).to(acc) if coef is None else coef.masked_fill(ignored, 0.0)
    w = None if weight is None else weight.to(acc)  # [C]; None: 1 for every class
    w_y = None if w is None else w[y]  # [N]
    ones_c = torch.ones(c, dtype=acc, device=dev)

    m = _row_max(x)  # [N]
    e = torch.sub(x, m[:, None]).exp_()  # [N, C] exp(x - m), in (0, 1]
    s = e @ ones_c  # [N]
    lse = s.log().add_(m)  # [N]
    per_row = lse - x.gather(1, y[:, None]).squeeze(1)  # [N] -log p_y
    if w_y is not None:
        per_row.mul_(w_y)
    if keep != 1.0:
        per_row.mul_(keep)
    w_sum = float(c) if w is None else w.sum()
    if spread:
        per_row.add_((lse * w_sum).sub_(x @ (ones_c if w is None else w)), alpha=spread)
    if coef is not None:
        per_row.mul_(coef)
    if any_ignored:
        per_row.masked_fill_(ignored, 0.0)  # 0 even where an ignored row's logits are not finite

    if w_y is None:
        mass = coef  # [N] or None (every row weighs 1)
    else:
        mass = w_y if coef is None else w_y * coef
    total = per_row.sum()
    den = torch.tensor(float(n), dtype=acc, device=dev) if mass is None else mass.sum()
    if reduction == "mean":
        scale = torch.where(den != 0, 1.0 / den, 0.0)  # every row ignored: loss NaN, gradient 0
        out = (total / den).to(logits.dtype)
    else:
        scale = torch.ones((), dtype=acc, device=dev)
        out = (per_row if reduction == "none" else total).to(logits.dtype)
    stats = torch.stack([total, den, scale])
    if not compute_grad:
        return out, logits.new_empty(0), stats

    # multiplier of p_j on each row: coef * (keep * w_y + spread * W)
    a = keep if w_y is None else w_y * keep
    if spread:
        a = a + spread * w_sum
    if coef is not None:
        a = coef * a
    grad = e.mul_((s.reciprocal_() if isinstance(a, float) and a == 1.0 else a / s)[:, None])
    if spread:
        w_spread = ones_c * spread if w is None else w * spread  # [C]
        if coef is None:
            grad.sub_(w_spread)
        else:
            grad.addr_(coef, w_spread, alpha=-1.0)
    if keep:
        hot = None if w_y is None else w_y * -keep
        if coef is not None:
            hot = -keep * coef if hot is None else hot.mul_(coef)
        src = torch.full((n, 1), -keep, dtype=acc, device=dev) if hot is None else hot[:, None]
        grad.scatter_add_(1, y[:, None], src)
    if any_ignored:
        # no gradient on an ignored row, even where its logits are not finite (0 * NaN would be NaN)
        grad.masked_fill_(ignored[:, None], 0.0)
    return out, grad.to(logits.dtype), stats
