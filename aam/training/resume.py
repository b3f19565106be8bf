"""What a resumed run may change, and the check that it changed nothing else."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from aam.config import RunConfig, TrainConfig, user_settings
from aam.errors import UserError
from aam.runtime.checkpoint import LAST_FILE, load_checkpoint

# TrainConfig fields a resumed run may change (made with `resumable()`): they do not alter the computation.
RESUMABLE_CHANGES = {f.name for f in dataclasses.fields(TrainConfig) if f.metadata.get("resumable")}


def check_resumable(saved: RunConfig, current: RunConfig) -> None:
    """UserError naming the first setting the user set that differs from the checkpoint's run."""
    for part in ("data", "model", "loss", "train"):
        a, b = user_settings(getattr(saved, part)), user_settings(getattr(current, part))
        for key, value in a.items():
            if b[key] != value:
                raise UserError(f"--resume: the checkpoint was trained with {part}.{key} = {value!r}, "
                                f"this command gives {b[key]!r}")


def resume_config(output_dir: str | Path, **train_changes) -> RunConfig:
    """The configuration of the run in `output_dir` (from last.pt), with allowed TrainConfig changes."""
    unknown = set(train_changes) - RESUMABLE_CHANGES
    if unknown:
        raise UserError(f"--resume cannot change {', '.join(sorted(unknown))}")
    last = load_checkpoint(Path(output_dir) / LAST_FILE)
    saved = RunConfig.from_dict(last["config"])
    train = dataclasses.replace(saved.train, output_dir=str(output_dir), **train_changes)
    return dataclasses.replace(saved, train=train)
