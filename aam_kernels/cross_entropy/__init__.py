"""Fused cross-entropy for classifier heads with few classes: loss, gradient and reduction in one pass."""
