"""Learning-rate schedule: linear warmup to the peak, then cosine decay to zero."""

from __future__ import annotations

import math

import torch


def default_warmup_steps(total_steps: int) -> int:
    """5% of all steps, at least 1."""
    return max(1, round(0.05 * total_steps))


def warmup_cosine(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    """LambdaLR factor: (step+1)/warmup during warmup, then 0.5 (1 + cos(pi * progress))."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
