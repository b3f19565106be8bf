"""FLOPs of one training step, counted analytically from the batch's shapes: the arithmetic floor.

Counted: every Linear of both transformer stacks (q/k/v, out, both feed-forward layers), the attention
products (Q K^T and P V) and both attention poolings (one score and one weighted sum per element), at the
padded shapes the model computes ([U, L] tokens in the ASV encoder, [B, A] slots in the sample encoder).
Forward = 2 FLOPs per multiply-add; forward + backward = 3 x forward (the backward computes two products
per forward product). With no nucleotide layers (``asv_layers`` 0) the ASV encoder is its pooling alone.
Not counted: the count embedding and the head (under 1% at the default sizes), the softmax, norms and
other element-wise ops, and the score recomputation of a flash-attention backward.
"""

from __future__ import annotations


def _encoder_flops(sequences: int, length: int, dim: int, layers: int, ff_multiplier: int) -> dict[str, float]:
    tokens = sequences * length
    linear = 2 * tokens * dim * dim * (3 + 1 + 2 * ff_multiplier)  # qkv, out, two feed-forward layers
    attention = 2 * 2 * sequences * length * length * dim  # Q K^T and P V over all heads
    pooling = 2 * 2 * tokens * dim  # a score per element, then the weighted sum
    return {"linear": layers * linear, "attention": layers * attention, "pooling": pooling}


def step_flops(batch, config) -> dict[str, float]:
    """{"linear", "attention", "pooling", "forward", "total"} FLOPs of forward + backward on `batch` (an
    `aam` Batch) for a `ModelConfig`-like `config`; "forward" is the forward pass alone."""
    u, length = batch.asv_tokens.shape
    b, a = batch.asv_mask.shape
    d, f = config.embedding_dim, config.feedforward_multiplier
    asv = _encoder_flops(u, length, d, config.asv_layers, f)
    sample = _encoder_flops(b, a, d, config.sample_layers, f)
    parts = {name: 3 * (asv[name] + sample[name]) for name in asv}
    forward = sum(parts.values()) / 3
    return {**parts, "forward": forward, "total": 3 * forward}
