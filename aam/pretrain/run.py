"""`pretrain(config)`: from unlabeled tables to `encoder.pt`.

Like `aam train`: the output folder is checked and locked (rank 0 under torchrun), `config.json` is
written, then every epoch trains, recomputes the ASV BatchNorm statistics, scores each objective on the
held-out samples (the same hidden ASVs and nucleotides every epoch), writes `encoder.pt` when the
held-out loss improves, then `last.pt` and `history.tsv`. `--resume` continues from `last.pt` and ends
bitwise equal to an uninterrupted run on the CPU. On the CPU the run uses deterministic algorithms.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from aam.config import user_settings
from aam.errors import UserError
from aam.evaluation import outputs
from aam.pretrain.config import PretrainConfig
from aam.pretrain.encoder_file import ENCODER_FILE
from aam.pretrain.loop import PretrainRun, build_pretrain_run, fit_pretrain
from aam.pretrain.plots import plot_pretrain_losses
from aam.run_folder import FolderRules, run_folder
from aam.run_lock import LOCK_FILE
from aam.runtime import distributed
from aam.runtime.checkpoint import LAST_FILE, load_checkpoint
from aam.runtime.device import resolve_device
from aam.training.determinism import repeatable

FILES = ("config.json", "history.tsv", LAST_FILE, ENCODER_FILE)


def _clear(path: Path) -> None:
    for name in FILES:
        (path / name).unlink(missing_ok=True)
    shutil.rmtree(path / "plots", ignore_errors=True)


# a folder holding only config.json is a start that finished no epoch: a plain rerun may reuse it
PRETRAIN_FOLDER = FolderRules(
    advice="pass --resume to continue it, --overwrite to replace it, or choose another folder",
    what="a previous pretraining run", resume_file=LAST_FILE,
    reusable=lambda path: {p.name for p in path.iterdir()} <= {"config.json", LOCK_FILE},
    resume_hint=" (no epoch finished there: run the same command without --resume to start over)", clear=_clear)


@dataclass
class PretrainResult:
    output_dir: Path
    best_epoch: int
    epochs_run: int
    history: list[dict]
    interrupted_by: int | None = None

    def summary(self) -> str:
        if not self.history:
            return f"no epoch finished; nothing written to {self.output_dir}"
        best = self.history[self.best_epoch - 1]
        return (f"best epoch {self.best_epoch} of {self.epochs_run}: held-out loss {best['val_loss']:.4f}\n"
                f"encoder: {self.output_dir / ENCODER_FILE}")


def pretrain(config: PretrainConfig, *, resume: bool = False, overwrite: bool = False) -> PretrainResult:
    config = config.resolved()
    if not config.train.output_dir:
        raise UserError("give an output folder (--output-dir)")
    out = Path(config.train.output_dir)
    with contextlib.ExitStack() as held:
        with distributed.session(config.train.device):
            main = distributed.is_main_process()

            def claim_folder():
                held.enter_context(run_folder(out, "aam pretrain", rules=PRETRAIN_FOLDER, overwrite=overwrite,
                                              resume=resume))
                return load_checkpoint(out / LAST_FILE) if resume else None

            last = distributed.on_main_rank(claim_folder)
            if last is not None:
                check_same_run(PretrainConfig.from_dict(last["config"]), config)
            with repeatable(resolve_device(config.train.device)):
                run: PretrainRun = distributed.on_every_rank(lambda: build_pretrain_run(config, last))
                with run.stop.installed():
                    if main and last is None:
                        out.mkdir(parents=True, exist_ok=True)
                        outputs.write_json(out / "config.json", run.config.to_dict())
                    interrupted = fit_pretrain(run, out)
        state = run.progress
        if main and state.epoch == 0:
            (out / "config.json").unlink(missing_ok=True)
        elif main:
            plot_pretrain_losses(out / "plots", state.history)
        return PretrainResult(out, state.best_epoch, state.epoch, state.history, interrupted)


def check_same_run(saved: PretrainConfig, current: PretrainConfig) -> None:
    """--resume continues the same run: every setting but where it runs, how long and how it reports (the
    `resumable()` fields of `TrainConfig`). Both configurations are resolved."""
    for part in ("corpus", "model", "objectives", "train"):
        before, now = user_settings(getattr(saved, part)), user_settings(getattr(current, part))
        for name, value in before.items():
            if now.get(name) != value:
                raise UserError(f"--resume: --{name.replace('_', '-')} was {value!r} in the run being resumed, "
                                f"now {now.get(name)!r}; give the same settings (or only --output-dir)")


def resumed_config(output_dir: str | Path, **train_changes) -> PretrainConfig:
    """The configuration of the run in `output_dir` (its config.json), with the resumable settings changed."""
    path = Path(output_dir) / "config.json"
    if not path.is_file():
        raise UserError(f"--resume: no {path} (is {output_dir} an aam pretrain folder?)")
    config = PretrainConfig.from_dict(json.loads(path.read_text()))
    return dataclasses.replace(config, train=dataclasses.replace(config.train, **train_changes))
