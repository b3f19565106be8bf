"""Output heads: sample vector [B, D] -> regression predictions [B, n_targets, n_quantiles], or the class
logits of the classification targets [B, sum of their levels]."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def mlp(in_dim: int, hidden_dims: tuple[int, ...], out_dim: int, dropout: float) -> nn.Sequential:
    """Linear -> GELU -> Dropout for each hidden width, then Linear to out_dim."""
    layers: list[nn.Module] = []
    for width in hidden_dims:
        layers += [nn.Linear(in_dim, width), nn.GELU(), nn.Dropout(dropout)]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


def non_crossing(raw: torch.Tensor) -> torch.Tensor:
    """[..., Q] raw outputs -> increasing quantiles: q_0 = raw_0, q_j = q_{j-1} + softplus(raw_j).

    Quantiles cannot cross by construction (each step is > 0), rather than by sorting afterwards.
    """
    if raw.shape[-1] == 1:
        return raw
    steps = F.softplus(raw[..., 1:])
    return torch.cat([raw[..., :1], raw[..., :1] + torch.cumsum(steps, dim=-1)], dim=-1)


class RegressionHead(nn.Module):
    """Linear (no hidden dims), MLP, or residual Linear + MLP; one output per (target, quantile)."""

    def __init__(self, in_dim: int, *, n_targets: int, n_quantiles: int = 1, hidden_dims: tuple[int, ...] = (),
                 dropout: float = 0.0, residual: bool = False):
        super().__init__()
        assert not residual or hidden_dims, "a residual head needs an MLP part"
        self.n_targets, self.n_quantiles = n_targets, n_quantiles
        out = n_targets * n_quantiles
        self.net = mlp(in_dim, tuple(hidden_dims), out, dropout)
        self.linear = nn.Linear(in_dim, out) if residual else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x [B, D] -> [B, T, Q]
        y = self.net(x)
        if self.linear is not None:
            y = y + self.linear(x)
        return non_crossing(y.view(x.shape[0], self.n_targets, self.n_quantiles))


class ClassifierHead(nn.Module):
    """Linear or MLP (the regression head's hidden widths and dropout) to the logits of every classification
    target, concatenated: [B, D] -> [B, sum(classes)]."""

    def __init__(self, in_dim: int, *, classes: tuple[int, ...], hidden_dims: tuple[int, ...] = (),
                 dropout: float = 0.0):
        super().__init__()
        self.classes = classes
        self.net = mlp(in_dim, tuple(hidden_dims), sum(classes), dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
