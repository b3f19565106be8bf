"""The output folder of a training run: what may be reused, replaced or resumed.

A folder holding only what a run writes before its first epoch ends (`START_FILES`, no checkpoint) is
an unfinished start that a plain rerun may reuse; anything more is a previous run, which needs
--resume or --overwrite.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from aam.data.split import TRAIN_FILE, VAL_FILE
from aam.errors import UserError
from aam.evaluation import outputs
from aam.run_lock import LOCK_FILE
from aam.runtime.checkpoint import LAST_FILE

START_FILES = {"config.json", TRAIN_FILE, VAL_FILE, LOCK_FILE}


def check_output_dir(path: Path, resume: bool, overwrite: bool) -> None:
    """Never overwrite a previous run silently: an existing non-empty folder needs --resume or --overwrite."""
    if resume:
        if not (path / LAST_FILE).is_file():
            unfinished = path.is_dir() and is_unfinished_start(path)
            raise UserError(f"--resume: no {LAST_FILE} in {path} to resume from" + (
                " (no epoch finished there: run the same command without --resume to start over)"
                if unfinished else ""))
        return
    if path.exists() and not path.is_dir():
        raise UserError(f"--output-dir {path} exists and is not a folder")
    if path.is_dir() and not is_unfinished_start(path):
        if not overwrite:
            raise UserError(f"--output-dir {path} is not empty (a previous run?): pass --resume to continue it, "
                            "--overwrite to replace it, or choose another folder")
        for name in outputs.RUN_FILES:
            (path / name).unlink(missing_ok=True)
        shutil.rmtree(path / "plots", ignore_errors=True)


def is_unfinished_start(path: Path) -> bool:
    """Only files a run writes before its first checkpoint (or nothing): reusing the folder loses nothing."""
    return {p.name for p in path.iterdir()} <= START_FILES


def remove_start_files(out: Path) -> None:
    """Undo a start that saved no epoch, so the folder is as the run found it (the lock removes the folder
    itself when the run created it)."""
    for name in START_FILES - {LOCK_FILE}:
        (out / name).unlink(missing_ok=True)
