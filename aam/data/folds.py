"""Grouped k-fold assignment with repeats (the inner validation split carved from a fold's training part and
the grouping are in `aam.data.split`).

A group (e.g. a subject) is never on both sides of a fold; a sample with a missing group value is its own
group, and without a group column every sample is its own group.
"""

from __future__ import annotations

import numpy as np

from aam.data.split import inner_split, sample_groups
from aam.errors import UserError

# The grouping and the inner split live with the other splits (aam.data.split); folds are made of them.
__all__ = ["assign_folds", "inner_split", "sample_groups"]


def assign_folds(groups: np.ndarray, folds: int, repeats: int, seed: int, group_column: str | None = None
                 ) -> np.ndarray:
    """int64 [repeats, n]: the fold (0..folds-1) of every sample in each repeat.

    Each repeat shuffles the groups with its own generator, then hands them out largest first (ties in
    shuffled order) to the fold with the fewest samples so far, so fold sizes differ by at most the
    largest group.
    """
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    what = f"groups in '{group_column}'" if group_column else "samples"
    if folds < 2:
        raise UserError(f"--folds must be >= 2; got {folds}")
    if repeats < 1:
        raise UserError(f"--repeats must be >= 1; got {repeats}")
    if folds > n_groups:
        raise UserError(f"--folds {folds} is more than the {n_groups} {what}: each fold needs at least one")
    sizes = np.bincount(groups, minlength=n_groups)
    assignment = np.empty((repeats, len(groups)), dtype=np.int64)
    for r in range(repeats):
        rng = np.random.default_rng((seed, r))
        shuffled = rng.permutation(n_groups)
        order = shuffled[np.argsort(-sizes[shuffled], kind="stable")]
        filled = np.zeros(folds, dtype=np.int64)
        fold_of_group = np.empty(n_groups, dtype=np.int64)
        for g in order:
            f = int(np.argmin(filled))
            fold_of_group[g] = f
            filled[f] += sizes[g]
        assignment[r] = fold_of_group[groups]
    return assignment

