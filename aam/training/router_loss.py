"""Auxiliary losses of a mixture-of-experts head, computed from its `Routing` (aam.models.moe).

balance (Switch Transformer, Fedus et al. 2021): E * sum_e f_e * P_e, where f_e is the fraction of
the batch's (sample, slot) pairs routed to expert e (from the counts: no gradient) and P_e the mean
router probability of e (differentiable). It is 1 when routing is uniform and grows as samples pile
onto few experts; its gradient pushes probability away from the overused ones.
z-loss (ST-MoE, Zoph et al. 2022): mean over samples of logsumexp(logits)^2, which keeps the router
logits small (large logits make the softmax saturate and the top-k choice brittle).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from aam.models.moe import Routing


def balance_loss(routing: Routing) -> torch.Tensor:
    """E * sum_e f_e * P_e; probs [B, E], tokens_per_expert [E] (sums to B * k) -> scalar."""
    counts = routing.tokens_per_expert.to(routing.probs.dtype)
    f = counts / counts.sum()  # [E], constant: an integer count has no gradient
    p = routing.probs.mean(0)  # [E]
    return routing.probs.shape[1] * (f * p).sum()


def router_z_loss(routing: Routing) -> torch.Tensor:
    """mean_b logsumexp_e(logits[b, e])^2 -> scalar."""
    return torch.logsumexp(routing.logits.float(), dim=-1).square().mean()


@dataclass(frozen=True)
class RouterLoss:
    balance_weight: float = 0.01  # LossConfig.moe_balance_weight
    z_weight: float = 0.0  # LossConfig.moe_router_z_weight; 0 = off (not computed, not logged)

    def __call__(self, routing: Routing) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(weighted sum to add to the regression loss, {"balance_loss": ..., "z_loss": ...} unweighted
        and detached, for history.tsv; z_loss only when its weight is > 0)."""
        balance = balance_loss(routing)
        total = self.balance_weight * balance
        parts = {"balance_loss": balance.detach()}
        if self.z_weight > 0:
            z = router_z_loss(routing)
            total = total + self.z_weight * z
            parts["z_loss"] = z.detach()
        return total, parts
