"""FLOPs of one training step, counted analytically from the batch's shapes: the arithmetic floor.

Counted: every Linear of both transformer stacks (q/k/v, out, both feed-forward layers) and the attention
products (Q K^T and P V), at the padded shapes the model computes ([U, L] tokens in the ASV encoder,
[B, A] slots in the sample encoder). Forward = 2 FLOPs per multiply-add; forward + backward = 3 x forward
(the backward computes two products per forward product). Not counted: the attention-pooling scores, the
count embedding and the head (under 1% at the default sizes), the softmax, norms and other element-wise ops,
and the score recomputation of a flash-attention backward.
"""

from __future__ import annotations


def _stack_flops(sequences: int, length: int, dim: int, layers: int, ff_multiplier: int) -> dict[str, float]:
    tokens = sequences * length
    linear = 2 * tokens * dim * dim * (3 + 1 + 2 * ff_multiplier)  # qkv, out, two feed-forward layers
    attention = 2 * 2 * sequences * length * length * dim  # Q K^T and P V over all heads
    return {"linear": layers * linear, "attention": layers * attention}


def step_flops(batch, config) -> dict[str, float]:
    """{"linear", "attention", "forward", "total"} FLOPs of forward + backward on `batch` (an `aam` Batch)
    for a `ModelConfig`-like `config`."""
    u, length = batch.asv_tokens.shape
    b, a = batch.asv_mask.shape
    d, f = config.embedding_dim, config.feedforward_multiplier
    asv = _stack_flops(u, length, d, config.asv_layers, f)
    sample = _stack_flops(b, a, d, config.sample_layers, f)
    linear, attention = asv["linear"] + sample["linear"], asv["attention"] + sample["attention"]
    forward = linear + attention
    return {"linear": 3 * linear, "attention": 3 * attention, "forward": forward, "total": 3 * forward}
