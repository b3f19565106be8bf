"""The moe_mlp spec in plain PyTorch autograd: every expert runs on every token (dense), then the
top-k gates pick and weight the outputs. Obviously correct and slow; tests and baselines use it.

Shapes: x [T, D], router_logits [T, E], w1 [E, D, H], b1 [E, H], w2 [E, H, O], b2 [E, O]
(w1 = b1 = None: each expert is one Linear with w2 [E, D, O]).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ACTIVATIONS = ("gelu", "relu", "silu")


def activation_fn(name: str):
    """The elementwise activation by name; gelu is the exact (erf) form."""
    if name == "gelu":
        return lambda a: F.gelu(a, approximate="none")
    if name == "relu":
        return F.relu
    if name == "silu":
        return F.silu
    raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {name!r}")


def topk_lowest_index(router_logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """Indices [T, k] of the k largest logits per row, largest first; ties go to the lowest expert index.

    Softmax is monotonic, so ranking logits ranks probabilities, and equal logits are exactly equal
    in every implementation (equal probabilities after rounding need not be). A stable descending
    sort keeps equal values in index order.
    """
    order = torch.sort(router_logits.float(), dim=-1, descending=True, stable=True).indices
    return order[:, :top_k]


def moe_mlp_reference(
    x: torch.Tensor,
    router_logits: torch.Tensor,
    w1: torch.Tensor | None,
    b1: torch.Tensor | None,
    w2: torch.Tensor,
    b2: torch.Tensor,
    *,
    top_k: int,
    activation: str = "gelu",
    renormalize: bool = True,
    upcast: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(y [T, O], probs [T, E], tokens_per_expert [E] int64).

    ``upcast``: compute in at least fp32 (fp64 stays fp64, for gradcheck) and return y in x's dtype;
    ``upcast=False`` computes in the inputs' dtype (the error PyTorch itself makes in that dtype).
    """
    dtype = torch.promote_types(x.dtype, torch.float32) if upcast else x.dtype
    act = activation_fn(activation)
    E = router_logits.shape[1]
    probs = torch.softmax(router_logits.to(torch.promote_types(router_logits.dtype, torch.float32)), dim=-1)
    idx = topk_lowest_index(router_logits, top_k)  # [T, k]
    v = probs.gather(1, idx)  # [T, k]
    gates = v / v.sum(-1, keepdim=True) if renormalize else v

    xc = x.to(dtype)
    if w1 is None:
        hidden = xc.unsqueeze(0).expand(E, *xc.shape)  # [E, T, D]
    else:
        hidden = act(torch.einsum("td,edh->eth", xc, w1.to(dtype)) + b1.to(dtype)[:, None, :])  # [E, T, H]
    out = torch.einsum("eth,eho->teo", hidden, w2.to(dtype)) + b2.to(dtype)[None]  # [T, E, O]
    chosen = out.gather(1, idx[:, :, None].expand(-1, -1, out.shape[2]))  # [T, k, O]
    y = (gates.to(dtype)[:, :, None] * chosen).sum(1)
    counts = torch.bincount(idx.reshape(-1), minlength=E)
    return y.to(x.dtype), probs, counts


def moe_mlp_expert_loop(
    x, router_logits, w1, b1, w2, b2, *, top_k: int, activation: str = "gelu", renormalize: bool = True
):
    """The usual eager implementation: a Python loop over experts with boolean masks (a benchmark baseline)."""
    act = activation_fn(activation)
    E = router_logits.shape[1]
    probs = torch.softmax(router_logits.float(), dim=-1)
    idx = topk_lowest_index(router_logits, top_k)
    v = probs.gather(1, idx)
    gates = v / v.sum(-1, keepdim=True) if renormalize else v
    y = x.new_zeros(x.shape[0], w2.shape[2], dtype=torch.float32)
    for e in range(E):
        tok, slot = torch.nonzero(idx == e, as_tuple=True)
        xe = x[tok].float()
        he = xe if w1 is None else act(xe @ w1[e].float() + b1[e].float())
        out = he @ w2[e].float() + b2[e].float()
        y = y.index_add(0, tok, gates[tok, slot, None] * out)
    return y.to(x.dtype), probs, torch.bincount(idx.reshape(-1), minlength=E)
