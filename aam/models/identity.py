"""`ASVIdentity`: a learned vector per frequent ASV, added to the vector its sequence gives.

The random forest that microbiome studies compare with reads ASV identities; the sequence encoder alone
has to tell ASVs apart from their nucleotides. The vocabulary is the ASVs that at least K training samples
hold (`ModelConfig.asv_identity`), kept as sorted 62-bit hashes of their tokenized sequences, so the
model recognizes an ASV from its tokens alone and the checkpoint carries the vocabulary in its weights.
Every other ASV, in training or at prediction, shares row 0.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

# Two Mersenne-free primes below 2^31 and their bases: a token (< 8) times a power (< 2^31) summed over up
# to 2^20 positions stays below 2^54, so the sums are exact in int64 before the modulo.
_PRIMES = (2147483629, 2147483587)
_BASES = (1000003, 999983)


def _powers(length: int) -> torch.Tensor:
    """int64 [2, length]: base^i mod prime for each of the two hashes."""
    rows = []
    for prime, base in zip(_PRIMES, _BASES):
        value, row = 1, []
        for _ in range(length):
            row.append(value)
            value = value * base % prime
        rows.append(row)
    return torch.tensor(rows, dtype=torch.int64)


def sequence_hashes(tokens: torch.Tensor) -> torch.Tensor:
    """int64 [U]: a hash of each row of uint8 tokens [U, L]; padding (0) adds nothing, so the padded
    length does not change it. Two polynomial hashes modulo primes near 2^31, joined into 62 bits."""
    powers = _powers(tokens.shape[1]).to(tokens.device)  # [2, L]
    t = tokens.long()
    first = (t * powers[0]).sum(1) % _PRIMES[0]
    second = (t * powers[1]).sum(1) % _PRIMES[1]
    return first * (1 << 31) + second


def vocabulary_rows(hashes: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """int64 [U]: each ASV's (tokens uint8 [U, L]) position in the sorted vocabulary `hashes` [V], -1 for one
    outside it."""
    h = sequence_hashes(tokens)
    position = torch.searchsorted(hashes, h).clamp_max(hashes.numel() - 1)
    return torch.where(hashes[position] == h, position, torch.full_like(position, -1))


def vocabulary(counts, tokens: np.ndarray, min_samples: int) -> torch.Tensor:
    """Sorted distinct hashes [V] of the features (tokens [F, L]) that at least `min_samples` rows of the
    samples x features `counts` (the training samples) hold."""
    prevalence = np.asarray((counts > 0).sum(axis=0)).ravel()
    return torch.unique(sequence_hashes(torch.from_numpy(tokens[prevalence >= min_samples])))  # sorted


class ASVIdentity(nn.Module):
    def __init__(self, size: int, dim: int):
        super().__init__()
        self.register_buffer("hashes", torch.zeros(size, dtype=torch.int64))  # sorted vocabulary
        self.embedding = nn.Embedding(size + 1, dim)  # row 0: any ASV outside the vocabulary

    def set_vocabulary(self, hashes: torch.Tensor) -> None:
        assert hashes.shape == self.hashes.shape, "the vocabulary size is fixed when the model is built"
        self.hashes.copy_(hashes)

    @torch.no_grad()
    def take_vectors(self, hashes: torch.Tensor, weight: torch.Tensor) -> None:
        """Copy the vectors of another vocabulary (sorted `hashes` [V'], `weight` [V' + 1, D]) into the rows of
        the same ASVs here, and its row for unknown ASVs into row 0; other rows keep their values."""
        hashes, weight = hashes.to(self.hashes.device), weight.to(self.embedding.weight.device)
        self.embedding.weight[0] = weight[0]
        if hashes.numel() == 0:
            return
        position = torch.searchsorted(hashes, self.hashes).clamp_max(hashes.numel() - 1)
        rows = torch.nonzero(hashes[position] == self.hashes).flatten()  # ours that the other vocabulary has
        self.embedding.weight[rows + 1] = weight[position[rows] + 1]

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """uint8 [U, L] -> [U, D]"""
        return self.embedding(vocabulary_rows(self.hashes, tokens) + 1)
