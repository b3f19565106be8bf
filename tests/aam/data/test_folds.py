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


def class_per_group(n_groups: int, n_classes: int, folds: int, seed: int) -> np.ndarray:
    """int64 [n_groups]: one class per group (-1: unlabelled), each class and -1 on at least `folds` groups."""
    rng = np.random.default_rng(seed)
    label = np.concatenate([np.repeat(np.arange(-1, n_classes), folds), rng.integers(-1, n_classes, n_groups)])
    return rng.permutation(label[:n_groups])


def co_members(fold_of: np.ndarray) -> np.ndarray:
    """bool [n, n]: same test fold; compares partitions whatever the fold numbers."""
    return fold_of[:, None] == fold_of[None, :]


@pytest.mark.parametrize("seed", range(6))
def test_stratified_folds_keep_groups_whole_and_spread_every_class_over_every_fold(seed):
    rng = np.random.default_rng(100 + seed)
    folds, n_classes, n = 5, int(rng.integers(2, 5)), 240
    labels = grouped_labels(n, 40, seed)
    groups = sample_groups(make_study(n, labels), "subject")
    strata = class_per_group(int(groups.max()) + 1, n_classes, folds, seed)[groups]
    classes, n_groups = np.unique(np.unique(np.stack([strata, groups]), axis=1)[0], return_counts=True)
    assert classes.tolist() == list(range(-1, n_classes)) and n_groups.min() >= folds  # the premise
    assignment = assign_folds(groups, folds, 3, seed, "subject", strata)
    assert assignment.shape == (3, n) and assignment.dtype == np.int64
    for fold_of in assignment:
        assert sorted(np.unique(fold_of)) == list(range(folds))
        for g in np.unique(groups):
            assert len(np.unique(fold_of[groups == g])) == 1
        for c in range(-1, n_classes):
            per_fold = np.bincount(fold_of[strata == c], minlength=folds)
            assert per_fold.min() > 0, f"class {c} missing from a test fold: {per_fold}"
            # whole groups of one class each, so as even as its largest group allows
            assert per_fold.max() - per_fold.min() <= np.bincount(groups[strata == c]).max()
    assert not np.array_equal(co_members(assignment[0]), co_members(assignment[1]))
    assert np.array_equal(assignment, assign_folds(groups, folds, 3, seed, "subject", strata))
    other = assign_folds(groups, folds, 3, seed + 1, "subject", strata)
    assert not np.array_equal(co_members(assignment[0]), co_members(other[0]))


@pytest.mark.parametrize("seed", [0, 7])
def test_stratified_repeat_is_scikit_learns_split_seeded_from_seed_and_repeat(seed):
    from sklearn.model_selection import StratifiedGroupKFold

    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 30, 150)
    groups = np.unique(groups, return_inverse=True)[1]
    strata = rng.integers(-1, 3, 150)  # classes mixed inside groups
    assignment = assign_folds(groups, 4, 2, seed, "subject", strata)
    for r in range(2):
        state = int(np.random.default_rng((seed, r)).integers(2**31))
        splitter = StratifiedGroupKFold(n_splits=4, shuffle=True, random_state=state)
        expected = np.empty(150, dtype=np.int64)
        for f, (_, test) in enumerate(splitter.split(np.zeros((150, 1)), strata, groups)):
            expected[test] = f
        np.testing.assert_array_equal(assignment[r], expected)


def test_a_fold_the_stratified_split_leaves_empty_takes_a_group():
    # Four groups for four folds: scikit-learn's greedy placement puts groups 0 and 1 together and leaves a
    # fold empty (their class spreads are distinct, so its shuffle does not change that).
    groups = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2, 2, 3])
    strata = np.array([2, 2, 2, 2, 2, 2, 1, 1, 2, 2, 2, 1])
    for fold_of in assign_folds(groups, 4, 3, 5, "subject", strata):
        assert sorted(fold_of[[0, 6, 8, 11]]) == [0, 1, 2, 3]  # one group per fold
        assert all(len(np.unique(fold_of[groups == g])) == 1 for g in range(4))


def test_unlabelled_samples_are_a_stratum_and_thin_classes_are_logged(caplog):
    groups = np.arange(30)
    strata = np.array([-1] * 15 + [0] * 12 + [1] * 3)
    with caplog.at_level("WARNING", logger="aam.data"):
        assignment = assign_folds(groups, 5, 2, 3, None, strata)
    assert "samples than the 5 folds" in caplog.text and "1: 3" in caplog.text and "0: 12" not in caplog.text
    for fold_of in assignment:
        assert np.array_equal(np.bincount(fold_of[strata == -1], minlength=5), [3] * 5)
        assert sorted(np.bincount(fold_of[strata == 0], minlength=5)) == [2, 2, 2, 3, 3]
        assert len(np.unique(fold_of[strata == 1])) == 3  # three samples, three folds
    caplog.clear()
    with caplog.at_level("WARNING", logger="aam.data"):
        assign_folds(sample_groups(make_study(20, [f"p{i % 8}" for i in range(20)]), "subject"), 3, 1, 0,
                     "subject", np.array([i % 8 // 2 for i in range(20)]))
    assert "groups in 'subject' than the 3 folds" in caplog.text and "0: 2, 1: 2, 2: 2, 3: 2" in caplog.text


def test_folds_stay_grouped_when_no_class_has_as_many_samples_as_folds(caplog):
    groups = sample_groups(make_study(12, [f"p{i // 2}" for i in range(12)]), "subject")
    strata = np.arange(12) // 4  # three classes of four samples (two groups each), five folds
    with caplog.at_level("WARNING", logger="aam.data"):
        assignment = assign_folds(groups, 5, 2, 1, "subject", strata)
    assert "not stratified" in caplog.text
    for fold_of in assignment:
        assert sorted(np.unique(fold_of)) == list(range(5))
        assert np.all(fold_of[0::2] == fold_of[1::2])  # pairs are the groups


def test_without_strata_folds_are_the_documented_greedy_bit_for_bit():
    # Distinct group sizes 5, 4, 3, 2, 1 into two folds, largest first to the emptier fold (the first on a tie):
    # 5 -> 0, 4 -> 1, 3 -> 1, 2 -> 0, 1 -> 0, whatever the shuffle.
    groups = np.repeat(np.arange(5), [5, 4, 3, 2, 1])
    for seed in range(3):
        np.testing.assert_array_equal(assign_folds(groups, 2, 2, seed)[:, [0, 5, 9, 12, 14]], [[0, 1, 1, 0, 0]] * 2)
    # Equal sizes: the order is the shuffle of default_rng((seed, repeat)), dealt round robin.
    for seed, r in [(0, 0), (4, 1)]:
        shuffled = np.random.default_rng((seed, r)).permutation(12)
        expected = np.empty(12, dtype=np.int64)
        expected[shuffled] = np.arange(12) % 3
        np.testing.assert_array_equal(assign_folds(np.arange(12), 3, 2, seed, strata=None)[r], expected)
