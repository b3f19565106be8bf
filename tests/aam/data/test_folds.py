import numpy as np
import pytest

from aam.data.folds import assign_folds, inner_split, sample_groups
from aam.errors import UserError
from studies import make_study


def grouped_labels(n: int, n_groups: int, seed: int) -> list:
    labels = [f"p{g}" for g in np.random.default_rng(seed).integers(0, n_groups, n)]
    labels[3] = labels[7] = None  # samples without a group value: each its own group
    return labels


@pytest.mark.parametrize("seed", range(4))
def test_folds_cover_every_sample_once_per_repeat_and_never_split_a_group(seed):
    labels = grouped_labels(120, 25, seed)
    groups = sample_groups(make_study(120, labels), "subject")
    folds = assign_folds(groups, 5, 3, seed, "subject")
    assert folds.shape == (3, 120)
    for r in range(3):
        # every sample in exactly one test fold, every fold non-empty
        assert sorted(np.unique(folds[r])) == list(range(5))
        members = [set(np.flatnonzero(folds[r] == f)) for f in range(5)]
        assert sum(len(m) for m in members) == 120 and set().union(*members) == set(range(120))
        for f in range(5):
            test_labels = {labels[i] for i in members[f] if labels[i] is not None}
            train_labels = {labels[i] for i in range(120) if i not in members[f] and labels[i] is not None}
            assert test_labels.isdisjoint(train_labels)
    assert not np.array_equal(folds[0], folds[1])  # repeats reshuffle
    assert np.array_equal(folds, assign_folds(groups, 5, 3, seed, "subject"))
    assert groups[3] != groups[7]


def test_without_a_group_column_every_sample_is_a_group_and_folds_are_balanced():
    groups = sample_groups(make_study(23), None)
    folds = assign_folds(groups, 4, 1, 0)
    assert sorted(np.bincount(folds[0])) == [5, 6, 6, 6]


def test_inner_split_stays_inside_the_training_part_and_keeps_groups_whole():
    labels = grouped_labels(150, 30, 1)
    groups = sample_groups(make_study(150, labels), "subject")
    folds = assign_folds(groups, 5, 1, 1, "subject")[0]
    for f in range(5):
        test = np.flatnonzero(folds == f)
        train_part = np.flatnonzero(folds != f)
        train, val = inner_split(groups, train_part, 0.2, (1, 0, f))
        assert set(train).isdisjoint(val) and set(train) | set(val) == set(train_part)
        assert set(val).isdisjoint(test)
        assert set(groups[train]).isdisjoint(groups[val])
        assert 0.1 * len(train_part) < len(val) < 0.35 * len(train_part)


@pytest.mark.parametrize("folds, repeats, message", [
    (1, 1, "--folds must be >= 2; got 1"),
    (0, 1, "--folds must be >= 2; got 0"),
    (3, 0, "--repeats must be >= 1; got 0"),
    (5, 1, "--folds 5 is more than the 4 groups in 'subject'"),
])
def test_bad_fold_counts_name_the_flag(folds, repeats, message):
    groups = sample_groups(make_study(20, [f"p{i % 4}" for i in range(20)]), "subject")
    with pytest.raises(UserError, match=message):
        assign_folds(groups, folds, repeats, 0, "subject")
