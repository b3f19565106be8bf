"""The "moe" block of metrics.json (key `metrics.MOE_KEY`): how an MoE head's router uses its
experts on the validation split.

{"utilization": [E fractions of the (sample, slot) pairs, summing to 1],
 "entropy": mean over samples of -sum_e p_e log p_e of the router probabilities (nats; log E = uniform),
 "by_category": {level: [E fractions]} for the routing column (learned routing: the first categorical
 column, or {} without one)}
"""

from __future__ import annotations

import torch

from aam.config import ModelConfig
from aam.models.moe import Routing
from aam_kernels.moe.reference import topk_lowest_index

UNKNOWN_LEVEL = "<unknown>"  # code 0: a level not seen in training, or a missing value


def report_column(model: ModelConfig, categorical_columns: tuple[str, ...]) -> str | None:
    """The column whose levels by_category reports: the routing column, else the first categorical one."""
    if model.moe_routing != "learned":
        return model.moe_routing
    return categorical_columns[0] if categorical_columns else None


@torch.no_grad()
def moe_metrics(routing: Routing, top_k: int, codes: torch.Tensor | None = None,
                levels: list[str] | tuple[str, ...] = ()) -> dict:
    """routing over N samples (logits, probs [N, E], tokens_per_expert [E]); codes int64 [N] of the
    report column (0 = unknown, i = levels[i - 1]) or None -> the "moe" block (see the module doc)."""
    counts = routing.tokens_per_expert.double()
    probs = routing.probs.double()
    entropy = -torch.xlogy(probs, probs).sum(-1).mean()  # xlogy: 0 log 0 = 0
    by_category = {}
    if codes is not None:
        n_experts = probs.shape[1]
        chosen = topk_lowest_index(routing.logits, top_k)  # [N, k]: the head's own choice rule
        for code in sorted(set(codes.tolist())):  # only the levels present in the split
            pairs = chosen[codes == code].reshape(-1)
            share = torch.bincount(pairs, minlength=n_experts).double() / pairs.numel()
            by_category[levels[code - 1] if code else UNKNOWN_LEVEL] = share.tolist()
    return {"utilization": (counts / counts.sum()).tolist(), "entropy": float(entropy), "by_category": by_category}
