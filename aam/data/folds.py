"""Grouped k-fold assignment with repeats, optionally stratified by class (the inner validation split carved
from a fold's training part and the grouping are in `aam.data.split`).

A group (e.g. a subject) is never on both sides of a fold; a sample with a missing group value is its own
group, and without a group column every sample is its own group.
"""

from __future__ import annotations

import logging

import numpy as np

from aam.data.split import inner_split, random_state_from, sample_groups, stratified_group_folds
from aam.errors import UserError

# The grouping and the inner split live with the other splits (aam.data.split); folds are made of them.
__all__ = ["assign_folds", "inner_split", "sample_groups"]

log = logging.getLogger("aam.data")


def assign_folds(groups: np.ndarray, folds: int, repeats: int, seed: int, group_column: str | None = None,
                 strata: np.ndarray | None = None) -> np.ndarray:
    """int64 [repeats, n]: the fold (0..folds-1) of every sample in each repeat.

    Without `strata` each repeat shuffles the groups with its own generator, then hands them out largest
    first (ties in shuffled order) to the fold with the fewest samples so far, so fold sizes differ by at
    most the largest group.

    strata: int64 [n], a class index per sample (-1: missing label, a stratum of its own). Each repeat is
        scikit-learn's StratifiedGroupKFold over (strata, groups), shuffled with random_state
        `random_state_from((seed, repeat))`, so each class is spread over the test folds as evenly as its
        groups allow (`aam.data.split.stratified_group_folds`, which also keeps every fold non-empty). A
        class held by fewer groups than `folds` cannot reach every test fold: that is logged as a warning,
        not refused. Where no stratum has `folds` samples the folds are the unstratified ones above.
    """
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    what = f"groups in '{group_column}'" if group_column else "samples"
    if folds < 2:
        raise UserError(f"--folds must be >= 2; got {folds}")
    if repeats < 1:
        raise UserError(f"--repeats must be >= 1; got {repeats}")
    if folds > n_groups:
        raise UserError(f"--folds {folds} is more than the {n_groups} {what}: each fold needs at least one")
    if strata is not None:
        assert strata.shape == groups.shape, f"strata has shape {strata.shape}, groups {groups.shape}"
        _warn_thin_classes(strata, groups, folds, what)
    sizes = np.bincount(groups, minlength=n_groups)
    assignment = np.empty((repeats, len(groups)), dtype=np.int64)
    for r in range(repeats):
        stratified = None
        if strata is not None:
            stratified = stratified_group_folds(strata, groups, folds, random_state_from((seed, r)))
        assignment[r] = stratified if stratified is not None else _balanced_folds(groups, sizes, folds, (seed, r))
    return assignment


def _balanced_folds(groups: np.ndarray, sizes: np.ndarray, folds: int, seed: tuple[int, int]) -> np.ndarray:
    """int64 [n]: shuffled groups (`sizes` [G] samples each), largest first, each to the emptiest fold."""
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(len(sizes))
    order = shuffled[np.argsort(-sizes[shuffled], kind="stable")]
    filled = np.zeros(folds, dtype=np.int64)
    fold_of_group = np.empty(len(sizes), dtype=np.int64)
    for g in order:
        f = int(np.argmin(filled))
        fold_of_group[g] = f
        filled[f] += sizes[g]
    return fold_of_group[groups]


def _warn_thin_classes(strata: np.ndarray, groups: np.ndarray, folds: int, what: str) -> None:
    """Log the classes (strata >= 0) held by fewer groups than `folds`: some test folds will lack them."""
    labelled = strata >= 0
    pairs = np.unique(np.stack([strata[labelled], groups[labelled]]), axis=1)  # [2, distinct (class, group)]
    classes, n_groups = np.unique(pairs[0], return_counts=True)
    thin = [f"{c}: {k}" for c, k in zip(classes.tolist(), n_groups.tolist()) if k < folds]
    if thin:
        log.warning(f"classes with fewer {what} than the {folds} folds, which some test folds will lack "
                    f"(class index: count): {', '.join(thin)}")
    if np.all(np.unique(strata, return_counts=True)[1] < folds):
        log.warning(f"no class has {folds} samples: the folds are not stratified")
