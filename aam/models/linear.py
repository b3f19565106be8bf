"""`ASVLinear`: a linear model on the log relative abundances of the frequent ASVs, added to the outputs.

Microbiome studies fit linear models on log abundances of ASV identities, and on small studies such a model
is often as accurate as the random forest; the transformer reads abundances through attention, which a
few hundred samples train poorly. This term gives the model the linear path directly. For each output
column o (a regression target's z-scored value, added to each of its quantiles, or a class logit):

    linear_o = bias_o + sum over the sample's ASVs v in the vocabulary of f(rel_v) * w[v, o],
    f(r) = log(1 + r / EPS) / log(1 + 1 / EPS)  in [0, 1],

so an absent ASV adds nothing. The vocabulary is the ASVs held by at least `ModelConfig.asv_linear`
training samples, kept as the sorted sequence hashes of `aam.models.identity`; two features whose kept
nucleotides are the same share one weight. `aam.training.linear_init` starts the weights from a ridge
(regression columns) or logistic (class logits) regression on the training samples.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from aam.models.identity import vocabulary_rows

EPS = 1e-5  # the relative abundance where the log bends: below about 1 read in 100,000 counts as nearly absent


def abundance_feature(rel_abundance: torch.Tensor) -> torch.Tensor:
    """f(r) = log(1 + r / EPS) / log(1 + 1 / EPS): 0 for an absent ASV, 1 for one that holds every read."""
    return torch.log1p(rel_abundance / EPS) / math.log1p(1.0 / EPS)


class ASVLinear(nn.Module):
    def __init__(self, size: int, outputs: int):
        super().__init__()
        self.register_buffer("hashes", torch.zeros(size, dtype=torch.int64))  # sorted vocabulary
        self.weight = nn.Parameter(torch.zeros(size, outputs))
        self.bias = nn.Parameter(torch.zeros(outputs))

    def set_vocabulary(self, hashes: torch.Tensor) -> None:
        assert hashes.shape == self.hashes.shape, "the vocabulary size is fixed when the model is built"
        self.hashes.copy_(hashes)

    def rows(self, tokens: torch.Tensor) -> torch.Tensor:
        """int64 [U]: each ASV's row of `weight`, -1 outside the vocabulary (tokens uint8 [U, L])."""
        return vocabulary_rows(self.hashes, tokens)

    def slot_terms(self, tokens: torch.Tensor, asv_index: torch.Tensor, asv_mask: torch.Tensor,
                   rel_abundance: torch.Tensor) -> torch.Tensor:
        """Each slot's f(rel) * w: tokens uint8 [U, L], asv_index int64 [B, A], asv_mask bool [B, A],
        rel_abundance [B, A] -> [B, A, O]; 0 at padding and for ASVs outside the vocabulary."""
        row = self.rows(tokens)[asv_index]  # [B, A]
        known = (row >= 0) & asv_mask
        value = torch.where(known, abundance_feature(rel_abundance), torch.zeros_like(rel_abundance))
        return value.to(self.weight.dtype).unsqueeze(-1) * self.weight[row.clamp_min(0)]

    def forward(self, tokens: torch.Tensor, asv_index: torch.Tensor, asv_mask: torch.Tensor,
                rel_abundance: torch.Tensor) -> torch.Tensor:
        """[B, O]: the bias plus the sum of `slot_terms` over the slots."""
        return self.slot_terms(tokens, asv_index, asv_mask, rel_abundance).sum(1) + self.bias
