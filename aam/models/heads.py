"""Regression heads: sample vector [B, D] -> predictions [B, n_targets, n_quantiles]."""

from __future__ import annotations

import torch
from torch import nn


def mlp(in_dim: int, hidden_dims: tuple[int, ...], out_dim: int, dropout: float) -> nn.Sequential:
    """Linear -> GELU -> Dropout for each hidden width, then Linear to out_dim."""
    layers: list[nn.Module] = []
    for width in hidden_dims:
        layers += [nn.Linear(in_dim, width), nn.GELU(), nn.Dropout(dropout)]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class RegressionHead(nn.Module):
    """Linear (no hidden dims) or MLP, one output per (target, quantile)."""

    def __init__(self, in_dim: int, n_targets: int, n_quantiles: int = 1, hidden_dims: tuple[int, ...] = (),
                 dropout: float = 0.0):
        super().__init__()
        self.n_targets, self.n_quantiles = n_targets, n_quantiles
        self.net = mlp(in_dim, tuple(hidden_dims), n_targets * n_quantiles, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x [B, D] -> [B, T, Q]
        return self.net(x).view(x.shape[0], self.n_targets, self.n_quantiles)
