"""`train(config)`: the whole training run, from files to a trained model and its reports.

Check the output folder, build the run (`build_run`), train it with checkpoints (`loop.fit`), then
write the reports of the best model (`aam.evaluation.reports`). `resume=True` continues from last.pt.
Under torchrun every process trains (`aam.runtime.distributed`); rank 0 checks and writes the output
folder and reads last.pt for all of them, so the other ranks need the data files but not the folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aam.config import RunConfig
from aam.data.split import write_split
from aam.errors import UserError
from aam.evaluation import outputs
from aam.evaluation.metrics import format_metrics
from aam.evaluation.reports import write_reports
from aam.runtime import distributed
from aam.runtime.checkpoint import BEST_FILE, LAST_FILE, load_checkpoint
from aam.training.build import build_run
from aam.training.loop import fit


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


def train(config: RunConfig, *, resume: bool = False, overwrite: bool = False,
          on_epoch_end: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train, validate and write every output to `config.train.output_dir` (see module doc)."""
    config.validate()
    out = Path(config.train.output_dir or "")
    if not config.train.output_dir:
        raise UserError("give an output folder (--output-dir)")
    with distributed.session(config.train.device):
        last = distributed.on_main_rank(
            lambda: check_output_dir(out, resume, overwrite) or (load_checkpoint(out / LAST_FILE) if resume else None))
        run = build_run(config, resume_from=last)
        if not resume and distributed.is_main_process():
            out.mkdir(parents=True, exist_ok=True)
            outputs.write_json(out / "config.json", run.config.to_dict())
            write_split(out, run.data.study, run.data.train_idx, run.data.val_idx)
        interrupted = fit(run, out, on_epoch_end)
    state = run.progress
    if state.epoch == 0 or not distributed.is_main_process():
        return TrainResult(out, metrics={}, best_epoch=state.best_epoch, epochs_run=state.epoch, plots=[],
                           interrupted_by=interrupted)
    metrics, plots = write_reports(out, run.data, state.history, run.device)
    return TrainResult(out, metrics=metrics, best_epoch=state.best_epoch, epochs_run=state.epoch, plots=plots,
                       interrupted_by=interrupted)
