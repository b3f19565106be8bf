"""CPU path: pure PyTorch, the loss and its closed-form gradient from one softmax.

Returns the same three tensors as the Triton launcher (see ``forward``), so ``op.py`` treats both alike.
With p = softmax(x), lse = log sum_c exp(x_c), and per row coef = row weight (0 if ignored):
    loss           = coef * (keep * w_y * (lse - x_y) + spread * (W * lse - x . w))
    d loss / d x_j = coef * ((keep * w_y + spread * W) * p_j - spread * w_j) - coef * keep * w_y * [j == y]
with keep = 1 - eps, spread = eps / C, W = sum_c w_c.

Written for few passes over the [N, C] logits, and around what is slow on CPU: reductions over a short
last dimension and [N, 1] columns broadcast over it. C > 2: exp(x), one matrix-vector product for the
row sums (and one for x . w with smoothing), one scaling of exp(x) into the gradient and a scatter of N
values into the target column. exp(x) needs no shift by the row max when every logit lies within
+-SHIFT_FREE_BOUND (one min/max pass decides, on CPU only, where reading it costs no device sync): the
row sums then neither overflow nor underflow, and lse = log(sum exp x) rounds like m + log(sum exp(x - m)).
Otherwise a row max (a chain of elementwise maxima over column views for C <= 4) shifts the logits first.
C = 2 reads the logits once and writes the gradient once, all else is on [N] vectors: with
z = x_other - x_y, lse - x_y = softplus(z), p_other = sigmoid(z), and the two columns' gradients are
opposite (each row's gradient sums to 0).
"""

from __future__ import annotations

from typing import Union

import torch

COLUMN_MAX_UP_TO = 4  # widest C whose row max is taken column by column
SHIFT_FREE_BOUND = 64.0  # |logits| up to this: exp(x) in [1.6e-28, 6.2e27], far inside fp32's range

Factor = Union[torch.Tensor, float]  # a per-row [N] tensor, or one number for every row


def _row_max(x: torch.Tensor) -> torch.Tensor:
    """[N] max of each row of x [N, C]."""
    c = x.shape[1]
    if c == 1 or c > COLUMN_MAX_UP_TO:
        return x.amax(1)
    m = torch.maximum(x[:, 0], x[:, 1])
    for j in range(2, c):
        torch.maximum(m, x[:, j], out=m)
    return m


def _within(x: torch.Tensor, bound: float) -> bool:
    """Every element of x (a CPU tensor) lies in [-bound, bound] (False for NaN)."""
    if x.numel() == 0:
        return False
    low, high = torch.aminmax(x)
    return bool(low >= -bound) and bool(high <= bound)


def _scale_(t: torch.Tensor, f: Factor) -> torch.Tensor:
    """t *= f in place, skipping the pass when f is the number 1."""
    return t if isinstance(f, float) and f == 1.0 else t.mul_(f)


def _binary_rows(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None, w_y: Factor, w_sum: Factor, smooth: bool):
    """C = 2 on [N] vectors: (nll = lse - x_y, W lse - x . w or None, z = x_other - x_y, sign, w_other)."""
    acc = x.dtype
    sign = y.to(acc).mul_(-2.0).add_(1.0)  # [N] +1 where y = 0, -1 where y = 1
    z = (x[:, 1] - x[:, 0]).mul_(sign)  # [N]
    nll = torch.logaddexp(z, torch.zeros((), dtype=acc, device=x.device))  # [N] softplus(z)
    w_other: Factor = 1.0 if w is None else w_sum - w_y
    # W lse - x . w = W (lse - x_y) + sum_c w_c (x_y - x_c) = W nll - w_other z
    spread_term = (nll * w_sum).sub_(z * w_other) if smooth else None
    return nll, spread_term, z, sign, w_other


def _softmax_rows(x: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None, w_sum: Factor, smooth: bool):
    """C != 2: (nll = lse - x_y, W lse - x . w or None, e [N, C] = exp(x - shift), s [N] = its row sums)."""
    ones_c = torch.ones(x.shape[1], dtype=x.dtype, device=x.device)
    if x.device.type == "cpu" and _within(x, SHIFT_FREE_BOUND):
        e = x.exp()  # [N, C]
        s = e @ ones_c  # [N]
        lse = s.log()  # [N]
    else:
        m = _row_max(x)  # [N]
        e = torch.sub(x, m[:, None]).exp_()  # [N, C] exp(x - m), in (0, 1]
        s = e @ ones_c  # [N]
        lse = s.log().add_(m)  # [N]
    nll = lse - x.gather(1, y[:, None]).squeeze(1)  # [N] -log p_y
    spread_term = (lse * w_sum).sub_(x @ (ones_c if w is None else w)) if smooth else None
    return nll, spread_term, e, s


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
    coef: Factor = 1.0 if row_weight is None else row_weight.to(acc)
    if any_ignored:
        coef = (~ignored).to(acc) if isinstance(coef, float) else coef.masked_fill(ignored, 0.0)
    w = None if weight is None else weight.to(acc)  # [C]; None: 1 for every class
    w_y: Factor = 1.0 if w is None else w[y]
    w_sum: Factor = float(c) if w is None else w.sum()

    if c == 2:
        nll, spread_term, z, sign, w_other = _binary_rows(x, y, w, w_y, w_sum, spread > 0)
    else:
        nll, spread_term, e, s = _softmax_rows(x, y, w, w_sum, spread > 0)
    per_row = _scale_(nll, keep * w_y)  # [N]
    if spread_term is not None:
        per_row.add_(spread_term, alpha=spread)
    per_row = _scale_(per_row, coef)
    if any_ignored:
        per_row.masked_fill_(ignored, 0.0)  # 0 even where an ignored row's logits are not finite

    mass = w_y * coef  # [N], or the number 1 for every row
    total = per_row.sum()
    den = mass.sum() if isinstance(mass, torch.Tensor) else torch.tensor(float(n), dtype=acc, device=dev)
    if reduction == "mean":
        scale = torch.where(den != 0, 1.0 / den, 0.0)  # every row ignored: loss NaN, gradient 0
        out = (total / den).to(logits.dtype)
    else:
        scale = torch.ones((), dtype=acc, device=dev)
        out = (per_row if reduction == "none" else total).to(logits.dtype)
    stats = torch.stack([total, den, scale])
    if not compute_grad:
        return out, logits.new_empty(0), stats

    a = coef * (keep * w_y + spread * w_sum)  # multiplier of p_j on each row
    if c == 2:
        # g_other = a p_other - coef spread w_other, g_y = -g_other; column 1 gets sign * g_other
        g_1 = _scale_(torch.sigmoid(z), a)
        if spread:
            g_1.sub_(coef * spread * w_other)
        g_1.mul_(sign)
        if any_ignored:
            g_1.masked_fill_(ignored, 0.0)
        grad = torch.outer(g_1, torch.tensor([-1.0, 1.0], dtype=acc, device=dev))
        return out, grad.to(logits.dtype), stats
    grad = e.div_(s[:, None]) if isinstance(a, float) and a == 1.0 else e.mul_((a / s)[:, None])
    if spread:
        w_spread = torch.full((c,), spread, dtype=acc, device=dev) if w is None else w * spread  # [C]
        if isinstance(coef, float):
            grad.sub_(w_spread)
        else:
            grad.addr_(coef, w_spread, alpha=-1.0)
    if keep:
        hot = coef * -keep * w_y  # [N] or a number: the target column's -1, scaled
        src = hot[:, None] if isinstance(hot, torch.Tensor) else torch.full((n, 1), hot, dtype=acc, device=dev)
        grad.scatter_add_(1, y[:, None], src)
    if any_ignored:
        # no gradient on an ignored row, even where its logits are not finite (0 * NaN would be NaN)
        grad.masked_fill_(ignored[:, None], 0.0)
    return out, grad.to(logits.dtype), stats
