"""The pretraining run: built from a `PretrainConfig`, trained epoch by epoch with its checkpoints."""

from __future__ import annotations

import dataclasses
import math
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from aam.data.dataset import AAMDataset, make_loader
from aam.data.split import positions_of
from aam.errors import UserError
from aam.evaluation import outputs
from aam.models.identity import vocabulary as asv_vocabulary
from aam.models.predictor import abundance_input
from aam.pretrain.batches import PretrainBatch, PretrainCollate
from aam.pretrain.config import PretrainConfig
from aam.pretrain.corpus import load_corpus, split_corpus
from aam.pretrain.distances import BatchDistances
from aam.pretrain.encoder_file import ENCODER_FILE, save_encoder
from aam.pretrain.masking import hidden_asvs, masked_nucleotides, step_generator
from aam.pretrain.model import PretrainModel
from aam.pretrain.objectives import OBJECTIVES, StepInputs, step_losses
from aam.pretrain.parallel import gather_rows, local_rows, sum_gradients
from aam.runtime import distributed
from aam.runtime.checkpoint import LAST_FILE, rng_state, save_checkpoint, set_rng_state
from aam.runtime.device import autocast, compute_dtype, resolve_device
from aam.training.norm_statistics import recompute_norm_statistics
from aam.training.schedule import default_warmup_steps, warmup_cosine
from aam.training.trainer import StopFlag, TrainerState, TrainingInterrupted, is_better

STATE_KIND = "aam-pretrain-state"


@dataclass
class PretrainRun:
    config: PretrainConfig
    device: torch.device
    model: PretrainModel
    optimizer: torch.optim.Optimizer
    scheduler: Any
    train_loader: DataLoader
    val_loader: DataLoader
    split: tuple[list[str], list[str]]
    objectives: tuple[str, ...]  # the objectives this run trains, in OBJECTIVES order
    corpus: dict[str, Any]  # what encoder.pt records of the corpus
    stop: StopFlag = field(default_factory=StopFlag)
    progress: TrainerState = field(default_factory=TrainerState)


def active_objectives(config: PretrainConfig) -> tuple[str, ...]:
    o = config.objectives
    on = {"presence": o.mask_weight > 0, "abundance": o.mask_weight > 0,
          "distance": o.distance != "none" and o.distance_weight > 0,
          "nucleotide": config.model.asv_layers > 0 and o.nucleotide_weight > 0}
    return tuple(name for name in OBJECTIVES if on[name])


def build_pretrain_run(config: PretrainConfig, last: dict[str, Any] | None) -> PretrainRun:
    c, t = config.corpus, config.train
    device = distributed.rank_device(resolve_device(t.device))
    compute_dtype(device, t.precision, training=True)  # --precision bf16 on a CPU without it fails here
    study, origins = load_corpus(c.tables, c.sequences, c.max_bp)
    if last is None:
        train_idx, val_idx = split_corpus(study.n_samples, c.validation_fraction, t.seed)
    else:
        train_ids, val_ids = last["split"]
        train_idx, val_idx = positions_of(study, train_ids, "train split"), positions_of(study, val_ids, "val split")
    objectives = active_objectives(config)
    distances = None
    if "distance" in objectives:
        distances = BatchDistances(config.objectives.distance_metric(c.tree), c.tree, origins, study.sequences)
    options = dict(max_bp=c.max_bp, token_limit=c.token_limit, seed=t.seed)
    train_set = AAMDataset(study, train_idx, train=True, **options)
    val_set = AAMDataset(study, val_idx, train=False, **options)
    pin = device.type == "cuda"
    train_loader = make_loader(train_set, t.batch_size, shuffle=True, seed=t.seed, num_workers=t.num_workers,
                               pin_memory=pin, collate_fn=PretrainCollate(train_set, study.counts, distances))
    val_loader = make_loader(val_set, t.batch_size, shuffle=False, num_workers=t.num_workers, pin_memory=pin,
                             collate_fn=PretrainCollate(val_set, study.counts, distances))
    vocabulary = None
    if config.model.asv_identity:
        vocabulary = asv_vocabulary(study.counts[train_idx], train_set.tokens, config.model.asv_identity)
        config = dataclasses.replace(config, model=dataclasses.replace(config.model,
                                                                       asv_vocabulary=vocabulary.numel()))
    torch.manual_seed(t.seed)
    model = PretrainModel(config.model).to(device)
    if vocabulary is not None:
        model.asv_encoder.identity.set_vocabulary(vocabulary.to(device))
    optimizer = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay,
                                  fused=True if device.type == "cpu" else None)
    total = max(1, t.epochs * len(train_loader))
    warmup = default_warmup_steps(total) if t.warmup_steps is None else t.warmup_steps
    scheduler = warmup_cosine(optimizer, warmup, total)
    corpus = {"tables": [Path(table).name for table in c.tables], "samples": study.n_samples,
              "asvs": len(study.sequences),
              "distance": config.objectives.distance_metric(c.tree) if "distance" in objectives else None}
    run = PretrainRun(config, device, model, optimizer, scheduler, train_loader, val_loader,
                      (train_set.sample_ids, val_set.sample_ids), objectives, corpus)
    if last is not None:
        model.load_state_dict(last["model_state"])
        optimizer.load_state_dict(last["optimizer"])
        scheduler.load_state_dict(last["scheduler"])
        run.progress = TrainerState(**last["progress"])
        set_rng_state(last["rng"])
    return run


def step_inputs(run: PretrainRun, item: PretrainBatch, generator: torch.Generator) -> StepInputs:
    batch = item.batch.to(run.device, non_blocking=True)
    o = run.config.objectives
    hidden = torch.zeros_like(batch.asv_mask)
    if "presence" in run.objectives:
        hidden = hidden_asvs(batch.asv_mask, o.mask_fraction, generator)
    tokens, targets = batch.asv_tokens, None
    if "nucleotide" in run.objectives:
        tokens, targets = masked_nucleotides(batch.asv_tokens, o.nucleotide_mask_fraction, generator)
    distances = item.distances.to(run.device) if item.distances is not None else None
    return StepInputs(tokens, batch.asv_index, batch.asv_mask, abundance_input(run.config.model.abundance, batch),
                      hidden, distances, targets)


def weighted(run: PretrainRun, losses: dict[str, torch.Tensor]) -> torch.Tensor:
    o = run.config.objectives
    weight = {"presence": o.mask_weight, "abundance": o.mask_weight, "distance": o.distance_weight,
              "nucleotide": o.nucleotide_weight}
    return sum(weight[name] * value for name, value in losses.items())


def train_epoch(run: PretrainRun, epoch: int) -> dict[str, float]:
    """One pass over the training samples; the epoch's mean of each objective and of the weighted total."""
    model, t = run.model, run.config.train
    model.train()
    sums = torch.zeros(len(run.objectives) + 1, device=run.device)
    world = distributed.world_size()
    bar = tqdm(run.train_loader, desc=f"epoch {epoch}/{t.epochs}", leave=False, file=sys.stderr, unit="batch",
               disable=not (t.progress and distributed.is_main_process()))
    steps = 0
    for step, item in enumerate(bar):
        inputs = step_inputs(run, item, step_generator(t.seed, epoch, step))
        n = inputs.asv_index.shape[0]
        with autocast(run.device, t.precision, training=True):
            losses = step_losses(model, inputs, local_rows(n), lambda x: gather_rows(x, n), world,
                                 "presence" in run.objectives)
        objective = weighted(run, losses)
        run.optimizer.zero_grad(set_to_none=True)
        objective.backward()
        sum_gradients(model.parameters())
        if t.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.max_grad_norm)
        run.optimizer.step()
        run.scheduler.step()
        sums += torch.stack([objective.detach(), *(losses[k].detach() for k in run.objectives)])
        steps += 1
        check_stop(run.stop)
    sums = distributed.all_reduce_sum(sums) / max(steps, 1)
    return dict(zip(("loss", *run.objectives), sums.tolist()))


def check_stop(stop: StopFlag) -> None:
    """A signal on any process stops every process after the same step."""
    if distributed.active():
        flags = torch.tensor([stop.signum == signal.SIGINT, stop.signum == signal.SIGTERM], dtype=torch.float32)
        flags = distributed.all_reduce_sum(flags)
        if flags.sum() > 0 and stop.signum is None:
            stop.signum = signal.SIGTERM if flags[1] > 0 else signal.SIGINT
    stop.check()


@torch.no_grad()
def held_out_losses(run: PretrainRun) -> dict[str, float]:
    """Each objective on the held-out samples, with the same draws every epoch; the mean over batches
    weighted by their samples. Every process computes all of it."""
    model, t = run.model, run.config.train
    model.eval()
    sums = torch.zeros(len(run.objectives) + 1, device=run.device)
    seen = 0
    for step, item in enumerate(run.val_loader):
        inputs = step_inputs(run, item, step_generator(t.seed, 0, step))
        n = inputs.asv_index.shape[0]
        losses = step_losses(model, inputs, slice(0, n), lambda x: x, 1, "presence" in run.objectives)
        sums += n * torch.stack([weighted(run, losses), *(losses[k] for k in run.objectives)])
        seen += n
    return dict(zip(("loss", *run.objectives), (sums / max(seen, 1)).tolist()))


def fit_pretrain(run: PretrainRun, out: Path) -> int | None:
    """Train until the epochs or the patience run out; the number of the signal that stopped it, or None."""
    t, state, main = run.config.train, run.progress, distributed.is_main_process()
    try:
        while state.epoch < t.epochs and not (t.patience > 0 and state.bad_epochs >= t.patience):
            epoch = state.epoch + 1
            started = time.perf_counter()
            run.train_loader.dataset.set_epoch(epoch)
            train = train_epoch(run, epoch)
            if not math.isfinite(train["loss"]):
                raise UserError(f"pretraining loss became {train['loss']} in epoch {epoch}: stopped; lower --lr "
                                f"(the last finished epoch is in {out / LAST_FILE})")
            recompute_norm_statistics(run.model, (item.batch for item in run.train_loader), run.device,
                                      t.norm_batches)
            val = held_out_losses(run)
            row = {"epoch": epoch, **{f"train_{k}": v for k, v in train.items()},
                   **{f"val_{k}": v for k, v in val.items()}, "lr": run.optimizer.param_groups[0]["lr"],
                   "seconds": round(time.perf_counter() - started, 3)}
            state.history.append(row)
            state.epoch = epoch
            if is_better(val["loss"], state.best_value, higher_is_better=False):
                state.best_value, state.best_epoch, state.bad_epochs = val["loss"], epoch, 0
                if main:
                    save_encoder(out / ENCODER_FILE, run.config.model, run.model.encoder_state(),
                                 {"pretrain_config": run.config.to_dict(), "corpus": run.corpus, "epoch": epoch,
                                  "held_out": val})
            else:
                state.bad_epochs += 1
            if main:
                save_checkpoint(out / LAST_FILE, {
                    "kind": STATE_KIND, "config": run.config.to_dict(), "model_state": run.model.state_dict(),
                    "optimizer": run.optimizer.state_dict(), "scheduler": run.scheduler.state_dict(),
                    "progress": dataclasses.asdict(state), "rng": rng_state(), "split": run.split})
                outputs.write_history(out / "history.tsv", state.history)
                tqdm.write(f"epoch {epoch}/{t.epochs}  train_loss {train['loss']:.4f}  val_loss {val['loss']:.4f}  "
                           + "  ".join(f"val_{k} {val[k]:.4f}" for k in run.objectives)
                           + f"  {row['seconds']:.1f}s")
    except TrainingInterrupted as stop:
        if main:
            tqdm.write(f"stopped by {stop}: the epoch in progress was dropped; {out / LAST_FILE} holds epoch "
                       f"{state.epoch} (continue with --resume)" if state.epoch else
                       f"stopped by {stop} before the first epoch ended: nothing was saved")
        return stop.signum
    return None
