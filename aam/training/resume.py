"""What a resumed run may change, and the check that it changed nothing else."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from aam.config import RunConfig, TrainConfig, user_settings
from aam.errors import UserError
from aam.paths import absolute_data_paths
from aam.run_folder import check_contents
from aam.runtime.checkpoint import LAST_FILE, Checkpoint
from aam.training.output_folder import TRAIN_FOLDER

# flags of the TrainConfig fields a resumed run may change (made with `resumable()`): where it runs, how long,
# how it reports
RESUMABLE_FLAGS = tuple(f.metadata["flag"] for f in dataclasses.fields(TrainConfig) if f.metadata.get("flag"))


def check_resumable(saved: RunConfig, current: RunConfig, epochs_done: int = 0) -> None:
    """UserError naming the first setting the user set that differs from the checkpoint's run (paths
    compared as absolute paths), or --epochs below the epochs already run."""
    if current.train.epochs < epochs_done:
        raise UserError(f"--resume: --epochs {current.train.epochs} is below the {epochs_done} epochs already run")
    saved, current = absolute_data_paths(saved), absolute_data_paths(current)
    for part in ("data", "model", "loss", "train"):
        a, b = user_settings(getattr(saved, part)), user_settings(getattr(current, part))
        for key, value in a.items():
            if b[key] != value:
                raise UserError(f"--resume: the checkpoint was trained with {part}.{key} = {value!r}, "
                                f"this command gives {b[key]!r} (a resumed run may change only "
                                f"{', '.join(RESUMABLE_FLAGS)})")


def resume_config(output_dir: str | Path, changes: dict[str, dict] | None = None, **train_changes) -> RunConfig:
    """The configuration of the run in `output_dir` (from last.pt) with `changes` ({part: {field: value}},
    part = data/model/loss/train) and `train_changes` applied. `build_run` then refuses any change of a
    field not made with `resumable()`, naming it, so a flag given with --resume is never silently ignored.
    The configuration is resolved (`RunConfig.resolve`): UserError for a change no run can use."""
    path = Path(output_dir)
    check_contents(path, TRAIN_FOLDER, resume=True)
    saved = RunConfig.from_dict(Checkpoint.load(path / LAST_FILE).config)
    changes = {part: dict(values) for part, values in (changes or {}).items()}
    changes.setdefault("train", {}).update(train_changes, output_dir=str(output_dir))
    parts = {part: dataclasses.replace(getattr(saved, part), **changes.get(part, {}))
             for part in ("data", "model", "loss", "train")}
    return RunConfig(**parts).resolve()


def keep_saved_defaults(config: RunConfig, saved: RunConfig, given: dict[str, dict]) -> RunConfig:
    """`config` (a resumed run's flags) with every setting its command line did not give (`given`: {part:
    {field: value}}) taken from the `saved` run, so a run resumes as it was trained even where a default has
    changed since; the resumable TrainConfig fields and the data-dependent model fields stay `config`'s."""
    parts = {}
    for part in ("data", "model", "loss", "train"):
        current, old = getattr(config, part), getattr(saved, part)
        kept = {f.name: getattr(old, f.name) for f in dataclasses.fields(current)
                if f.name not in given.get(part, {}) and not f.metadata.get("derived")
                and not f.metadata.get("resumable")}
        parts[part] = dataclasses.replace(current, **kept)
    return RunConfig(**parts)


def with_checkpoint_defaults(config: RunConfig, output_dir: str | Path, given: dict[str, dict]) -> RunConfig:
    """`keep_saved_defaults` against the run in `output_dir`'s last.pt; `config` as it is when there is none
    (resuming then fails, naming the missing checkpoint)."""
    path = Path(output_dir) / LAST_FILE
    if not path.is_file():
        return config
    return keep_saved_defaults(config, RunConfig.from_dict(Checkpoint.load(path).config), given)
