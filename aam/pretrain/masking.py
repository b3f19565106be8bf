"""Which ASVs of each sample and which nucleotides of each ASV a pretraining step hides.

Both draws come from a generator seeded per step, so a resumed run and every process of a data-parallel
run hide the same ones.
"""

from __future__ import annotations

import numpy as np
import torch

from aam.data.tokenizer import OTHER


def step_generator(seed: int, epoch: int, step: int) -> torch.Generator:
    """A CPU generator for one step, from (seed, epoch, step)."""
    mixed = np.random.SeedSequence([seed, epoch, step]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed) & (2**63 - 1))


def hidden_asvs(mask: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """bool [B, A]: the slots hidden from each sample. A sample with n real slots hides
    min(n - 1, max(1, round(fraction * n))) of them, chosen uniformly: at least one stays visible, and a
    sample with one ASV hides nothing."""
    real = mask.sum(1)  # [B]
    k = torch.clamp(torch.round(fraction * real.double()).long(), min=1)
    k = torch.minimum(k, real - 1).clamp_min(0)  # [B]
    scores = torch.rand(mask.shape, generator=generator).to(mask.device)
    scores = scores.masked_fill(~mask, 2.0)  # padding sorts after every real slot
    rank = scores.argsort(dim=1).argsort(dim=1)  # [B, A]: position of each slot in its row's draw order
    return mask & (rank < k[:, None])


def masked_nucleotides(tokens: torch.Tensor, fraction: float, generator: torch.Generator
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """(tokens with the hidden nucleotides set to N, int64 targets [U, L]: 0-3 for the hidden A/C/G/T, -100
    elsewhere). Each A/C/G/T position is hidden with probability `fraction`."""
    tokens = tokens.long()
    acgt = (tokens >= 1) & (tokens <= 4)
    hide = acgt & (torch.rand(tokens.shape, generator=generator).to(tokens.device) < fraction)
    targets = torch.where(hide, tokens - 1, torch.full_like(tokens, -100))
    return torch.where(hide, torch.full_like(tokens, OTHER), tokens), targets
