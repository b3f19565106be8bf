"""CPU path: pure PyTorch, closed-form backward, no Python loop over experts.

The (token, slot) pairs are sorted by expert once (stable argsort) and gathered into a padded
[E, cap, D] batch, so each layer of every expert is one batched matmul (``torch.baddbmm``). On CPU
``cap`` is the largest expert's pair count (reading it is free there: nothing is asynchronous);
on other devices it is the static bound T (each token picks an expert at most once), so the path
never synchronizes with the device. Padding rows hold finite filler (a copy of pair 0's token) and
get a zero output gradient, so they add nothing to any gradient.

Forward keeps the padded input batch, pre-activations and activations for backward, so backward
runs only the gradient matmuls: no second gather of x, no recomputed first layer, no second sort.
Same return values as the Triton launcher, so ``op.py`` treats both alike; ``route`` here is each
pair's row in the padded batch, [T*k] int32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from aam_kernels.moe.reference import topk_lowest_index
from aam_kernels.moe.state import MoEInputs, MoESaved


def _acc_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _act(a: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "gelu":
        return F.gelu(a, approximate="none")
    return F.relu(a) if activation == "relu" else F.silu(a)


def _act_backward(g_h: torch.Tensor, a: torch.Tensor, activation: str, out: torch.Tensor) -> torch.Tensor:
    """g_h * act'(a) into ``out`` with ATen's fused backward kernels (relu' = 0 at a = 0, as autograd)."""
    if activation == "gelu":
        return torch.ops.aten.gelu_backward.grad_input(g_h, a, approximate="none", grad_input=out)
    if activation == "relu":
        return torch.ops.aten.threshold_backward.grad_input(g_h, a, 0, grad_input=out)
    return torch.ops.aten.silu_backward.grad_input(g_h, a, grad_input=out)


def _small_n_bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a [E, M, K] @ b [E, K, N] for tiny N (the O outputs): computed as (b^T a^T)^T, which CPU BLAS
    runs much faster than a product with N = 3 columns."""
    return torch.bmm(b.transpose(1, 2), a.transpose(1, 2)).transpose(1, 2)


def _softmax_rows(logits: torch.Tensor) -> torch.Tensor:
    """softmax over the last dim, written out: ATen's CPU softmax over a short last dim (E experts) is
    slower than these four elementwise passes."""
    e = (logits - logits.amax(-1, keepdim=True)).exp_()
    return e.div_(e.sum(-1, keepdim=True))


def route(router_logits: torch.Tensor, top_k: int, renormalize: bool):
    """probs [T, E] fp32 (fp64 for fp64 logits), topi [T, k] int64, gates [T, k], counts [E] int64, order [T*k]."""
    T, E = router_logits.shape
    probs = _softmax_rows(router_logits.to(_acc_dtype(router_logits.dtype)))
    topi = topk_lowest_index(router_logits, top_k)  # [T, k]
    v = probs.gather(1, topi)
    gates = v / v.sum(-1, keepdim=True) if renormalize else v
    flat = topi.reshape(-1)  # pair p = t * k + j -> its expert
    order = torch.argsort(flat, stable=True)  # pairs sorted by expert, then by pair id
    # Integer scatter-add instead of bincount, which reads max(flat) back to the host on CUDA.
    counts = torch.zeros(E, dtype=torch.int64, device=flat.device).scatter_add_(0, flat, torch.ones_like(flat))
    return probs, topi, gates, counts, order


def _padded_slots(topi: torch.Tensor, counts: torch.Tensor, order: torch.Tensor, cap: int):
    """(dest [T*k], row_pair [E*cap]): pair p sits at row dest[p] of the padded [E * cap] batch, and
    padded row r holds pair row_pair[r] (padding rows point at pair 0)."""
    E = counts.shape[0]
    flat = topi.reshape(-1)
    starts = torch.cumsum(counts, 0) - counts  # [E] first sorted position of each expert
    e_sorted = flat[order]
    rank = torch.arange(order.numel(), device=topi.device) - starts[e_sorted]  # position inside the segment
    dest = torch.empty_like(order)
    dest[order] = e_sorted * cap + rank  # order is a permutation: every entry is written
    row_pair = torch.zeros(E * cap, dtype=torch.int64, device=topi.device)
    row_pair[dest] = torch.arange(order.numel(), device=topi.device)
    return dest, row_pair


def _take_rows(src: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """src[index] for a 2-D src (index_select: one pass, no advanced-indexing overhead)."""
    return src.index_select(0, index)


def forward(inputs: MoEInputs, top_k: int, activation: str, renormalize: bool):
    """(y [T, O] x.dtype, counts [E] int64, saved): ``saved.probs`` [T, E] fp32, ``topi`` [T, k] int64,
    ``gates`` [T, k] fp32, ``o_tk`` [T, k, O] fp32 (unweighted expert output per pair, for the router
    gradient), ``route`` [T*k] int32 (each pair's row in the padded batch), then the padded batch
    ``xp`` [E, cap, D], pre-activations ``a`` [E, cap, H] and activations ``h`` [E, cap, H] (H = 0 for
    Linear experts).

    fp64 inputs are computed in fp64 (o_tk and the saved batches too); everything else in fp32.
    """
    x, router_logits, w1, b1, w2, b2 = inputs
    T, D = x.shape
    E = router_logits.shape[1]
    O = w2.shape[2]
    acc = _acc_dtype(x.dtype)
    probs, topi, gates, counts, order = route(router_logits, top_k, renormalize)
    cap = (int(counts.max()) if T else 0) if x.device.type == "cpu" else T
    dest, row_pair = _padded_slots(topi, counts, order, cap)
    xp = _take_rows(x.to(acc), row_pair // top_k).view(E, cap, D)  # pair p = t * k + j reads x[t]
    if w1 is None:
        a, h = xp.new_empty(E, cap, 0), xp.new_empty(E, cap, 0)
        hidden = xp
    else:
        a = torch.baddbmm(b1.to(acc)[:, None, :], xp, w1.to(acc))  # [E, cap, H]
        h = hidden = _act(a, activation)
    out = _small_n_bmm(hidden, w2.to(acc)) + b2.to(acc)[:, None, :]  # [E, cap, O]
    o_tk = _take_rows(out.reshape(E * cap, O), dest).view(T, top_k, O)
    y = (gates.to(acc)[:, :, None] * o_tk).sum(1)  # fixed slot order
    saved = MoESaved(
        probs.float(), topi, gates.float(), o_tk if acc == torch.float64 else o_tk.float(), dest.to(torch.int32), xp, a, h
    )
    return y.to(x.dtype), counts, saved


def router_backward(gy, gprobs, probs, topi, gates, o_tk, renormalize: bool, acc):
    """d loss / d router_logits [T, E] from the gate path (through g) and a gradient on probs."""
    g_gate = torch.einsum("to,tko->tk", gy.to(acc), o_tk.to(acc))  # [T, k] d loss / d g
    gates = gates.to(acc)
    if renormalize:
        # g = v / s with s = sum v: d/dv_j = (dg_j - sum_i dg_i g_i) / s.
        v = probs.to(acc).gather(1, topi)
        s = v.sum(-1, keepdim=True)
        g_v = (g_gate - (g_gate * gates).sum(-1, keepdim=True)) / s
    else:
        g_v = g_gate
    g_p = torch.zeros_like(probs, dtype=acc).scatter(1, topi, g_v)  # experts of a row are distinct
    if gprobs is not None:
        g_p = g_p + gprobs.to(acc)
    p = probs.to(acc)
    return p * (g_p - (g_p * p).sum(-1, keepdim=True))  # softmax backward


def backward(gy, gprobs, inputs: MoEInputs, saved: MoESaved, top_k: int, activation: str, renormalize: bool):
    """(gx, g_logits, gw1, gb1, gw2, gb2) in their inputs' dtypes; gw1 = gb1 = None for Linear experts."""
    x, router_logits, w1, b1, w2, b2 = inputs
    probs, topi, gates, o_tk, route_, xp, a, h = saved
    T, D = x.shape
    E = router_logits.shape[1]
    O = w2.shape[2]
    cap = xp.shape[1]
    acc = xp.dtype
    dest = route_.long()  # [T*k] row of each pair in the padded batch, from forward
    g_logits = router_backward(gy, gprobs, probs, topi, gates, o_tk, renormalize, acc)

    # d loss / d out per pair: its gate times the token's output gradient; zero in padding rows.
    g_out = torch.zeros(E * cap, O, dtype=acc, device=x.device)
    g_out.index_copy_(0, dest, (gates.to(acc)[:, :, None] * gy.to(acc)[:, None, :]).reshape(-1, O))
    g_out = g_out.view(E, cap, O)
    w2c = w2.to(acc)
    if w1 is None:
        gw2 = torch.bmm(g_out.transpose(1, 2), xp).transpose(1, 2)  # [E, D, O]
        g_xp = torch.bmm(g_out, w2c.transpose(1, 2))  # [E, cap, D]
        gw1 = gb1 = None
    else:
        gw2 = torch.bmm(g_out.transpose(1, 2), h).transpose(1, 2)  # [E, H, O]
        g_a = torch.bmm(g_out, w2c.transpose(1, 2))  # [E, cap, H] d loss / d h, then d loss / d a in place
        g_a = _act_backward(g_a, a, activation, out=g_a)
        gw1 = torch.bmm(xp.transpose(1, 2), g_a).to(w1.dtype)  # [E, D, H]
        gb1 = g_a.sum(1).to(b1.dtype)
        g_xp = torch.bmm(g_a, w1.to(acc).transpose(1, 2).contiguous())  # [E, cap, D]
    gb2 = g_out.sum(1)
    # d x[t] = sum of its pairs' rows. On CPU index_add_ adds the padded rows serially in row order
    # (deterministic; padding rows are exactly zero), faster than gathering the pairs; elsewhere the
    # pairs are gathered and summed in slot order.
    g_xp = g_xp.view(E * cap, D)
    if x.device.type == "cpu":
        row_pair = torch.zeros(E * cap, dtype=torch.int64, device=x.device)
        row_pair[dest] = torch.arange(T * top_k, device=x.device)  # padding rows read pair 0
        gx = torch.zeros(T, D, dtype=acc, device=x.device).index_add_(0, row_pair // top_k, g_xp)
    else:
        gx = _take_rows(g_xp, dest).view(T, top_k, D).sum(1)
    return (
        gx.to(x.dtype),
        g_logits.to(router_logits.dtype),
        gw1,
        gb1,
        gw2.to(w2.dtype),
        gb2.to(b2.dtype),
    )
