"""What a resumed run may change, and the check that it changed nothing else."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from aam.config import RunConfig
from aam.errors import UserError
from aam.runtime.checkpoint import LAST_FILE, load_checkpoint

# TrainConfig fields a resumed run may change: they do not alter the computation.
RESUMABLE_CHANGES = {"output_dir", "device", "num_workers", "progress"}


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


def resume_config(output_dir: str | Path, **train_changes) -> RunConfig:
    """The configuration of the run in `output_dir` (from last.pt), with allowed TrainConfig changes."""
    unknown = set(train_changes) - RESUMABLE_CHANGES
    if unknown:
        raise UserError(f"--resume cannot change {', '.join(sorted(unknown))}")
    last = load_checkpoint(Path(output_dir) / LAST_FILE)
    saved = RunConfig.from_dict(last["config"])
    train = dataclasses.replace(saved.train, output_dir=str(output_dir), **train_changes)
    return dataclasses.replace(saved, train=train)
