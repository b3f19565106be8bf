"""`train(config)`: the whole training run, from files to a trained model and its reports.

Every epoch: train, validate, save `model.pt` when --best-metric improves, then `last.pt`
(weights, optimizer, scheduler, RNG states, progress), then history.tsv. `resume=True` continues
from last.pt and reproduces the uninterrupted run: the loaders shuffle from (seed, epoch) and the
global RNGs are restored, so epoch k+1 sees exactly what it would have seen.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from aam.config import RunConfig
from aam.data.dataset import make_loader
from aam.data.split import write_split
from aam.errors import UserError
from aam.models import AAMRegressor
from aam.training import outputs
from aam.training.checkpoint import BEST_FILE, LAST_FILE, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from aam.training.data import PreparedData, prepare_data
from aam.training.device import resolve_device
from aam.training.inference import load_model, run_model, to_predictions
from aam.training.losses import LossPlan, RegressionLoss, plan_loss
from aam.training.metrics import MOE_KEY, best_metric_column, metrics_table
from aam.training.moe_report import moe_metrics, report_column
from aam.training.router_loss import RouterLoss
from aam.training.trainer import Trainer, TrainerState, TrainingInterrupted, is_better
from aam.training.weights import category_weight_tables

# TrainConfig fields a resumed run may change: they do not alter the computation.
RESUMABLE_CHANGES = {"output_dir", "device", "num_workers", "progress"}


@dataclass
class TrainResult:
    output_dir: Path
    metrics: dict[str, dict]  # validation metrics of the best model, as in metrics.json (MoE: + "moe")
    best_epoch: int
    epochs_run: int
    plots: list[Path]
    interrupted_by: int | None = None  # signal number when SIGINT/SIGTERM stopped the run


def check_output_dir(path: Path, resume: bool, overwrite: bool) -> None:
    """Never overwrite a previous run silently: an existing non-empty folder needs --resume or --overwrite."""
    if resume:
        if not (path / LAST_FILE).is_file():
            raise UserError(f"--resume: no {LAST_FILE} in {path} to resume from")
        return
    if path.exists() and not path.is_dir():
        raise UserError(f"--output-dir {path} exists and is not a folder")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise UserError(f"--output-dir {path} is not empty (a previous run?): pass --resume to continue it, "
                            "--overwrite to replace it, or choose another folder")
        for name in outputs.RUN_FILES:
            (path / name).unlink(missing_ok=True)
        shutil.rmtree(path / "plots", ignore_errors=True)


def check_resumable(saved: RunConfig, current: RunConfig) -> None:
    """UserError naming the first setting that differs from the checkpoint's run."""
    a, b = saved.to_dict(), current.to_dict()
    for part in ("data", "model", "loss", "train"):
        for key, value in a[part].items():
            if part == "train" and key in RESUMABLE_CHANGES:
                continue
            if part == "model" and key in ("max_bp", "n_targets", "n_quantiles", "quantiles",
                                           "category_cardinalities", "moe_routing_index"):
                continue  # derived from the data, not set by the user
            if b[part].get(key) != value:
                raise UserError(f"--resume: the checkpoint was trained with {part}.{key} = {value!r}, "
                                f"this command gives {b[part].get(key)!r}")


def _model_config(config: RunConfig, data: PreparedData, plan: LossPlan) -> RunConfig:
    """The run config with the model's data-dependent fields filled in."""
    cards = tuple(len(data.encoder.levels[c]) for c in data.encoder.columns) if data.encoder else ()
    routing = config.model.moe_routing
    routing_index = data.encoder.columns.index(routing) if config.model.moe_experts and routing != "learned" else -1
    model = dataclasses.replace(config.model, max_bp=config.data.max_bp, n_targets=len(config.data.target_columns),
                                n_quantiles=plan.n_quantiles, quantiles=plan.quantiles,
                                category_cardinalities=cards, moe_routing_index=routing_index)
    return dataclasses.replace(config, model=model)


def train(config: RunConfig, *, resume: bool = False, overwrite: bool = False,
          on_epoch_end: Callable[[int, dict], None] | None = None,
          split: tuple[list[str], list[str]] | None = None) -> TrainResult:
    """Train, validate and write every output to `config.train.output_dir` (see module doc).

    `split` = (training sample IDs, validation sample IDs) replaces the --test-size split; samples in
    neither list are not used at all (cross-validation keeps its test fold out this way)."""
    config = config.validate().resolved()
    out = Path(config.train.output_dir or "")
    if not config.train.output_dir:
        raise UserError("give an output folder (--output-dir)")
    check_output_dir(out, resume, overwrite)
    device = resolve_device(config.train.device)
    target_columns = config.data.target_columns
    metric_column, higher_better = best_metric_column(config.train.best_metric, target_columns)
    plan = plan_loss(config.loss, target_columns)

    last = None
    if resume:
        last = load_checkpoint(out / LAST_FILE)
        check_resumable(RunConfig.from_dict(last["config"]), config)
    data = prepare_data(config.data, config.train.seed, last["split"] if last else split)
    config = _model_config(config, data, plan)

    torch.manual_seed(config.train.seed)  # initialization; shuffles and ASV draws use (seed, epoch)
    model = AAMRegressor(config.model, fused_kernels=config.train.fused_kernels).to(device)
    loss_fn = RegressionLoss(plan.columns(), plan.n_quantiles, config.train.fused_kernels)
    weights = category_weight_tables(config.loss.categorical_loss_weights, data.encoder,
                                     data.train_set.categories)
    train_loader = make_loader(data.train_set, config.train.batch_size, shuffle=True, seed=config.train.seed,
                               num_workers=config.train.num_workers, pin_memory=device.type == "cuda")
    val_loader = make_loader(data.val_set, config.train.batch_size, shuffle=False,
                             num_workers=config.train.num_workers, pin_memory=device.type == "cuda")
    router_loss = RouterLoss(config.loss.moe_balance_weight, config.loss.moe_router_z_weight) \
        if config.model.moe_experts else None
    trainer = Trainer(model, loss_fn, config.train, data.scaler, target_columns, device, len(train_loader), weights,
                      router_loss)
    state = TrainerState()
    if last is not None:
        model.load_state_dict(last["model_state"])
        trainer.load_state_dict(last["trainer"])
        state = TrainerState(**last["progress"])
        set_rng_state(last["rng"])
    else:
        out.mkdir(parents=True, exist_ok=True)
        outputs.write_json(out / "config.json", config.to_dict())
        write_split(out, data.study, data.train_idx, data.val_idx)

    common = {"config": config.to_dict(), "target_scaler": data.scaler.to_dict(),
              "category_encoder": data.encoder.to_dict() if data.encoder else None}
    interrupted = None
    with trainer.stop.installed():
        try:
            while state.epoch < config.train.epochs and not _patience_exhausted(state, config.train.patience):
                epoch = state.epoch + 1
                started = time.perf_counter()
                data.train_set.set_epoch(epoch)
                result = trainer.run_epoch(train_loader, val_loader, epoch)
                row = outputs.history_row(epoch, result, trainer.lr, time.perf_counter() - started, target_columns,
                                          config.model.n_quantiles)
                state.history.append(row)
                state.epoch = epoch
                if is_better(row[metric_column], state.best_value, higher_better):
                    state.best_value, state.best_epoch, state.bad_epochs = row[metric_column], epoch, 0
                    save_checkpoint(out / BEST_FILE, {**common, "model_state": model.state_dict(), "epoch": epoch,
                                                      "metrics": result.metrics})
                else:
                    state.bad_epochs += 1
                save_checkpoint(out / LAST_FILE, {
                    **common, "model_state": model.state_dict(), "epoch": epoch, "trainer": trainer.state_dict(),
                    "progress": dataclasses.asdict(state), "rng": rng_state(),
                    "split": (data.train_ids, data.val_ids)})
                outputs.write_history(out / "history.tsv", state.history)
                tqdm.write(_summary(row, config, metric_column, state))
                if on_epoch_end is not None:
                    on_epoch_end(epoch, row)
        except TrainingInterrupted as stop:
            interrupted = stop.signum
            tqdm.write(f"stopped by {stop}: the epoch in progress was dropped; {out / LAST_FILE} holds epoch "
                       f"{state.epoch} (continue with --resume)")
    if state.epoch == 0:
        return TrainResult(out, {}, 0, 0, [], interrupted)
    metrics, plots = write_reports(out, data, state.history, device)
    return TrainResult(out, metrics, state.best_epoch, state.epoch, plots, interrupted)


def resume_config(output_dir: str | Path, **train_changes) -> RunConfig:
    """The configuration of the run in `output_dir` (from last.pt), with allowed TrainConfig changes."""
    unknown = set(train_changes) - RESUMABLE_CHANGES
    if unknown:
        raise UserError(f"--resume cannot change {', '.join(sorted(unknown))}")
    last = load_checkpoint(Path(output_dir) / LAST_FILE)
    saved = RunConfig.from_dict(last["config"])
    train = dataclasses.replace(saved.train, output_dir=str(output_dir), **train_changes)
    return dataclasses.replace(saved, train=train)


def _patience_exhausted(state: TrainerState, patience: int) -> bool:
    return patience > 0 and state.bad_epochs >= patience


def write_reports(out: Path, data: PreparedData, history: list[dict], device: torch.device):
    """val_predictions.tsv, metrics.json and plots from the best model (model.pt as saved)."""
    loaded = load_model(out / BEST_FILE, device)
    columns, quantiles = loaded.config.data.target_columns, loaded.config.model.quantiles
    loader = make_loader(data.val_set, loaded.config.train.batch_size, shuffle=False)
    model_outputs = run_model(loaded.model, loader, device)
    p = to_predictions(model_outputs, loaded.scaler, quantiles)
    outputs.write_tsv(out / "val_predictions.tsv", p.frame(columns, quantiles, with_observed=True))
    metrics = metrics_table(p.point, p.observed, columns, p.quantile_values, quantiles)
    plots = outputs.plot_predictions(out / "plots", p, columns, quantiles)
    if quantiles:
        plots.append(outputs.plot_calibration(out / "plots", metrics, quantiles))
    plots.append(outputs.plot_losses(out / "plots", history))
    if model_outputs.routing is not None:
        column = report_column(loaded.config.model, loaded.config.data.categorical_columns)
        codes, levels = None, ()
        if column is not None:
            codes = model_outputs.categories[:, data.encoder.columns.index(column)]
            levels = data.encoder.levels[column]
        metrics[MOE_KEY] = moe_metrics(model_outputs.routing, loaded.config.model.moe_top_k, codes, levels)
        plots.append(outputs.plot_moe_utilization(out / "plots", metrics[MOE_KEY], column))
    outputs.write_json(out / "metrics.json", metrics)
    return metrics, plots


def _summary(row: dict, config: RunConfig, metric_column: str, state: TrainerState) -> str:
    parts = [f"epoch {row['epoch']}/{config.train.epochs}", f"train_loss {row['train_loss']:.4f}",
             f"val_loss {row['val_loss']:.4f}"]
    parts += [f"val {t}_mae {row[f'{t}_mae']:.4g}" for t in config.data.target_columns]
    parts.append(f"best {metric_column} {state.best_value:.4g} (epoch {state.best_epoch})")
    parts.append(f"{row['seconds']:.1f}s")
    return "  ".join(parts)
