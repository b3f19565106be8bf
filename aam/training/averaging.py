"""Exponential moving average (EMA) of a model's weights over training steps.

After every optimizer step, average <- decay * average + (1 - decay) * weights. The trainer swaps the
average into the model to validate and save it as model.pt, then swaps the training weights back before
the next epoch (and before last.pt, which keeps both).
"""

from __future__ import annotations

import torch
from torch import nn


class WeightAverage:
    def __init__(self, model: nn.Module, decay: float):
        assert 0.0 < decay < 1.0
        self.decay = decay
        self.weights = list(model.parameters())
        self.average = [p.detach().clone() for p in self.weights]  # starts at the initial weights

    @torch.no_grad()
    def update(self) -> None:
        torch._foreach_lerp_(self.average, [p.detach() for p in self.weights], 1.0 - self.decay)

    @torch.no_grad()
    def swap(self) -> None:
        """Exchange the model's weights with the average (a second call undoes it)."""
        for weight, average in zip(self.weights, self.average):
            held = weight.detach().clone()
            weight.copy_(average)
            average.copy_(held)

    def state_dict(self) -> list[torch.Tensor]:
        return [t.detach().clone() for t in self.average]

    @torch.no_grad()
    def load_state_dict(self, state: list[torch.Tensor]) -> None:
        for average, saved in zip(self.average, state, strict=True):
            average.copy_(saved)
