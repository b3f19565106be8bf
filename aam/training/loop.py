"""The epoch loop of a built run, with its checkpoints.

Every epoch: train, validate (with --ema-decay, the weight average), save `model.pt` when --best-metric
improves, then `last.pt`
(weights, optimizer, scheduler, RNG states, progress, split), then history.tsv. A run resumed
from last.pt reproduces the uninterrupted one: the loaders shuffle from (seed, epoch) and the
global RNGs are restored, so epoch k+1 sees exactly what it would have seen. In a data-parallel
run every rank trains and validates (they hold the same weights and metrics), rank 0 alone writes and prints.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from tqdm.auto import tqdm

from aam.evaluation import outputs
from aam.evaluation.metrics import best_metric_column
from aam.paths import absolute_data_paths
from aam.runtime import distributed
from aam.runtime.checkpoint import BEST_FILE, LAST_FILE, Checkpoint, rng_state
from aam.training.build import Run
from aam.training.trainer import TrainerState, TrainingInterrupted, is_better


def fit(run: Run, out: Path, on_epoch_end: Callable[[int, dict], None] | None = None) -> int | None:
    """Train `run` until its epochs or patience are used up, checkpointing into `out`.

    Updates `run.progress`; returns the number of the signal that stopped the run (SIGINT/SIGTERM),
    or None when it ran to its end.
    """
    config, data, model, trainer, state = run.config, run.data, run.model, run.trainer, run.progress
    target_columns = config.data.target_columns
    class_targets = [c for c, k in zip(target_columns, config.model.n_classes) if k]
    metric_column, higher_better = best_metric_column(config.train.best_metric, target_columns, class_targets)
    common = dict(config=absolute_data_paths(config).to_dict(), target_scaler=data.scaler.to_dict(),
                  category_encoder=data.encoder.to_dict() if data.encoder else None,
                  target_levels=data.levels.to_dict() if data.levels else None)
    main = distributed.is_main_process()
    with trainer.stop.installed():
        try:
            while state.epoch < config.train.epochs and not patience_exhausted(state, config.train.patience):
                epoch = state.epoch + 1
                started = time.perf_counter()
                data.train_set.set_epoch(epoch)
                result = trainer.run_epoch(run.train_loader, run.val_loader, epoch)
                row = outputs.history_row(epoch, result, trainer.lr, time.perf_counter() - started, target_columns,
                                          run.loss.column_targets)
                state.history.append(row)
                state.epoch = epoch
                if is_better(row[metric_column], state.best_value, higher_better):
                    state.best_value, state.best_epoch, state.bad_epochs = row[metric_column], epoch, 0
                    if main:
                        Checkpoint(**common, model_state=model.state_dict(), epoch=epoch,
                                   metrics=result.metrics).save(out / BEST_FILE)
                else:
                    state.bad_epochs += 1
                trainer.training_weights()
                if main:
                    Checkpoint(**common, model_state=model.state_dict(), epoch=epoch, trainer=trainer.state_dict(),
                               progress=dataclasses.asdict(state), rng=rng_state(),
                               split=(data.train_ids, data.val_ids)).save(out / LAST_FILE)
                    outputs.write_history(out / "history.tsv", state.history)
                    tqdm.write(epoch_summary(row, config.train.epochs, target_columns, metric_column, state))
                if on_epoch_end is not None:
                    on_epoch_end(epoch, row)
        except TrainingInterrupted as stop:
            if main and state.epoch == 0:
                tqdm.write(f"stopped by {stop} before the first epoch ended: nothing was saved; run the same "
                           "command again to start over")
            elif main:
                tqdm.write(f"stopped by {stop}: the epoch in progress was dropped; {out / LAST_FILE} holds epoch "
                           f"{state.epoch} (continue with --resume)")
            return stop.signum
    return None


def patience_exhausted(state: TrainerState, patience: int) -> bool:
    return patience > 0 and state.bad_epochs >= patience


def epoch_summary(row: dict, epochs: int, target_columns, metric_column: str, state: TrainerState) -> str:
    parts = [f"epoch {row['epoch']}/{epochs}", f"train_loss {row['train_loss']:.4f}",
             f"val_loss {row['val_loss']:.4f}"]
    for t in target_columns:
        metric = "mae" if f"{t}_mae" in row else "log_loss"  # a classification target: log loss
        parts.append(f"val {t}_{metric} {row[f'{t}_{metric}']:.4g}")
    parts.append(f"best {metric_column} {state.best_value:.4g} (epoch {state.best_epoch})")
    parts.append(f"{row['seconds']:.1f}s")
    return "  ".join(parts)
