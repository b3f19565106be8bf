"""Mixture of expert regression heads: E heads of one kind, a router, top-k gates.

sample vector x [B, D] -> router logits [B, E] -> the k experts with the largest logits (ties: the
lowest index) -> gates g = their softmax probabilities renormalized to sum 1 -> raw output
sum_j g[b, j] * expert_{i[b, j]}(x[b]) [B, T*Q] -> `non_crossing` -> predictions [B, T, Q].
The experts' raw outputs are mixed before `non_crossing`, so a quantile mixture still never crosses.

Every expert has the shape of the plain head (Linear, MLP, or residual Linear + MLP), and its
weights are stored stacked, [E, in, out] per layer, so the dense PyTorch path and the fused
`aam_kernels.moe_mlp` path read the same parameters and save the same checkpoints.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from aam.config import kernel_experts_supported
from aam.models.heads import non_crossing
from aam_kernels import moe_mlp
from aam_kernels.moe.reference import topk_lowest_index


class Routing(NamedTuple):
    """What the balance loss, the z-loss and the utilization report need from one forward."""

    logits: torch.Tensor  # [B, E] fp32 router logits
    probs: torch.Tensor  # [B, E] fp32 softmax(logits), differentiable
    tokens_per_expert: torch.Tensor  # [E] int64: (sample, slot) pairs routed to each expert; sums to B * k


def _stacked(experts: int, fan_in: int, fan_out: int) -> tuple[nn.Parameter, nn.Parameter]:
    """Weight [E, in, out] and bias [E, out], each expert initialized like an nn.Linear(in, out)
    (kaiming_uniform with a = sqrt(5) is U(-1/sqrt(in), 1/sqrt(in)) for the weight and the bias)."""
    bound = 1.0 / math.sqrt(fan_in)
    weight = nn.Parameter(torch.empty(experts, fan_in, fan_out).uniform_(-bound, bound))
    bias = nn.Parameter(torch.empty(experts, fan_out).uniform_(-bound, bound))
    return weight, bias


def _per_expert(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """One stacked layer on every expert: h [B, in] (shared input) or [E, B, in] -> [E, B, out]."""
    pattern = "bi,eio->ebo" if h.dim() == 2 else "ebi,eio->ebo"
    return torch.einsum(pattern, h, weight) + bias[:, None, :]


class MoEHead(nn.Module):
    """E regression heads of one kind mixed by a top-k router; see the module doc for the maths.

    routing_index >= 0: the router logits also get a learned bias per level of categorical column
    `routing_index` (an embedding [routing_levels + 1, E], zero at the start, row 0 = unknown level),
    so experts can specialize per category while an unseen category still routes by the sample vector.
    use_kernels: compute the mixture with `aam_kernels.moe_mlp` (experts with at most one hidden layer, no
    dropout).
    """

    def __init__(self, in_dim: int, *, n_targets: int, n_quantiles: int = 1, hidden_dims: tuple[int, ...] = (),
                 dropout: float = 0.0, residual: bool = False, experts: int, top_k: int,
                 routing_index: int = -1, routing_levels: int = 0, use_kernels: bool = False):
        super().__init__()
        assert not residual or hidden_dims, "a residual head needs an MLP part"
        if not 1 <= top_k <= experts:
            raise ValueError(f"top_k must be in [1, experts] = [1, {experts}]; got {top_k}")
        if use_kernels and not kernel_experts_supported(tuple(hidden_dims), dropout):
            raise ValueError(f"fused experts have at most one hidden layer and no dropout; got hidden_dims "
                             f"{tuple(hidden_dims)}, dropout {dropout}")
        self.n_targets, self.n_quantiles, self.experts, self.top_k = n_targets, n_quantiles, experts, top_k
        self.routing_index, self.use_kernels = routing_index, use_kernels
        out = n_targets * n_quantiles
        widths = (in_dim, *hidden_dims, out)
        layers = [_stacked(experts, a, b) for a, b in zip(widths[:-1], widths[1:])]
        self.weights = nn.ParameterList(w for w, _ in layers)  # [E, widths[l], widths[l + 1]]
        self.biases = nn.ParameterList(b for _, b in layers)  # [E, widths[l + 1]]
        self.skip_weight, self.skip_bias = _stacked(experts, in_dim, out) if residual else (None, None)
        self.dropout = nn.Dropout(dropout)
        self.router = nn.Linear(in_dim, experts)
        self.route_bias = None
        if routing_index >= 0:
            self.route_bias = nn.Embedding(routing_levels + 1, experts)
            nn.init.zeros_(self.route_bias.weight)  # start from routing by the sample vector alone

    def router_logits(self, x: torch.Tensor, categories: torch.Tensor) -> torch.Tensor:
        """x [B, D] fp32, categories int64 [B, C] -> logits [B, E]."""
        logits = self.router(x)
        if self.route_bias is not None:
            logits = logits + self.route_bias(categories[:, self.routing_index])
        return logits

    def forward(self, x: torch.Tensor, categories: torch.Tensor) -> tuple[torch.Tensor, Routing]:
        """x [B, D], categories int64 [B, C] -> (predictions [B, T, Q], Routing)."""
        # The head runs in (at least) fp32 even under bf16 autocast: it is tiny, and bf16 logits
        # would turn near-ties into different top-k choices between the two paths.
        with torch.autocast(x.device.type, enabled=False):
            x = x.to(torch.promote_types(x.dtype, torch.float32))
            logits = self.router_logits(x, categories)
            raw, probs, counts = self._fused(x, logits) if self.use_kernels else self._dense(x, logits)
        pred = non_crossing(raw.view(x.shape[0], self.n_targets, self.n_quantiles))
        return pred, Routing(logits, probs, counts)

    def expert_outputs(self, x: torch.Tensor) -> torch.Tensor:
        """Raw outputs of every expert on every sample: x [B, D] -> [B, E, T*Q]."""
        h = x
        last = len(self.weights) - 1
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            h = _per_expert(h, weight, bias)  # [E, B, width]
            if layer < last:
                h = self.dropout(F.gelu(h))  # exact GELU, as the plain head's nn.GELU()
        if self.skip_weight is not None:
            h = h + _per_expert(x, self.skip_weight, self.skip_bias)
        return h.transpose(0, 1)

    def _dense(self, x: torch.Tensor, logits: torch.Tensor):
        """Plain PyTorch: every expert on every sample (heads are tiny), then pick and weight the top k."""
        probs = torch.softmax(logits, dim=-1)  # [B, E]
        chosen = topk_lowest_index(logits, self.top_k)  # [B, k]
        top = probs.gather(1, chosen)
        gates = top / top.sum(-1, keepdim=True)  # [B, k]
        out = self.expert_outputs(x)  # [B, E, O]
        picked = out.gather(1, chosen[:, :, None].expand(-1, -1, out.shape[2]))  # [B, k, O]
        raw = (gates[:, :, None] * picked).sum(1)  # [B, O]
        flat = chosen.reshape(-1)
        # scatter_add rather than bincount: bincount reads its maximum back to the host on CUDA.
        counts = torch.zeros(self.experts, dtype=torch.int64, device=x.device).scatter_add_(
            0, flat, torch.ones_like(flat))
        return raw, probs, counts

    def _fused(self, x: torch.Tensor, logits: torch.Tensor):
        """`aam_kernels.moe_mlp`: Linear experts pass w1 = b1 = None; a residual expert is two calls
        with the same logits (so the same gates), and sum_j g_j (lin_j + mlp_j) = mix(lin) + mix(mlp)."""
        w, b = list(self.weights), list(self.biases)
        if len(w) == 1:
            out = moe_mlp(x, logits, None, None, w[0], b[0], top_k=self.top_k)
        else:
            out = moe_mlp(x, logits, w[0], b[0], w[1], b[1], top_k=self.top_k, activation="gelu")
        raw = out.y
        if self.skip_weight is not None:
            raw = raw + moe_mlp(x, logits, None, None, self.skip_weight, self.skip_bias, top_k=self.top_k).y
        return raw, out.probs, out.tokens_per_expert
