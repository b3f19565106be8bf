"""What a `Trainer` does differently when torchrun runs it on several processes (DDP).

Each rank holds its share of every global batch (`aam.data.sharding`). A step is the single-process
step on the global batch, split into per-rank pieces whose sum is the global quantity:

- regression loss: mean = sum(weight * loss) / sum(weight) over the global batch's valid elements;
  each rank sums its elements and divides by the all-reduced denominator;
- MoE balance loss E * sum_e f_e P_e: f_e from the all-reduced routing counts; P_e (and the z-loss)
  are means over samples, so each rank's mean counts with its share of the global batch size;
- ASV BatchNorm: global statistics (`aam.training.sync_norm`).

DDP averages gradients over ranks, so each rank back-propagates world_size x its piece. The same
all-reduce also carries every rank's stop flag, so SIGINT/SIGTERM on any rank stops all of them at
the same step. Validation runs on each rank's share and gathers the outputs in the single-process order.
"""

from __future__ import annotations

import itertools
import signal
import sys

import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from aam.data.batch import Batch
from aam.evaluation.inference import ModelOutputs, run_model
from aam.models import AAMRegressor
from aam.models.moe import Routing
from aam.runtime import distributed
from aam.runtime.device import autocast
from aam.training.sync_norm import SyncASVBatchNorm
from aam.training.trainer import check_finite
from aam.training.weights import row_weights


class DataParallel:
    def __init__(self, model: AAMRegressor, device: torch.device):
        self.model = model
        self.norm = SyncASVBatchNorm.convert(model.asv_encoder.norm)
        self.world = distributed.world_size()
        # Buffers (the norm's running statistics) get identical updates on every rank: no broadcast needed.
        self.ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None,
                                           broadcast_buffers=False)

    def forward(self, batch: Batch):
        """Training forward of this rank's share through DDP -> (pred [b, T, Q], Routing or None)."""
        self.norm.shard = batch.shard
        try:
            return self.ddp(batch.asv_tokens, batch.asv_index, batch.asv_mask, batch.log_counts, batch.categories,
                            return_routing=True)
        finally:
            self.norm.shard = None

    def train_epoch(self, trainer, loader, epoch: int) -> tuple[float, list[float], dict[str, float]]:
        """`Trainer.train_epoch` on this rank's shares; returns the global epoch means on every rank."""
        self.model.train()
        device, k = trainer.device, trainer.loss_fn.under.numel()
        loss_sum = torch.zeros((), device=device)  # this rank's share of sum over batches of (batch loss x size)
        column_sums = torch.zeros(k, device=device)
        router_sums: dict[str, torch.Tensor] = {}
        step_objectives = torch.zeros(len(loader), device=device)  # this rank's pieces, read only when non-finite
        seen = 0
        bar = tqdm(loader, desc=f"epoch {epoch}/{trainer.config.epochs}", leave=False, file=sys.stderr,
                   disable=not (trainer.config.progress and distributed.is_main_process()), unit="batch")
        for step, batch in enumerate(bar):
            shard = batch.shard
            batch = batch.to(device, non_blocking=True)
            with autocast(device, trainer.config.precision, training=True):
                pred, routing = self.forward(batch)
            elements, mass = trainer.loss_fn.elementwise(pred.float(), trainer.normalize(batch.targets),
                                                         row_weights(trainer.weight_tables, batch.categories))
            counts = torch.zeros(0, device=device)
            if routing is not None:
                counts = routing.tokens_per_expert.float() * (0.0 if shard.padding else 1.0)
            stop = trainer.stop.signum
            flags = torch.tensor([stop == signal.SIGINT, stop == signal.SIGTERM], dtype=torch.float32, device=device)
            shared = distributed.all_reduce_sum(torch.cat([mass.sum(0).detach(), counts, flags]))
            if shared[-2:].sum() > 0:
                trainer.stop.signum = stop or (signal.SIGTERM if shared[-1] > 0 else signal.SIGINT)
                trainer.stop.check()
            column_den, counts = shared[:k], shared[k:k + counts.numel()]
            size = shard.global_samples
            loss = elements.sum() / column_den.sum().clamp_min(1e-30)  # this rank's piece of the global mean
            objective = loss
            if routing is not None and trainer.router_loss is not None:
                # The MoE losses of the global batch: this rank's routing with the global counts, weighted
                # by its share of the samples (the losses are means over samples).
                aux, parts = trainer.router_loss(Routing(routing.logits, routing.probs, counts))
                share = (0.0 if shard.padding else len(batch)) / size
                objective = loss + aux * share
                for name, value in parts.items():
                    router_sums[name] = router_sums.get(name, 0.0) + value * share * size
            trainer.apply_gradients(objective * self.world)
            step_objectives[step] = objective.detach()
            loss_sum += loss.detach() * size
            column_sums += torch.where(column_den > 0, elements.detach().sum(0) / column_den.clamp_min(1e-30),
                                       0.0) * size
            seen += size
        names = sorted(router_sums)
        totals = distributed.all_reduce_sum(torch.cat([loss_sum[None], column_sums,
                                                       torch.stack([router_sums[n] for n in names]) if names
                                                       else torch.zeros(0, device=device)]))
        totals = (totals / max(seen, 1)).tolist()
        router = dict(zip(names, totals[1 + k:]))
        check_finite(epoch, totals[0], router, step_objectives)  # global means: every rank stops together
        return totals[0], totals[1:1 + k], router

    def run_model(self, loader, device: torch.device, precision: str = "auto") -> ModelOutputs:
        """`run_model` over this rank's shares, gathered from every rank in the single-process order."""
        batches = (b for b in loader if not b.shard.padding)
        first = next(batches, None)
        local = None
        if first is not None:
            local = run_model(self.model, itertools.chain([first], batches), device, precision)
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
