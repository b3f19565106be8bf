"""`DataParallel`: the `Trainer`'s reduction strategy when torchrun runs it on several processes (DDP).

Each rank holds its share of every global batch (`aam.data.sharding`). A step is the single-process
step on the global batch, split into per-rank pieces whose sum is the global quantity:

- regression loss: mean = sum(weight * loss) / sum(weight) over the global batch's valid elements;
  each rank sums its elements and divides by the all-reduced denominator;
- MoE balance loss E * sum_e f_e P_e: f_e from the all-reduced routing counts; P_e (and the z-loss)
  are means over samples, so each rank's mean counts with its share of the global batch size;
- ASV BatchNorm: global statistics (`aam.training.sync_norm`).

DDP averages gradients over ranks, so each rank back-propagates world_size x its piece. The step's
all-reduce also carries every rank's stop flag; the flags are read on the host only every
`stop_read_every` steps, one such period late (so the copy is long finished and the read does not wait
for the device), and at the end of the epoch with the epoch's sums. Every rank reads the same all-reduced
values after the same step, so SIGINT/SIGTERM on any rank stops all of them after the same step.
Validation runs on each rank's share and gathers the outputs in the single-process order.
"""

from __future__ import annotations

import dataclasses
import itertools
import signal
from typing import TYPE_CHECKING

import torch
from torch.nn.parallel import DistributedDataParallel

from aam.data.batch import Batch
from aam.evaluation.inference import ModelOutputs, run_model
from aam.models import AAMRegressor
from aam.models.moe import Routing
from aam.runtime import distributed
from aam.training.output_loss import OutputLoss
from aam.training.reduction import StepLoss
from aam.training.sync_norm import SyncASVBatchNorm

if TYPE_CHECKING:
    from aam.training.trainer import StopFlag


class HostCopy:
    """A copy of a small device tensor on the host, started without waiting for the device."""

    def __init__(self, values: torch.Tensor):
        if values.device.type == "cuda":
            self.host = torch.empty(values.shape, dtype=values.dtype, pin_memory=True)
            self.host.copy_(values, non_blocking=True)
            self.done = torch.cuda.Event()
            self.done.record()
        else:
            self.host, self.done = values, None  # a CPU tensor that no later step writes to

    def read(self) -> list[float]:
        if self.done is not None:
            self.done.synchronize()
        return self.host.tolist()


class DataParallel:
    """All-reduce across the ranks of a torchrun run. `stop_read_every`: steps between host reads of the
    all-reduced stop flags (a signal stops the run within about twice this many steps)."""

    def __init__(self, model: AAMRegressor, device: torch.device, stop_read_every: int = 8):
        assert stop_read_every >= 1
        self.model, self.device, self.stop_read_every = model, device, stop_read_every
        self.norm = SyncASVBatchNorm.convert(model.asv_encoder.norm)
        self.world = distributed.world_size()
        self.main = distributed.is_main_process()
        self.ddp: DistributedDataParallel | None = None  # made by the first training forward
        self.flags = torch.zeros(2, device=device)  # this rank's [SIGINT, SIGTERM], in every step's all-reduce
        self.posted: int | None = None  # the signal already written into `flags`
        self.agreed: torch.Tensor | None = None  # [2] the flags summed over ranks at the latest step
        self.pending: HostCopy | None = None  # `agreed` at the latest read step, on its way to the host

    def forward(self, model: AAMRegressor, batch: Batch):
        """Training forward of this rank's share through DDP -> (pred [b, T, Q], Routing or None)."""
        assert model is self.model
        if self.ddp is None:
            # Made here rather than when the run is built: its constructor broadcasts rank 0's weights, a
            # collective that must not start while another rank may still fail to build its run
            # (`aam.runtime.distributed.on_every_rank`). Buffers (the norm's running statistics) get identical
            # updates on every rank: no broadcast needed.
            self.ddp = DistributedDataParallel(model, broadcast_buffers=False,
                                               device_ids=[self.device.index] if self.device.type == "cuda" else None)
        # The owned-ASV mask goes to the device without blocking: a blocking copy would wait for the device.
        owned = batch.shard.asv_owned.to(batch.asv_tokens.device, non_blocking=True)
        self.norm.shard = dataclasses.replace(batch.shard, asv_owned=owned)
        try:
            return self.ddp(batch.asv_tokens, batch.asv_index, batch.asv_mask, model.abundance_input(batch),
                            batch.categories, return_routing=True, rel_abundance=batch.rel_abundance)
        finally:
            self.norm.shard = None

    def step_loss(self, loss_fn: OutputLoss, pred: torch.Tensor, target: torch.Tensor,
                  weight: torch.Tensor | None, routing: Routing | None, batch: Batch, stop: StopFlag) -> StepLoss:
        """This rank's pieces of the global batch's loss, per-column means and MoE routing counts; one
        all-reduce of [column denominators K, routing counts E, stop flags 2]."""
        shard, k = batch.shard, loss_fn.n_columns
        elements, mass = loss_fn.elementwise(pred, target, weight)
        counts = torch.zeros(0, device=pred.device)
        if routing is not None:
            counts = routing.tokens_per_expert.float() * (0.0 if shard.padding else 1.0)
        self.post_flag(stop)
        shared = distributed.all_reduce_sum(torch.cat([mass.sum(0).detach(), counts, self.flags]))
        self.agreed = shared[-2:]
        column_den, counts = shared[:k], shared[k:k + counts.numel()]
        loss = elements.sum() / column_den.sum().clamp_min(1e-30)  # this rank's piece of the global mean
        column_means = torch.where(column_den > 0, elements.detach().sum(0) / column_den.clamp_min(1e-30), 0.0)
        if routing is not None:
            routing = Routing(routing.logits, routing.probs, counts)
        share = (0.0 if shard.padding else len(batch)) / shard.global_samples
        return StepLoss(loss, column_means, routing, share, shard.global_samples)

    def post_flag(self, stop: StopFlag) -> None:
        """Put this rank's signal into the flags the next all-reduce carries (a device write, once)."""
        if stop.signum is not None and stop.signum != self.posted:
            self.flags[0 if stop.signum == signal.SIGINT else 1] = 1.0
            self.posted = stop.signum

    def for_backward(self, objective: torch.Tensor) -> torch.Tensor:
        return objective * self.world

    def after_step(self, step: int, stop: StopFlag) -> None:
        if (step + 1) % self.stop_read_every:
            return
        previous, self.pending = self.pending, HostCopy(self.agreed)
        if previous is not None:
            self.stop_if_flagged(previous.read(), stop)

    def epoch_means(self, sums: torch.Tensor, samples: int, stop: StopFlag) -> list[float]:
        self.post_flag(stop)
        values = (distributed.all_reduce_sum(torch.cat([sums, self.flags])) / max(samples, 1)).tolist()
        self.pending = None
        self.stop_if_flagged(values[-2:], stop)
        return values[:-2]

    def stop_if_flagged(self, flags: list[float], stop: StopFlag) -> None:
        """flags: [SIGINT, SIGTERM] summed over ranks; a rank keeps its own signal, the others take SIGTERM
        when any rank got it."""
        if flags[0] > 0 or flags[1] > 0:
            stop.signum = stop.signum or (signal.SIGTERM if flags[1] > 0 else signal.SIGINT)
            stop.check()

    def run_model(self, model: AAMRegressor, loader, device: torch.device, precision: str = "auto") -> ModelOutputs:
        """`run_model` over this rank's shares, gathered from every rank in the single-process order."""
        batches = (b for b in loader if not b.shard.padding)
        first = next(batches, None)
        local = None
        if first is not None:
            local = run_model(model, itertools.chain([first], batches), device, precision)
        parts = [p for p in distributed.all_gather_objects(local) if p is not None]
        position = {s: i for i, s in enumerate(loader.dataset.sample_ids)}
        ids = [s for p in parts for s in p.sample_ids]
        order = torch.as_tensor(sorted(range(len(ids)), key=lambda i: position[ids[i]]), dtype=torch.long)
        routing = None
        if parts[0].routing is not None:
            routing = Routing(torch.cat([p.routing.logits for p in parts])[order],
                              torch.cat([p.routing.probs for p in parts])[order],
                              torch.stack([p.routing.tokens_per_expert for p in parts]).sum(0))
        return ModelOutputs([ids[i] for i in order.tolist()], torch.cat([p.pred_z for p in parts])[order],
                            torch.cat([p.targets for p in parts])[order],
                            torch.cat([p.categories for p in parts])[order], routing)
