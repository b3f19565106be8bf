"""The two encoders: one vector per ASV from its nucleotides, one vector per sample from its ASVs."""

from __future__ import annotations

import torch
from torch import nn

from aam.data.tokenizer import VOCAB_SIZE
from aam.models.blocks import ASVBatchNorm, AttentionPooling, TransformerStack, ensure_one_real
from aam.models.identity import ASVIdentity


class ASVEncoder(nn.Module):
    """Nucleotide embedding + learned positions -> pre-LN transformer -> attention pooling -> BatchNorm
    over the batch's distinct ASVs (see `ASVBatchNorm` for why)."""

    def __init__(self, dim: int, heads: int, layers: int, ff_multiplier: int, dropout: float, max_bp: int,
                 checkpointing: bool = False, identity_size: int = 0):
        super().__init__()
        self.nucleotides = nn.Embedding(VOCAB_SIZE, dim, padding_idx=0)  # 0 pad, ACGT 1..4, other IUPAC 5, start 6
        self.positions = nn.Embedding(max_bp, dim)
        self.stack = TransformerStack(layers, dim, heads, ff_multiplier, dropout, checkpointing)
        self.pool = AttentionPooling(dim)
        self.norm = ASVBatchNorm(dim)
        # a learned vector per frequent ASV of the training samples (aam.models.identity); None = off
        self.identity = ASVIdentity(identity_size, dim) if identity_size else None

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # tokens uint8 [U, L] (L <= max_bp) -> [U, D]
        vectors = self.norm(self.pooled(tokens))
        return vectors if self.identity is None else vectors + self.identity(tokens)

    def pooled(self, tokens: torch.Tensor) -> torch.Tensor:
        """The ASV vectors before the BatchNorm: tokens uint8 [U, L] -> [U, D]."""
        tokens = tokens.long()
        mask = ensure_one_real(tokens != 0)  # [U, L]
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        if not self.stack.blocks:
            return self.pooled_from_table(tokens, mask, positions)
        return self.pool(self.token_states(tokens), mask)

    def token_states(self, tokens: torch.Tensor) -> torch.Tensor:
        """The nucleotide transformer's output per position: tokens [U, L] -> [U, L, D] (layers > 0 only;
        pretraining predicts masked nucleotides from it)."""
        tokens = tokens.long()
        mask = ensure_one_real(tokens != 0)
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        return self.stack(self.nucleotides(tokens) + self.positions(positions), mask)

    def pooled_from_table(self, tokens: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """`pooled` without nucleotide layers: a token's vector LN(nucleotide + position) then depends on the pair
        alone, so the [V, L, D] table of all pairs is normalized and scored once, and each ASV's vector is its
        softmax weights placed on the pairs it holds times the table ([U, V*L] @ [V*L, D]); no [U, L, D] tensor.
        Same arithmetic as the general path, summed in another order. In fp32 under bf16 autocast too, as
        `AttentionPooling` is: the ASV BatchNorm after it would magnify bf16 rounding."""
        with torch.autocast(tokens.device.type, enabled=False):
            vocab = torch.arange(self.nucleotides.num_embeddings, device=tokens.device)
            table = self.stack.norm(self.nucleotides(vocab)[:, None, :] + self.positions(positions))  # [V, L, D]
            holds = (tokens[:, None, :] == vocab[None, :, None]).to(table.dtype)  # [U, V, L]: one-hot over V
            scores = (holds * self.pool.score(table).squeeze(-1)).sum(1)  # [U, L]
            weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
            u, v, length = holds.shape
            return (holds * weights[:, None, :]).view(u, v * length) @ table.view(v * length, -1)


class SampleEncoder(nn.Module):
    """ASV vectors + log-count embedding -> transformer over the ASV set -> attention pooling."""

    def __init__(self, dim: int, heads: int, layers: int, ff_multiplier: int, dropout: float,
                 checkpointing: bool = False):
        super().__init__()
        self.counts = nn.Linear(1, dim)
        self.stack = TransformerStack(layers, dim, heads, ff_multiplier, dropout, checkpointing)
        self.pool = AttentionPooling(dim)

    def forward(self, asv_vectors: torch.Tensor, mask: torch.Tensor, log_counts: torch.Tensor) -> torch.Tensor:
        # asv_vectors [B, A, D], mask bool [B, A], log_counts [B, A] -> [B, D]
        x = asv_vectors + self.counts(log_counts.unsqueeze(-1).to(asv_vectors.dtype))
        x = x * mask.unsqueeze(-1)  # padding slots carry exact zeros, whatever the gather returned
        mask = ensure_one_real(mask)
        return self.pool(self.stack(x, mask), mask)
