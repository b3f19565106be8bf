"""The output folder of a training run: what may be reused, replaced or resumed.

A folder holding only what a run writes before its first epoch ends (`START_FILES`, no checkpoint) is
an unfinished start that a plain rerun may reuse; anything more is a previous run, which needs
--resume or --overwrite.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from aam.data.split import TRAIN_FILE, VAL_FILE
from aam.evaluation import outputs
from aam.run_folder import FolderRules
from aam.run_lock import LOCK_FILE
from aam.runtime.checkpoint import LAST_FILE

START_FILES = {"config.json", TRAIN_FILE, VAL_FILE, LOCK_FILE}


def clear_previous_run(path: Path) -> None:
    """What --overwrite removes before a new run: the files and plots a run writes."""
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


# `aam train`'s folder (aam.run_folder): an existing non-empty folder needs --resume or --overwrite.
TRAIN_FOLDER = FolderRules(
    advice="pass --resume to continue it, --overwrite to replace it, or choose another folder",
    what="a previous run", resume_file=LAST_FILE, reusable=is_unfinished_start,
    resume_hint=" (no epoch finished there: run the same command without --resume to start over)",
    clear=clear_previous_run)
