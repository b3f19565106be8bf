"""Train/validation split, optionally grouped (no group on both sides), written as sample lists.

`decide_split` is the one place a run's split is decided: the seeded split of a study (`aam train`,
`aam baseline`), the one a run saved (resume, `aam baseline --train-dir`), or the inner validation
split carved from a cross-validation fold's training part.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from aam.data.caveats import warn_caveats
from aam.data.study import Study
from aam.errors import UserError

TRAIN_FILE = "train_samples.txt"
VAL_FILE = "val_samples.txt"


def decide_split(study: Study, test_size: float, seed: int | tuple[int, ...], group_column: str | None = None, *,
                 given: tuple[Sequence[str], Sequence[str]] | None = None, within: np.ndarray | None = None,
                 sources: tuple[str, str] = ("train split", "val split")) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) int64 positions into `study`, with the caveats of the split logged (`warn_caveats`).

    given: the sample IDs of each side (a resumed run's, a previous run's sample lists), found in `study`
        (UserError naming `sources[i]` and the first unknown ID).
    within: positions of a cross-validation fold's training part: `inner_split` of it, seeded by `seed`.
    neither: `split_samples` of the whole study.
    """
    if given is not None:
        train_idx, val_idx = (positions_of(study, list(ids), source) for ids, source in zip(given, sources))
    elif within is not None:
        train_idx, val_idx = inner_split(sample_groups(study, group_column), within, test_size, seed)
    else:
        train_idx, val_idx = split_samples(study, test_size, seed, group_column)
    warn_caveats(study, train_idx, val_idx)
    return train_idx, val_idx


def split_samples(study: Study, test_size: float, seed: int, group_column: str | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """int64 positions into `study` for (train, validation). `test_size` is a fraction in (0, 1) or a
    sample count >= 1. With `group_column` whole groups go to one side (a sample with a missing group
    value is its own group) and the validation side holds about `test_size` of the samples."""
    n = study.n_samples
    n_val = int(round(test_size * n)) if 0 < test_size < 1 else int(test_size)
    if test_size <= 0 or (test_size >= 1 and test_size != int(test_size)):
        raise UserError(f"--test-size must be a fraction in (0, 1) or a whole number of samples, got {test_size}")
    if not 1 <= n_val < n:
        raise UserError(f"--test-size {test_size} leaves no samples on one side of the split ({n} samples)")
    rng = np.random.default_rng(seed)
    if group_column is None:
        order = rng.permutation(n)
        return np.sort(order[n_val:]), np.sort(order[:n_val])
    groups, inverse, sizes = np.unique(group_keys(study, group_column), return_inverse=True, return_counts=True)
    if len(groups) < 2:
        raise UserError(f"group column '{group_column}' has a single group; cannot split by it")
    return split_groups(inverse, sizes, n_val, rng)


def group_keys(study: Study, group_column: str) -> np.ndarray:
    """object [n_samples]: one key per group; a sample with a missing group value is its own group."""
    labels = study.column(group_column, role="group")
    return np.array([f"g:{v}" if v is not None else f"s:{i}" for i, v in enumerate(labels)], dtype=object)


def split_groups(inverse: np.ndarray, sizes: np.ndarray, n_val: int, rng: np.random.Generator
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) positions, whole groups per side: `inverse` [n] is each sample's group
    number, `sizes` [G >= 2] the samples per group; the validation side holds about `n_val` samples."""
    order = rng.permutation(len(sizes))
    # Take shuffled groups until the validation side reaches the requested size.
    filled = np.cumsum(sizes[order])
    n_groups_val = int(np.searchsorted(filled, n_val)) + 1
    n_groups_val = min(max(n_groups_val, 1), len(sizes) - 1)
    val_group = np.zeros(len(sizes), dtype=bool)
    val_group[order[:n_groups_val]] = True
    is_val = val_group[inverse]
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def sample_groups(study: Study, group_column: str | None) -> np.ndarray:
    """int64 [n_samples]: each sample's group number (0..G-1); without a group column every sample is its
    own group."""
    if group_column is None:
        return np.arange(study.n_samples, dtype=np.int64)
    _, inverse = np.unique(group_keys(study, group_column), return_inverse=True)
    return inverse.astype(np.int64)


def inner_split(groups: np.ndarray, train_part: np.ndarray, fraction: float, seed: int | tuple[int, ...]
                ) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) positions into the study, both inside `train_part` and grouped: the
    validation side (about `fraction` of `train_part`) picks the epoch and stops training early."""
    _, inverse, sizes = np.unique(groups[train_part], return_inverse=True, return_counts=True)
    if len(sizes) < 2:
        raise UserError("a fold's training part has a single group: too few groups to carve a validation split")
    n_val = min(max(1, int(round(fraction * len(train_part)))), len(train_part) - 1)
    train, val = split_groups(inverse, sizes, n_val, np.random.default_rng(seed))
    return train_part[train], train_part[val]


def write_split(output_dir: str | Path, study: Study, train_idx: np.ndarray, val_idx: np.ndarray) -> None:
    """`train_samples.txt` and `val_samples.txt` in `output_dir`, one sample ID per line."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, idx in ((TRAIN_FILE, train_idx), (VAL_FILE, val_idx)):
        (output_dir / name).write_text("".join(f"{study.sample_ids[i]}\n" for i in idx))


def read_sample_list(path: str | Path) -> list[str]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"sample list not found: {path}")
    return [line.strip() for line in path.read_text().splitlines() if line.strip()]


def positions_of(study: Study, sample_ids: list[str], source: str | Path = "sample list") -> np.ndarray:
    """int64 positions of `sample_ids` in `study`; UserError naming the first unknown ID."""
    where = {s: i for i, s in enumerate(study.sample_ids)}
    missing = [s for s in sample_ids if s not in where]
    if missing:
        raise UserError(f"{source}: sample '{missing[0]}' is not in the study ({len(missing)} unknown)")
    return np.array([where[s] for s in sample_ids], dtype=np.int64)
