"""`build_run`: from a `RunConfig` to everything a training run needs (data, model, loss, loaders, trainer).

`train()` builds its run here; so can a cross-validation fold or a benchmark (already prepared `data`,
e.g. one study shared by every fold). Under torchrun (a process group joined with
`aam.runtime.distributed.session`) every rank builds the same run, with its share of each global batch
in the loaders and a trainer that reduces across ranks (`aam.training.data_parallel`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from aam.config import RunConfig
from aam.data.dataset import make_loader
from aam.data.prepared import PreparedData, load_prepared
from aam.data.sharding import make_sharded_loader
from aam.data.split import sample_groups
from aam.evaluation.classes import ClassLevels
from aam.evaluation.metrics import best_metric_column
from aam.models import AAMRegressor
from aam.models.identity import vocabulary as asv_vocabulary
from aam.models.kernel import FITS
from aam.pretrain.encoder_file import encoder_vocabulary, load_encoder_weights
from aam.runtime import distributed
from aam.runtime.checkpoint import LAST_FILE, Checkpoint, set_rng_state
from aam.runtime.device import compute_dtype, resolve_device
from aam.training.data_parallel import DataParallel
from aam.training.param_groups import freeze_encoders
from aam.errors import UserError
from aam.models.layout import OutputLayout
from aam.training.linear_init import fit_start, kernel_rows
from aam.training.losses import LossPlan, RegressionLoss, plan_loss
from aam.training.output_loss import OutputLoss, class_weight_tables
from aam.training.reduction import SingleProcess
from aam.training.resume import check_resumable
from aam.training.router_loss import RouterLoss
from aam.training.trainer import Trainer, TrainerState
from aam.training.weights import category_weight_tables


@dataclass
class Run:
    """One training run, ready for `aam.training.loop.fit`."""

    config: RunConfig  # as given, with the model's data-dependent fields filled in (what checkpoints save)
    device: torch.device
    data: PreparedData
    model: AAMRegressor
    loss: OutputLoss
    router_loss: RouterLoss | None  # auxiliary losses of an MoE head; None without one
    train_loader: DataLoader
    val_loader: DataLoader
    trainer: Trainer
    progress: TrainerState  # epochs done, best so far and history: empty unless resumed


def build_run(config: RunConfig, device: torch.device | str | None = None, *,
              split: tuple[list[str], list[str]] | None = None, resume_from: Checkpoint | dict[str, Any] | None = None,
              data: PreparedData | None = None) -> Run:
    """Load and split the data, fill the data-dependent model fields, build model, loss, loaders and trainer.

    config: resolved here unless it is already (`RunConfig.resolve`).
    device: None = `config.train.device` ("auto": CUDA when present).
    split: (training sample IDs, validation sample IDs) instead of the seeded random split.
    resume_from: `last.pt` (a `Checkpoint`, or the dict `load_checkpoint` reads); its configuration must match
        (UserError naming the first setting that differs), and its split, weights, optimizer, scheduler,
        progress and RNG states are restored.
    data: data already prepared for this config (e.g. shared by several runs, split included; with
        `resume_from`, split as it was); None = load it.
    A UserError on any rank stops every rank (rank 0 raises it).
    """
    if data is not None and split is not None:
        raise ValueError("build_run: give `data` or a split (`split`), not both")
    if isinstance(resume_from, dict):
        resume_from = Checkpoint.from_dict(resume_from, LAST_FILE)
    if data is not None and resume_from is not None and (data.train_ids, data.val_ids) != tuple(resume_from.split):
        raise ValueError("build_run: `data` is not split as the run in `resume_from` was")
    return distributed.on_every_rank(lambda: _build(config, device, split, resume_from, data))


def _build(config: RunConfig, device: torch.device | str | None, split, resume_from, data) -> Run:
    config = config.resolve().with_defaults()
    best_metric_column(config.train.best_metric, config.data.target_columns)  # a bad --best-metric fails here
    device = distributed.rank_device(resolve_device(config.train.device) if device is None else torch.device(device))
    compute_dtype(device, config.train.precision, training=True)  # --precision bf16 on a CPU without it fails here
    plan = plan_loss(config.loss, config.data.target_columns)
    saved = None
    if resume_from is not None:
        saved = RunConfig.from_dict(resume_from.config)
        check_resumable(saved, config, resume_from.progress["epoch"])
        split = resume_from.split
    if data is None:
        data = load_prepared(config.data, config.train.seed, split)
    vocabulary = None
    # a new run's vocabulary: its training samples' frequent ASVs, and those of its pretrained encoder; a
    # resumed run restores it with the weights
    if config.model.asv_identity and resume_from is None:
        vocabulary = asv_vocabulary(data.study.counts[data.train_idx], data.train_set.tokens, config.model.asv_identity)
        pretrained = encoder_vocabulary(config.train.pretrained_encoder) if config.train.pretrained_encoder else None
        if pretrained is not None:
            vocabulary = torch.unique(torch.cat([vocabulary, pretrained]))
    linear = None  # the linear model's vocabulary, from the training samples; a resumed run restores it
    if config.model.asv_linear and resume_from is None:
        linear = asv_vocabulary(data.study.counts[data.train_idx], data.train_set.tokens, config.model.asv_linear)
    # a resumed run's vocabulary sizes are the checkpoint's, whichever way its configuration was given
    sizes = saved.model if saved is not None else config.model
    config = fill_model_fields(config, data, plan,
                               sizes.asv_vocabulary if vocabulary is None else vocabulary.numel(),
                               sizes.linear_vocabulary if linear is None else linear.numel(),
                               sizes.kernel_samples if linear is None else _kernel_samples(config, data))

    torch.manual_seed(config.train.seed)  # initialization; shuffles and ASV draws use (seed, epoch)
    model = AAMRegressor(config.model).to(device)
    if vocabulary is not None:
        model.asv_encoder.identity.set_vocabulary(vocabulary.to(device))
    if linear is not None:
        model.linear.set_vocabulary(linear.to(device))
        fit_start(model.linear, data.study.counts[data.train_idx], data.train_set.tokens, data.train_set.targets,
                  OutputLayout.of(config.model), data.scaler, config.loss.class_weights == "auto", config.train.seed,
                  sample_groups(data.study, config.data.group_column)[data.train_idx])
        if model.linear.kernel is not None and distributed.is_main_process():
            tqdm.write(kernel_summary(model.linear.kernel.kinds, config.data.target_columns,
                                      OutputLayout.of(config.model)))
    if config.train.pretrained_encoder and resume_from is None:
        load_encoder_weights(model, config.train.pretrained_encoder)
    if config.train.freeze_encoder:
        freeze_encoders(model)
    layout = OutputLayout.of(config.model)
    regression_plan = LossPlan(tuple(plan.targets[t] for t in layout.regression_targets), plan.quantiles)
    loss = OutputLoss(RegressionLoss(regression_plan.columns(), n_quantiles=plan.n_quantiles,
                                     use_kernels=config.model.use_kernels), layout,
                      class_weight_tables(config.loss.class_weights, layout, data.train_set.targets),
                      config.loss.label_smoothing, config.model.use_kernels)
    weights = category_weight_tables(config.loss.categorical_loss_weights, data.encoder, data.train_set.categories)
    pin = device.type == "cuda"
    if distributed.active():  # --batch-size is the global batch; each rank loads its share
        rank, world = distributed.rank(), distributed.world_size()
        train_loader = make_sharded_loader(data.train_set, config.train.batch_size, True, rank, world,
                                           config.train.seed, config.train.num_workers, pin)
        val_loader = make_sharded_loader(data.val_set, config.train.batch_size, False, rank, world,
                                         num_workers=config.train.num_workers, pin_memory=pin)
    else:
        train_loader = make_loader(data.train_set, config.train.batch_size, shuffle=True, seed=config.train.seed,
                                   num_workers=config.train.num_workers, pin_memory=pin)
        val_loader = make_loader(data.val_set, config.train.batch_size, shuffle=False,
                                 num_workers=config.train.num_workers, pin_memory=pin)
    router_loss = RouterLoss(config.loss.moe_balance_weight, config.loss.moe_router_z_weight) \
        if config.model.moe_experts else None
    reduction = DataParallel(model, device) if distributed.active() else SingleProcess()
    trainer = Trainer(model, loss, config.train, scaler=data.scaler, target_columns=config.data.target_columns,
                      quantiles=config.loss.quantiles, device=device, steps_per_epoch=len(train_loader),
                      weight_tables=weights, router_loss=router_loss, reduction=reduction,
                      classes=ClassLevels.of(config.data.target_columns, data.levels))
    progress = TrainerState()
    if resume_from is not None:
        model.load_state_dict(resume_from.model_state)
        trainer.load_state_dict(resume_from.trainer)
        progress = TrainerState(**resume_from.progress)
        set_rng_state(resume_from.rng)
    return Run(config=config, device=device, data=data, model=model, loss=loss, router_loss=router_loss,
               train_loader=train_loader, val_loader=val_loader, trainer=trainer, progress=progress)


def kernel_summary(kinds: list[int], target_columns, layout: OutputLayout) -> str:
    """One line: which fit each regression target's linear model on abundances holds (`kinds`: per output
    column of the linear model, regression targets first, an index into `aam.models.kernel.KINDS`)."""
    fits = [f"{target_columns[t]} by {FITS[kind]}" for t, kind in zip(layout.regression_targets, kinds)]
    return "model on abundances: " + ", ".join(fits)


def _kernel_samples(config: RunConfig, data: PreparedData) -> int:
    """How many training samples the kernel regressions of a new run's linear model hold: 0 without them
    (`--asv-kernel linear`, or no regression target)."""
    regression = any(not (data.levels and c in data.levels.columns) for c in config.data.target_columns)
    if config.model.asv_kernel != "auto" or not regression:
        return 0
    return len(kernel_rows(len(data.train_idx), config.train.seed))


def fill_model_fields(config: RunConfig, data: PreparedData, plan: LossPlan, vocabulary: int = 0,
                      linear_vocabulary: int = 0, kernel_samples: int = 0) -> RunConfig:
    """The run config with the model's data-dependent (`derived`) fields filled in; UserError for a setting
    the data's classification targets contradict."""
    targets = config.data.target_columns
    classes = tuple(len(data.levels.levels[c]) if data.levels and c in data.levels.columns else 0 for c in targets)
    classified = [c for c, k in zip(targets, classes) if k]
    named = [c for c in classified if c in (config.loss.loss_config or {})]
    if named:
        raise UserError(f"--loss-config names '{named[0]}', a classification target (its loss is cross-entropy; "
                        "see --class-weights and --label-smoothing)")
    if config.model.moe_experts and len(classified) == len(targets):
        raise UserError("--moe-experts mixes regression heads, and every target is classified "
                        f"({', '.join(classified)}); drop --moe-experts")
    cards = tuple(len(data.encoder.levels[c]) for c in data.encoder.columns) if data.encoder else ()
    routing = config.model.moe_routing
    routing_index = data.encoder.columns.index(routing) if config.model.moe_experts and routing != "learned" else -1
    best_metric_column(config.train.best_metric, targets, classified)
    return config.with_derived(max_bp=config.data.max_bp, n_targets=len(config.data.target_columns),
                               n_quantiles=plan.n_quantiles, category_cardinalities=cards,
                               moe_routing_index=routing_index, asv_vocabulary=vocabulary,
                               linear_vocabulary=linear_vocabulary, kernel_samples=kernel_samples,
                               n_classes=classes if classified else ())
