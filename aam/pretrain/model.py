"""`PretrainModel`: the encoders of `AAMRegressor` with the heads of the pretraining objectives.

The encoders are the same modules under the same names (`asv_encoder`, `sample_encoder`), so their state
loads into an `AAMRegressor` unchanged (`encoder_state`).
"""

from __future__ import annotations

import torch
from torch import nn

from aam.config import ModelConfig
from aam.models.blocks import ensure_one_real
from aam.models.encoders import ASVEncoder, SampleEncoder

ENCODER_PARTS = ("asv_encoder.", "sample_encoder.")


class PretrainModel(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        c, d = config, config.embedding_dim
        self.config = config
        self.asv_encoder = ASVEncoder(d, c.attention_heads, c.asv_layers, c.feedforward_multiplier, c.dropout,
                                      c.max_bp, c.gradient_checkpointing, c.asv_vocabulary)
        self.sample_encoder = SampleEncoder(d, c.attention_heads, c.sample_layers, c.feedforward_multiplier,
                                            c.dropout, c.gradient_checkpointing)
        # masked ASVs: presence logit of ASV u in sample b = <query(sample b), key(ASV u)> / sqrt(D) + bias
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.presence_bias = nn.Parameter(torch.zeros(1))
        # abundance of a hidden ASV (the model's abundance input) from the sample and the ASV vector
        self.abundance = nn.Sequential(nn.Linear(2 * d, d), nn.GELU(), nn.Linear(d, 1))
        # sample vectors -> a space whose Euclidean distances approximate the samples' distances
        self.projection = nn.Linear(d, d)
        # masked nucleotides: A/C/G/T logits from the nucleotide transformer's output
        self.nucleotide = nn.Linear(d, 4) if c.asv_layers > 0 else None

    def asv_vectors(self, tokens: torch.Tensor, with_states: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """([U, D] ASV vectors as `AAMRegressor` sees them, [U, L, D] nucleotide states or None)."""
        if not with_states:
            return self.asv_encoder(tokens), None
        states = self.asv_encoder.token_states(tokens)
        vectors = self.asv_encoder.norm(self.asv_encoder.pool(states, ensure_one_real(tokens != 0)))
        if self.asv_encoder.identity is not None:
            vectors = vectors + self.asv_encoder.identity(tokens)
        return vectors, states

    def encoder_state(self) -> dict[str, torch.Tensor]:
        """The weights and buffers an `AAMRegressor` takes over: its two encoders."""
        return {k: v.detach().clone() for k, v in self.state_dict().items() if k.startswith(ENCODER_PARTS)}
