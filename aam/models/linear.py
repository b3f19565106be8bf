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
(regression columns) or logistic (class logits) regression on the training samples, or, for a regression
column where a kernel ridge regression on the same features scored better, from that (`aam.models.kernel`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from aam.models.identity import vocabulary_rows
from aam.models.kernel import ASVKernel

EPS = 1e-5  # the relative abundance where the log bends: below about 1 read in 100,000 counts as nearly absent


def abundance_feature(rel_abundance: torch.Tensor) -> torch.Tensor:
    """f(r) = log(1 + r / EPS) / log(1 + 1 / EPS): 0 for an absent ASV, 1 for one that holds every read."""
    return torch.log1p(rel_abundance / EPS) / math.log1p(1.0 / EPS)


class ASVLinear(nn.Module):
    """`kernel_samples` > 0: with the kernel ridge regressions of `aam.models.kernel` on that many training
    samples, added to the output columns whose fit chose a kernel."""

    def __init__(self, size: int, outputs: int, kernel_samples: int = 0):
        super().__init__()
        self.register_buffer("hashes", torch.zeros(size, dtype=torch.int64))  # sorted vocabulary
        self.weight = nn.Parameter(torch.zeros(size, outputs))
        self.bias = nn.Parameter(torch.zeros(outputs))
        self.kernel = ASVKernel(kernel_samples, size, outputs) if kernel_samples else None

    def set_vocabulary(self, hashes: torch.Tensor) -> None:
        assert hashes.shape == self.hashes.shape, "the vocabulary size is fixed when the model is built"
        self.hashes.copy_(hashes)

    def rows(self, tokens: torch.Tensor) -> torch.Tensor:
        """int64 [U]: each ASV's row of `weight`, -1 outside the vocabulary (tokens uint8 [U, L])."""
        return vocabulary_rows(self.hashes, tokens)

    def slot_values(self, tokens: torch.Tensor, asv_index: torch.Tensor, asv_mask: torch.Tensor,
                    rel_abundance: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(row int64 [B, A], value [B, A]): each slot's vocabulary row (0 where it has none) and f(rel), 0 at
        padding and for ASVs outside the vocabulary (tokens uint8 [U, L], asv_index int64 [B, A], asv_mask
        bool [B, A], rel_abundance [B, A])."""
        row = self.rows(tokens)[asv_index]
        known = (row >= 0) & asv_mask
        value = torch.where(known, abundance_feature(rel_abundance), torch.zeros_like(rel_abundance))
        return row.clamp_min(0), value.to(self.weight.dtype)

    def features(self, row: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """[B, V]: the slot values summed per vocabulary row."""
        out = value.new_zeros(value.shape[0], self.hashes.numel())
        return out.scatter_add(1, row, value)

    def from_values(self, row: torch.Tensor, value: torch.Tensor, with_kernel: bool = True) -> torch.Tensor:
        """[B, O]: the bias, plus the sum of value * w over the slots, plus (`with_kernel`) the kernel columns."""
        out = (value.unsqueeze(-1) * self.weight[row]).sum(1) + self.bias
        if self.kernel is not None and with_kernel:
            out = out + self.kernel(self.features(row, value))
        return out

    def forward(self, tokens: torch.Tensor, asv_index: torch.Tensor, asv_mask: torch.Tensor,
                rel_abundance: torch.Tensor) -> torch.Tensor:
        """[B, O]: `from_values` of the batch's slots."""
        return self.from_values(*self.slot_values(tokens, asv_index, asv_mask, rel_abundance))
