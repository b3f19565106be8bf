"""`AAMRegressor`: the whole model, built from a `ModelConfig` alone (train and predict share it)."""

from __future__ import annotations

import torch
from torch import nn

from aam.config import ModelConfig
from aam.data.batch import Batch
from aam.models.encoders import ASVEncoder, SampleEncoder
from aam.models.heads import ClassifierHead, RegressionHead
from aam.models.layout import OutputLayout
from aam.models.linear import ASVLinear
from aam.models.moe import MoEHead, Routing


class AAMRegressor(nn.Module):
    """`config.use_kernels`: an MoE head mixes its experts with `aam_kernels.moe_mlp` (same parameters)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        c = config
        self.config = config
        self.asv_encoder = ASVEncoder(c.embedding_dim, c.attention_heads, c.asv_layers, c.feedforward_multiplier,
                                      c.dropout, c.max_bp, c.gradient_checkpointing, c.asv_vocabulary)
        self.sample_encoder = SampleEncoder(c.embedding_dim, c.attention_heads, c.sample_layers,
                                            c.feedforward_multiplier, c.dropout, c.gradient_checkpointing)
        # One embedding per categorical column; row 0 = unknown/unseen level, so new categories still work.
        self.categories = nn.ModuleList(nn.Embedding(n + 1, c.embedding_dim) for n in c.category_cardinalities)
        self.layout = OutputLayout.of(c)
        n_regression = len(self.layout.regression_targets)
        classes = tuple(k for k in self.layout.n_classes if k)
        # the linear model on abundances (aam.models.linear): one column per regression target, then the
        # class logits; None = off
        self.linear = ASVLinear(c.linear_vocabulary, n_regression + sum(classes), c.kernel_samples) \
            if c.linear_vocabulary else None
        head = dict(n_targets=n_regression, n_quantiles=c.n_quantiles, hidden_dims=c.regressor_hidden_dims,
                    dropout=c.regressor_dropout, residual=c.residual_regression_head)
        if c.moe_experts:
            levels = c.category_cardinalities[c.moe_routing_index] if c.moe_routing_index >= 0 else 0
            self.head = MoEHead(c.embedding_dim, **head, experts=c.moe_experts, top_k=c.moe_top_k,
                                routing_index=c.moe_routing_index, routing_levels=levels, use_kernels=c.use_kernels)
        else:
            self.head = RegressionHead(c.embedding_dim, **head) if n_regression else None
        # the classification targets' logits come from a head of their own, beside an MoE head's experts
        self.classifier = ClassifierHead(c.embedding_dim, classes=classes, hidden_dims=c.regressor_hidden_dims,
                                         dropout=c.regressor_dropout) if classes else None

    def encode_asvs(self, asv_tokens: torch.Tensor, asv_index: torch.Tensor) -> torch.Tensor:
        """ASV vectors for every (sample, slot): [B, A, D]. The U distinct ASVs of the batch [U, L] are
        encoded once and gathered (`asv_vectors[asv_index]`); padding slots get the vector of the row they
        point at, which the sample encoder masks out."""
        return self.asv_encoder(asv_tokens)[asv_index]

    def sample_vectors(self, asv_tokens, asv_index, asv_mask, log_counts, categories):
        """[B, D]: the sample encoding plus the embedding of each categorical column."""
        asv_vectors = self.encode_asvs(asv_tokens, asv_index)
        x = self.sample_encoder(asv_vectors, asv_mask, log_counts)
        for column, embedding in enumerate(self.categories):
            x = x + embedding(categories[:, column])
        return x

    def forward(self, asv_tokens: torch.Tensor, asv_index: torch.Tensor, asv_mask: torch.Tensor,
                log_counts: torch.Tensor, categories: torch.Tensor, return_routing: bool = False,
                rel_abundance: torch.Tensor | None = None):
        """Predictions [B, n_targets, S] (`aam.models.layout`): a regression target's Q outputs in z-scored
        units, a classification target's class logits; S = Q without classification targets.
        `rel_abundance` [B, A]: each slot's share of its sample's reads, which the linear model on abundances
        (`self.linear`) reads; needed when the model has one.

        `return_routing=True`: (predictions, Routing of the MoE head, or None for a single head).
        """
        x = self.sample_vectors(asv_tokens, asv_index, asv_mask, log_counts, categories)
        routing: Routing | None = None
        if self.config.moe_experts:
            pred, routing = self.head(x, categories)
        else:
            pred = self.head(x) if self.head is not None else None
        logits = self.classifier(x) if self.classifier is not None else None
        if self.linear is not None:
            linear = self.linear(asv_tokens, asv_index, asv_mask, rel_abundance)  # [B, R + sum K]
            r = len(self.layout.regression_targets)
            pred = pred + linear[:, :r, None] if pred is not None else None  # the same shift for every quantile
            logits = logits + linear[:, r:] if logits is not None else None
        if self.classifier is not None:
            pred = self.layout.assemble(pred, logits)
        return (pred, routing) if return_routing else pred

    def abundance_input(self, batch: Batch) -> torch.Tensor:
        return abundance_input(self.config.abundance, batch)

    def forward_batch(self, batch: Batch, return_routing: bool = False):
        return self(batch.asv_tokens, batch.asv_index, batch.asv_mask, self.abundance_input(batch), batch.categories,
                    return_routing, batch.rel_abundance)


def abundance_input(abundance: str, batch: Batch) -> torch.Tensor:
    """[B, A]: what the count embedding reads per slot: log(1 + reads), or with `abundance="relative"`
    log(1 + reads per 10,000), so a typical sample's values stay on the scale of log(1 + reads)."""
    if abundance == "relative":
        return torch.log1p(1e4 * batch.rel_abundance)
    return batch.log_counts
