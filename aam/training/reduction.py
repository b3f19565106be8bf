"""How a training step's losses and an epoch's sums are reduced: the part of the epoch loop that depends on
how many processes share the global batch.

`Trainer` runs one epoch loop and hands these parts to its strategy: `SingleProcess` here, or
`aam.training.data_parallel.DataParallel` (all-reduce across the ranks of a torchrun run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import torch

from aam.data.batch import Batch
from aam.evaluation.inference import ModelOutputs, run_model
from aam.models import AAMRegressor
from aam.models.moe import Routing
from aam.training.output_loss import OutputLoss

if TYPE_CHECKING:
    from aam.training.trainer import StopFlag


@dataclass
class StepLoss:
    """One step's regression loss as this process holds it; summed over processes, each part is the
    global batch's quantity."""

    loss: torch.Tensor  # scalar: this process's part of the global batch's mean loss (differentiable)
    column_means: torch.Tensor  # [K] fp32, detached: its part of the global batch's per-column means
    routing: Routing | None  # for the MoE losses: this process's routing with the global batch's counts
    share: float  # this process's fraction of the global batch's samples (the MoE losses are sample means)
    samples: int  # samples in the global batch


class Reduction(Protocol):
    world: int  # processes sharing each global batch
    main: bool  # this process shows the progress bar

    def forward(self, model: AAMRegressor, batch: Batch) -> tuple[torch.Tensor, Routing | None]:
        """The training forward of this process's share -> (pred [b, T, Q], Routing or None)."""

    def step_loss(self, loss_fn: OutputLoss, pred: torch.Tensor, target: torch.Tensor,
                  weight: torch.Tensor | None, routing: Routing | None, batch: Batch, stop: StopFlag) -> StepLoss:
        """The step's loss parts (pred [b, T, Q] fp32, target [b, T] z-scored, weight [b] or None)."""

    def for_backward(self, objective: torch.Tensor) -> torch.Tensor:
        """What this process back-propagates for its part of the global batch's objective."""

    def after_step(self, step: int, stop: StopFlag) -> None:
        """Raises `TrainingInterrupted` when every process is to stop after `step` (0-based)."""

    def epoch_means(self, sums: torch.Tensor, samples: int, stop: StopFlag) -> list[float]:
        """The epoch's sums [S] over every process divided by its `samples`, read once to the host; raises
        `TrainingInterrupted` when a process was stopped after the last `after_step` check."""

    def run_model(self, model: AAMRegressor, loader, device: torch.device, precision: str = "auto") -> ModelOutputs:
        """`aam.evaluation.inference.run_model` over the whole of the loader's dataset."""


class SingleProcess:
    """One process: the batch is the global batch; nothing to reduce."""

    world = 1
    main = True

    def forward(self, model: AAMRegressor, batch: Batch) -> tuple[torch.Tensor, Routing | None]:
        return model.forward_batch(batch, return_routing=True)

    def step_loss(self, loss_fn: OutputLoss, pred: torch.Tensor, target: torch.Tensor,
                  weight: torch.Tensor | None, routing: Routing | None, batch: Batch, stop: StopFlag) -> StepLoss:
        loss, column_means = loss_fn(pred, target, weight)
        return StepLoss(loss, column_means, routing, 1.0, len(batch))

    def for_backward(self, objective: torch.Tensor) -> torch.Tensor:
        return objective

    def after_step(self, step: int, stop: StopFlag) -> None:
        stop.check()  # a Python attribute: free to read every step

    def epoch_means(self, sums: torch.Tensor, samples: int, stop: StopFlag) -> list[float]:
        return (sums / max(samples, 1)).tolist()

    def run_model(self, model: AAMRegressor, loader, device: torch.device, precision: str = "auto") -> ModelOutputs:
        return run_model(model, loader, device, precision)
