"""Checkpoint files: written atomically, checked on load.

`model.pt` (best model) and `last.pt` (resume state) hold plain Python/tensor data only, so they
load with `torch.load(weights_only=True)`: no pickled code runs when a user opens a checkpoint.
`Checkpoint` is what they hold, field by field; `save_checkpoint` / `load_checkpoint` write and read the
file's dict itself (a header, then the `Checkpoint` fields under their own names).
"""

from __future__ import annotations

import dataclasses
import os
import random
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aam import __version__
from aam.errors import UserError
from aam.paths import file_mode

FORMAT = "aam-checkpoint"
FORMAT_VERSION = 1  # bump when the saved structure or the model architecture changes incompatibly
BEST_FILE = "model.pt"
LAST_FILE = "last.pt"
# the `Checkpoint` fields every checkpoint file has (category_encoder may be None); the others are stored when set
STORED_ALWAYS = ("config", "target_scaler", "category_encoder", "model_state")


def atomic_write(path: str | Path, write) -> None:
    """Call `write(file_object)` on a temp file in the same folder, then rename over `path`.

    os.replace is atomic on POSIX within one file system, so a reader (or a resume after SIGKILL)
    sees either the old file or the new one, never half of one.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), file_mode())  # mkstemp makes 0600; the result should read like any new file
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "aam_version": __version__, **payload}
    atomic_write(path, lambda f: torch.save(payload, f))


def load_checkpoint(path: str | Path, map_location="cpu") -> dict[str, Any]:
    """The checkpoint file's dict, header included (`Checkpoint.load` reads it into its fields); UserError when
    the file is missing, not an AAM checkpoint, or too new/old."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # any unpickling/zip error means "not a checkpoint we wrote"
        raise UserError(f"{path} is not an AAM model checkpoint ({type(exc).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path} is not an AAM model checkpoint")
    if payload.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path} was written by aam {payload.get('aam_version', '?')} (checkpoint format "
                        f"{payload.get('format_version')}); this aam {__version__} reads format {FORMAT_VERSION}")
    return payload


@dataclass(kw_only=True)
class Checkpoint:
    """The contents of `model.pt` (the best epoch's model) or `last.pt` (the latest epoch and what a resume
    needs: trainer, progress, rng, split). Each field is stored under its own name; a field outside
    `STORED_ALWAYS` that is None is left out of the file."""

    config: dict[str, Any]  # RunConfig.to_dict(), data paths absolute
    target_scaler: dict[str, Any]  # TargetScaler.to_dict()
    category_encoder: dict[str, Any] | None  # CategoryEncoder.to_dict(); None without categorical columns
    model_state: dict[str, torch.Tensor]  # the model's state_dict()
    epoch: int | None = None  # the epoch these weights are from (1-based)
    metrics: dict[str, Any] | None = None  # model.pt: that epoch's validation metrics
    interval_calibration: dict[str, Any] | None = None  # model.pt of a quantile model: IntervalCalibration.to_dict()
    target_levels: dict[str, Any] | None = None  # classifiers: each classification target's training levels
    class_temperatures: dict[str, float] | None = None  # model.pt of a classifier: fitted temperature per target
    trainer: dict[str, Any] | None = None  # last.pt: Trainer.state_dict() (optimizer, scheduler, weight average)
    progress: dict[str, Any] | None = None  # last.pt: TrainerState as a dict (epochs done, best so far, history)
    rng: dict[str, Any] | None = None  # last.pt: `rng_state()`
    split: tuple[list[str], list[str]] | None = None  # last.pt: training and validation sample IDs

    def to_dict(self) -> dict[str, Any]:
        """The file's fields (without the header), in field order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name in STORED_ALWAYS or getattr(self, f.name) is not None}

    def save(self, path: str | Path) -> None:
        save_checkpoint(path, self.to_dict())

    @classmethod
    def from_dict(cls, payload: dict[str, Any], source: str | Path = "checkpoint") -> Checkpoint:
        """The fields of a checkpoint file's dict (its header and any key this aam does not know are ignored);
        UserError naming `source` when a field every checkpoint has is missing."""
        names = [f.name for f in dataclasses.fields(cls)]
        for name in STORED_ALWAYS:
            if name not in payload:
                raise UserError(f"{source} is not an AAM model checkpoint (it has no {name!r})")
        return cls(**{name: payload[name] for name in names if name in payload})

    @classmethod
    def load(cls, path: str | Path, map_location="cpu") -> Checkpoint:
        """UserError when the file is missing, not an AAM checkpoint, or too new/old (see `load_checkpoint`)."""
        return cls.from_dict(load_checkpoint(path, map_location), path)


def rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and Python RNG states, in weights_only-loadable types."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(value):
    return [_to_lists(v) for v in value] if isinstance(value, (tuple, list)) else value


def _to_tuples(value):
    return tuple(_to_tuples(v) for v in value) if isinstance(value, list) else value
