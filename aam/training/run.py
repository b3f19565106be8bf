"""`train(config)`: the whole training run, from files to a trained model and its reports.

Claim the output folder (`aam.run_folder.run_folder`: writable, locked, then its contents checked),
build the run (`build_run`), then `train_into` it: the start files, training with checkpoints
(`loop.fit`) and the reports of the best model (`aam.evaluation.reports`); a cross-validation fold is
trained by `train_into` too. `resume=True` continues from last.pt. Under torchrun every process trains
(`aam.runtime.distributed`); rank 0 checks, locks and writes the output folder and reads last.pt for all
of them, so the other ranks need the data files but not the folder. On the CPU the run uses deterministic algorithms (`determinism.repeatable`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from aam.config import RunConfig
from aam.data.split import write_split
from aam.errors import UserError
from aam.evaluation import outputs
from aam.evaluation.metrics import format_metrics
from aam.evaluation.reports import write_reports
from aam.paths import absolute_data_paths
from aam.run_folder import run_folder
from aam.runtime import distributed
from aam.runtime.checkpoint import BEST_FILE, LAST_FILE, Checkpoint
from aam.runtime.device import resolve_device
from aam.training.build import Run, build_run
from aam.training.determinism import repeatable
from aam.training.loop import fit
from aam.training.output_folder import TRAIN_FOLDER, remove_start_files
from aam.training.trainer import NonFiniteLoss


@dataclass
class TrainResult:
    output_dir: Path
    metrics: dict[str, dict]  # validation metrics of the best model, as in metrics.json (MoE: + "moe")
    best_epoch: int
    epochs_run: int
    plots: list[Path]
    interrupted_by: int | None = None  # signal number when SIGINT/SIGTERM stopped the run

    def summary(self) -> str:
        """What `aam train` and `aam demo` print at the end of a run."""
        return "\n".join([f"best epoch {self.best_epoch} of {self.epochs_run}; metrics on the validation samples that "
                          "chose this epoch (optimistic: compare methods with `aam cv`):",
                          *format_metrics(self.metrics), f"model: {self.output_dir / BEST_FILE}",
                          "plots: " + ", ".join(str(p) for p in self.plots)])


def train(config: RunConfig, *, resume: bool = False, overwrite: bool = False,
          on_epoch_end: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train, validate and write every output to `config.train.output_dir` (see module doc), holding
    the folder's lock throughout: a second command on the same folder is refused. `config` is resolved
    here unless it is already (`RunConfig.resolve`)."""
    config = config.resolve()
    if not config.train.output_dir:
        raise UserError("give an output folder (--output-dir)")
    out = Path(config.train.output_dir)
    with contextlib.ExitStack() as held:  # the folder's lock, until the reports are written
        with distributed.session(config.train.device):

            def claim_folder():
                held.enter_context(run_folder(out, "aam train", rules=TRAIN_FOLDER, overwrite=overwrite,
                                              resume=resume))
                return Checkpoint.load(out / LAST_FILE) if resume else None

            last = distributed.on_main_rank(claim_folder)  # rank 0 alone locks: the ranks of one run never wait
            with repeatable(resolve_device(config.train.device)):
                run = build_run(config, resume_from=last)
            try:
                return train_into(out, run, on_epoch_end)
            except NonFiniteLoss as bad:
                raise _non_finite_error(bad, out, run.progress.epoch, run.progress.best_epoch) from None


def train_into(out: Path, run: Run, on_epoch_end: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train the built `run` into the claimed folder `out`: a new run writes its start files (a resumed one
    says where it goes on), `fit` trains with checkpoints (deterministic algorithms on the CPU), then the
    reports of the best model are written. A run stopped before its first epoch ended removes its start
    files again. Under torchrun rank 0 alone writes. Raises NonFiniteLoss (start files removed when no
    epoch was saved)."""
    state, main = run.progress, distributed.is_main_process()
    resumed = state.epoch > 0  # only a checkpoint's run starts with epochs done
    # from the first file written on, SIGINT/SIGTERM only set the flag that fit() stops on, so a run stopped
    # before its first checkpoint still removes what it wrote
    with run.trainer.stop.installed(), repeatable(run.device):
        if main:
            _start_outputs(run, out, resumed)
        try:
            interrupted = fit(run, out, on_epoch_end)
        except NonFiniteLoss:
            if main and state.epoch == 0:
                remove_start_files(out)
            raise
    if state.epoch == 0 or not main:
        if main:
            remove_start_files(out)
        return TrainResult(out, metrics={}, best_epoch=state.best_epoch, epochs_run=state.epoch, plots=[],
                           interrupted_by=interrupted)
    metrics, plots = write_reports(out, run.data, state.history, run.device)
    return TrainResult(out, metrics=metrics, best_epoch=state.best_epoch, epochs_run=state.epoch, plots=plots,
                       interrupted_by=interrupted)


def _start_outputs(run: Run, out: Path, resume: bool) -> None:
    """A new run writes its configuration (absolute paths) and split; a resumed one says where it goes on."""
    state, epochs = run.progress, run.config.train.epochs
    if resume:
        tqdm.write(f"resuming {out}: {state.epoch} of {epochs} epochs done, continuing with epoch {state.epoch + 1}"
                   if state.epoch < epochs else f"resuming {out}: all {epochs} epochs done; rewriting the reports")
        return
    out.mkdir(parents=True, exist_ok=True)
    outputs.write_json(out / "config.json", absolute_data_paths(run.config).to_dict())
    write_split(out, run.data.study, run.data.train_idx, run.data.val_idx)


def _non_finite_error(bad: NonFiniteLoss, out: Path, epoch: int, best_epoch: int) -> UserError:
    """What the user reads when the loss stopped being finite (every rank stops at the same epoch)."""
    advice = "lower --lr or clip gradients (--max-grad-norm)"
    if epoch == 0:
        message = f"{bad}: stopped, nothing was saved; {advice} and run again"
    else:
        message = (f"{bad}: stopped; {out / BEST_FILE} and {out / LAST_FILE} keep epochs {best_epoch} and {epoch}; "
                   f"{advice} and start again (--overwrite)")
    if not distributed.is_main_process():
        return distributed.ReportedElsewhere(message)
    return UserError(message)
