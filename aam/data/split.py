"""Train/validation split, optionally grouped (no group on both sides), written as sample lists.

`decide_split` is the one place a run's split is decided: the seeded split of a study (`aam train`,
`aam baseline`), the one a run saved (resume, `aam baseline --train-dir`), or the inner validation
split carved from a cross-validation fold's training part.

With `strata` (int64 [n_samples], a class index per sample, -1 where the label is missing; -1 is a stratum
of its own) a seeded split is also stratified: scikit-learn's StratifiedGroupKFold over (strata, groups) with
max(2, round(1 / fraction)) folds (no more than there are groups), shuffled by a random_state drawn from the
seed (`random_state_from`); the validation side is its first test fold. Its greedy placement does not promise
that a class with fewer groups than folds reaches that fold, so afterwards each class with at least two
groups that lacks one side gets its smallest group moved there, where every class of that group keeps the
side it leaves. A class held by one group stays on one side.
"""

from __future__ import annotations

import warnings
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
                 sources: tuple[str, str] = ("train split", "val split"), strata: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) int64 positions into `study`, with the caveats of the split logged (`warn_caveats`).

    given: the sample IDs of each side (a resumed run's, a previous run's sample lists), found in `study`
        (UserError naming `sources[i]` and the first unknown ID); `strata` plays no part.
    within: positions of a cross-validation fold's training part: `inner_split` of it, seeded by `seed`.
    neither: `split_samples` of the whole study.
    strata: int64 [n_samples], the class of every sample of the study (-1: missing): stratify the seeded split.
    """
    if given is not None:
        train_idx, val_idx = (positions_of(study, list(ids), source) for ids, source in zip(given, sources))
    elif within is not None:
        train_idx, val_idx = inner_split(sample_groups(study, group_column), within, test_size, seed, strata)
    else:
        train_idx, val_idx = split_samples(study, test_size, seed, group_column, strata)
    warn_caveats(study, train_idx, val_idx)
    return train_idx, val_idx


def split_samples(study: Study, test_size: float, seed: int | tuple[int, ...], group_column: str | None = None,
                  strata: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """int64 positions into `study` for (train, validation). `test_size` is a fraction in (0, 1) or a
    sample count >= 1. With `group_column` whole groups go to one side (a sample with a missing group
    value is its own group) and the validation side holds about `test_size` of the samples. With `strata`
    (int64 [n_samples], -1: missing label) the split is stratified (`stratified_holdout`)."""
    n = study.n_samples
    n_val = int(round(test_size * n)) if 0 < test_size < 1 else int(test_size)
    if test_size <= 0 or (test_size >= 1 and test_size != int(test_size)):
        raise UserError(f"--test-size must be a fraction in (0, 1) or a whole number of samples, got {test_size}")
    if not 1 <= n_val < n:
        raise UserError(f"--test-size {test_size} leaves no samples on one side of the split ({n} samples)")
    if strata is not None:
        assert strata.shape == (n,), f"strata has shape {strata.shape}, the study {n} samples"
    rng = np.random.default_rng(seed)
    if group_column is None:
        if strata is not None:
            return stratified_holdout(strata, np.arange(n), n_val, seed)
        order = rng.permutation(n)
        return np.sort(order[n_val:]), np.sort(order[:n_val])
    groups, inverse, sizes = np.unique(group_keys(study, group_column), return_inverse=True, return_counts=True)
    if len(groups) < 2:
        raise UserError(f"group column '{group_column}' has a single group; cannot split by it")
    if strata is not None:
        return stratified_holdout(strata, inverse, n_val, seed)
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


def inner_split(groups: np.ndarray, train_part: np.ndarray, fraction: float, seed: int | tuple[int, ...],
                strata: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) positions into the study, both inside `train_part` and grouped: the
    validation side (about `fraction` of `train_part`) picks the epoch and stops training early.
    strata: int64 [n_samples] like `groups` (-1: missing label): stratify it (`stratified_holdout`)."""
    _, inverse, sizes = np.unique(groups[train_part], return_inverse=True, return_counts=True)
    if len(sizes) < 2:
        raise UserError("a fold's training part has a single group: too few groups to carve a validation split")
    n_val = min(max(1, int(round(fraction * len(train_part)))), len(train_part) - 1)
    if strata is not None:
        assert strata.shape == groups.shape, f"strata has shape {strata.shape}, groups {groups.shape}"
        train, val = stratified_holdout(strata[train_part], inverse, n_val, seed)
    else:
        train, val = split_groups(inverse, sizes, n_val, np.random.default_rng(seed))
    return train_part[train], train_part[val]


def random_state_from(seed: int | tuple[int, ...]) -> int:
    """A scikit-learn random_state in [0, 2**31), the first draw of `np.random.default_rng(seed)`: `seed` is
    an int or a tuple such as (seed, repeat) or (seed, repeat, fold)."""
    return int(np.random.default_rng(seed).integers(2**31))


def stratified_group_folds(strata: np.ndarray, groups: np.ndarray, folds: int, random_state: int
                           ) -> np.ndarray | None:
    """int64 [n]: the test fold (0..folds-1) of every sample, by scikit-learn's StratifiedGroupKFold over
    (`strata` [n], `groups` [n]) with shuffle=True and `random_state`; None when every stratum has fewer
    samples than `folds` (it cannot stratify then). Needs at least `folds` groups.

    Its greedy placement can leave a fold empty when there are barely more groups than folds; such a fold
    takes the smallest group (the first in group order among equals) of a fold holding the most groups.
    """
    from sklearn.model_selection import StratifiedGroupKFold  # here: the commands that never stratify skip it

    if np.all(np.unique(strata, return_counts=True)[1] < folds):
        return None
    fold_of = np.empty(len(groups), dtype=np.int64)
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=random_state)
    with warnings.catch_warnings():
        # It warns by the samples of the smallest class; callers judge classes by their groups instead.
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for f, (_, test) in enumerate(splitter.split(np.zeros((len(groups), 1)), strata, groups)):
            fold_of[test] = f
    _, group_of = np.unique(groups, return_inverse=True)
    for f in range(folds):
        if np.any(fold_of == f):
            continue
        groups_in = [len(np.unique(group_of[fold_of == k])) for k in range(folds)]
        donor = group_of[fold_of == int(np.argmax(groups_in))]  # >= 2 groups there: folds <= groups
        ids, sizes = np.unique(donor, return_counts=True)
        fold_of[group_of == ids[np.argmin(sizes)]] = f
    return fold_of


def stratified_holdout(strata: np.ndarray, group_of: np.ndarray, n_val: int, seed: int | tuple[int, ...]
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) positions, whole groups per side, stratified by `strata` [n] (-1: missing label):
    `group_of` [n] is each sample's group number (0..G-1, G >= 2); the validation side holds about `n_val`
    samples. Validation is the first test fold of `stratified_group_folds` with max(2, round(n / n_val))
    folds (at most G); where no stratum has that many samples, the seeded unstratified `split_groups`.
    Then a class (strata >= 0) with at least two groups that misses a side gets one moved (module doc)."""
    sizes = np.bincount(group_of)
    folds = min(max(2, round(len(group_of) / n_val)), len(sizes))
    fold_of = stratified_group_folds(strata, group_of, folds, random_state_from(seed))
    if fold_of is None:
        val = split_groups(group_of, sizes, n_val, np.random.default_rng(seed))[1]
    else:
        val = np.flatnonzero(fold_of == 0)
    val_group = np.zeros(len(sizes), dtype=bool)
    val_group[group_of[val]] = True
    labelled = strata >= 0
    if labelled.any():
        has = np.zeros((len(sizes), int(strata.max()) + 1), dtype=bool)  # [G, C]: group g holds class c
        has[group_of[labelled], strata[labelled]] = True
        classes_on_both_sides(val_group, has, sizes)
    is_val = val_group[group_of]
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def classes_on_both_sides(val_group: np.ndarray, has: np.ndarray, sizes: np.ndarray) -> None:
    """Move groups across `val_group` (bool [G], in place) so that each class of `has` (bool [G, C]: the
    group holds the class) with at least two groups is on both sides. A group moves only when every class
    it holds keeps another group on the side it leaves, so a class once on both sides stays there; the
    smallest such group moves (`sizes` [G])."""
    for c in range(has.shape[1]):
        holders = np.flatnonzero(has[:, c])
        if len(holders) < 2:
            continue
        for to_val in (True, False):
            if np.any(val_group[holders] == to_val):
                continue
            source = val_group != to_val
            left = has[source].sum(axis=0)  # [C] groups per class on the side a group would leave
            movable = [g for g in holders if np.all(left[has[g]] >= 2)]
            if movable and source.sum() >= 2:
                g = min(movable, key=lambda g: (sizes[g], g))
                val_group[g] = to_val


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
