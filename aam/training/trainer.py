"""`Trainer`: optimizer, schedule and the per-epoch loops (train step, validation pass), summed by a
reduction strategy (`aam.training.reduction`: one process, or across torchrun's ranks).

It knows nothing about files: `aam.training.loop` decides what is saved where.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from aam.config import TrainConfig
from aam.data.batch import Batch
from aam.data.encoders import TargetScaler
from aam.evaluation.classes import ClassLevels
from aam.evaluation.inference import Predictions, to_predictions
from aam.models import AAMRegressor
from aam.runtime.device import autocast
from aam.training.averaging import WeightAverage
from aam.training.output_loss import OutputLoss
from aam.training.param_groups import parameter_groups
from aam.training.norm_statistics import recompute_norm_statistics
from aam.training.reduction import Reduction, SingleProcess
from aam.training.router_loss import RouterLoss
from aam.training.schedule import default_warmup_steps, warmup_cosine
from aam.training.weights import row_weights


class TrainingInterrupted(Exception):
    """SIGINT/SIGTERM arrived; the epoch in progress is dropped, the last checkpoint stays valid."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopFlag:
    """Turns SIGINT/SIGTERM into a flag checked between steps, so no checkpoint is cut in half."""

    def __init__(self):
        self.signum: int | None = None

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

        def handler(signum, frame):
            self.signum = signum

        for s in previous:
            signal.signal(s, handler)
        try:
            yield self
        finally:
            for s, h in previous.items():
                signal.signal(s, h)

    def check(self) -> None:
        if self.signum is not None:
            raise TrainingInterrupted(self.signum)


class NonFiniteLoss(Exception):
    """The training objective was NaN or inf at some step of an epoch; that epoch's weights are garbage."""

    def __init__(self, epoch: int, step: int, steps: int, value: float):
        super().__init__(f"training loss became {value} at epoch {epoch}, step {step} of {steps}")
        self.epoch, self.step, self.steps, self.value = epoch, step, steps, value


def check_finite(epoch: int, train_loss: float, router: dict[str, float], step_objectives: torch.Tensor) -> None:
    """NonFiniteLoss when the epoch's mean loss or router losses are NaN/inf, naming the first step whose
    objective (in `step_objectives` [steps], kept on the device) was not finite."""
    if all(map(math.isfinite, [train_loss, *router.values()])):
        return
    bad = torch.nonzero(~torch.isfinite(step_objectives)).flatten().tolist()
    step = bad[0] if bad else len(step_objectives) - 1
    raise NonFiniteLoss(epoch, step + 1, len(step_objectives), float(step_objectives[step]))


@dataclass
class EpochResult:
    train_loss: float  # the regression loss (without the MoE router losses, so it compares with val_loss)
    train_column_loss: list[float]  # per output column [T*Q], mean over the epoch's samples
    val_loss: float
    val_column_loss: list[float]
    metrics: dict[str, dict[str, float]]  # {target: {mae, rmse, r2, pearson, n}}
    train_router_loss: dict[str, float] = field(default_factory=dict)  # MoE: balance_loss (, z_loss), unweighted


@dataclass
class EpochSums:
    """What an epoch's steps add up, on the device: each step's global-batch means times its samples."""

    loss: torch.Tensor  # scalar: regression loss
    columns: torch.Tensor  # [K] per-column means
    router: dict[str, torch.Tensor] = field(default_factory=dict)  # MoE router losses by name, scalars
    samples: int = 0

    def stacked(self, router_names: list[str]) -> torch.Tensor:
        """[1 + K + len(router_names)]: loss, columns, the router losses in the given order."""
        router = [self.router[n] for n in router_names]
        return torch.cat([self.loss[None], self.columns,
                          torch.stack(router) if router else self.columns.new_zeros(0)])


@dataclass
class TrainerState:
    """Progress that --resume restores besides model/optimizer/scheduler/RNG."""

    epoch: int = 0  # epochs completed
    best_value: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    def __init__(self, model: AAMRegressor, loss_fn: OutputLoss, config: TrainConfig, *, scaler: TargetScaler,
                 target_columns: tuple[str, ...], quantiles: tuple[float, ...], device: torch.device,
                 steps_per_epoch: int, weight_tables: list[torch.Tensor] | None = None,
                 router_loss: RouterLoss | None = None, reduction: Reduction | None = None,
                 classes: ClassLevels | None = None):
        self.model, self.loss_fn, self.config, self.scaler = model, loss_fn.to(device), config, scaler
        self.router_loss = router_loss  # added to the loss of an MoE model; None = no auxiliary loss
        self.target_columns, self.device = target_columns, device
        # on the device once: a copy from the host at every step would wait for the device
        self.weight_tables = None if weight_tables is None else [t.to(device) for t in weight_tables]
        # how steps and epochs are summed: one process, or all-reduced across torchrun's ranks
        self.reduction = SingleProcess() if reduction is None else reduction
        self.quantiles = quantiles  # levels of the model's Q outputs, () for a point model
        self.classes = classes  # the classification targets' levels, None without one
        self.mean = torch.tensor(scaler.mean, dtype=torch.float32, device=device)  # [T]
        self.std = torch.tensor(scaler.std, dtype=torch.float32, device=device)
        assert config.lr is not None, "the run builder resolves the default learning rate"
        # CPU: the fused AdamW updates every parameter in one pass; the default there runs a dozen small ops per
        # parameter tensor, a tenth of a small model's step (docs/performance.md, "The demo").
        self.optimizer = torch.optim.AdamW(parameter_groups(model, config.lr, config.encoder_lr_scale),
                                           lr=config.lr, weight_decay=config.weight_decay,
                                           fused=True if device.type == "cpu" else None)
        total = max(1, config.epochs * steps_per_epoch)
        warmup = default_warmup_steps(total) if config.warmup_steps is None else config.warmup_steps
        self.scheduler = warmup_cosine(self.optimizer, warmup, total)
        # the weights validated and saved as model.pt: an average over steps, or the training weights themselves
        self.average = WeightAverage(model, config.ema_decay) if config.ema_decay > 0 else None
        self.stop = StopFlag()

    def normalize(self, raw_targets: torch.Tensor) -> torch.Tensor:
        return (raw_targets - self.mean) / self.std  # [B, T]; NaN stays NaN (missing)

    def train_epoch(self, loader, epoch: int) -> tuple[float, list[float], dict[str, float]]:
        """One pass over `loader`; returns the sample-weighted mean regression loss of the global batches, its
        per-column means, and the means of the MoE router losses ({} without them), the same on every rank.

        Nothing is read back from the device inside a step: the sums stay on the device and are read once at
        the end; each step's objective is kept on the device too, read only when the epoch's sums turn out
        non-finite, to name the first bad step."""
        self.model.train()
        sums = EpochSums(torch.zeros((), device=self.device),
                         torch.zeros(self.loss_fn.n_columns, device=self.device))
        step_objectives = torch.zeros(len(loader), device=self.device)
        bar = tqdm(loader, desc=f"epoch {epoch}/{self.config.epochs}", leave=False, file=sys.stderr,
                   disable=not (self.config.progress and self.reduction.main), unit="batch")
        # a rank's loss is only its piece of the global batch's: the bar shows the loss in one process only
        show_loss = self.config.progress and self.reduction.world == 1
        for step, batch in enumerate(bar):
            objective, loss = self.train_step(batch, sums)
            step_objectives[step] = objective
            if show_loss and step % 10 == 0:
                bar.set_postfix(loss=f"{loss.item():.4f}")  # a host sync every 10 steps only
            self.reduction.after_step(step, self.stop)
        names = sorted(sums.router)
        k = sums.columns.numel()
        means = self.reduction.epoch_means(sums.stacked(names), sums.samples, self.stop)
        train_loss, router = means[0], dict(zip(names, means[1 + k:]))
        check_finite(epoch, train_loss, router, step_objectives)
        return train_loss, means[1:1 + k], router

    def train_step(self, batch: Batch, sums: EpochSums) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward, loss, backward and update on this process's share of one global batch; adds the step's
        global means times its samples to `sums`. Returns (objective, regression loss), detached."""
        batch = batch.to(self.device, non_blocking=True)
        with autocast(self.device, self.config.precision, training=True):
            pred, routing = self.reduction.forward(self.model, batch)
        part = self.reduction.step_loss(self.loss_fn, pred.float(), self.normalize(batch.targets),
                                        row_weights(self.weight_tables, batch.categories), routing, batch, self.stop)
        objective = part.loss
        if part.routing is not None and self.router_loss is not None:
            aux, parts = self.router_loss(part.routing)
            objective = part.loss + aux * part.share
            for name, value in parts.items():
                sums.router[name] = sums.router.get(name, 0.0) + value * part.share * part.samples
        self.apply_gradients(self.reduction.for_backward(objective))
        sums.loss += part.loss.detach() * part.samples
        sums.columns += part.column_means.to(self.device) * part.samples
        sums.samples += part.samples
        return objective.detach(), part.loss.detach()

    def apply_gradients(self, objective: torch.Tensor) -> None:
        """Backward, clipping, optimizer and schedule step."""
        self.optimizer.zero_grad(set_to_none=True)
        objective.backward()
        if self.config.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.max_grad_norm)
        self.optimizer.step()
        self.scheduler.step()
        if self.average is not None:
            self.average.update()

    def validate(self, loader) -> tuple[float, list[float], Predictions]:
        """Validation loss (one loss call over all samples) and predictions in original units."""
        precision = self.config.precision
        out = self.reduction.run_model(self.model, loader, self.device, precision)
        with torch.no_grad():
            z_targets = self.normalize(out.targets.to(self.device))
            weights = row_weights(self.weight_tables, out.categories.to(self.device))
            loss, column_means = self.loss_fn(out.pred_z.to(self.device), z_targets, weights)
        return loss.item(), column_means.tolist(), to_predictions(out, self.scaler, self.quantiles,
                                                                  classes=self.classes)

    def run_epoch(self, train_loader, val_loader, epoch: int) -> EpochResult:
        """Train one epoch, then validate the weights model.pt would keep: with --ema-decay the model holds
        the average from here until `training_weights()`."""
        train_loss, train_columns, train_router = self.train_epoch(train_loader, epoch)
        if self.average is not None:
            self.average.swap()
        recompute_norm_statistics(self.model, train_loader, self.device, self.config.norm_batches,
                                  self.config.precision)
        val_loss, val_columns, p = self.validate(val_loader)
        return EpochResult(train_loss, train_columns, val_loss, val_columns, p.metrics(self.target_columns),
                           train_router)

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def training_weights(self) -> None:
        """Put the training weights back after `run_epoch` validated the average (no-op without one)."""
        if self.average is not None:
            self.average.swap()

    def state_dict(self) -> dict[str, Any]:
        state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict()}
        if self.average is not None:
            state["weight_average"] = self.average.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.average is not None:
            self.average.load_state_dict(state["weight_average"])


def is_better(value: float, best: float | None, higher_is_better: bool) -> bool:
    """NaN never improves; anything beats "no best yet"."""
    if best is None:
        return True
    if math.isnan(value):
        return False
    if math.isnan(best):
        return True
    return value > best if higher_is_better else value < best
